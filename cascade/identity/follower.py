"""A replica's follower: it fills a site's identity database from the master's snapshot and
then follows the master's change log (HTTP long poll on ``/identity-replica/v1``).

Fernet keys arrive the same way: each poll tells the master which key set this replica holds
(by id), with a proof that it does (``cascade.identity.possession``: a MAC keyed by that set
over the challenge the master's last answer carried), and learns which one it should hold;
when they differ the replica fetches the set, sealed for its node key by the master's node
key it pinned at bootstrap, and installs it (0600 files). A rotation at the master waits for
every replica to have proven it holds the new set.

The replica's position (``replica_state.seq``) moves in the same transaction as the changes
it covers, so after any interruption (the process killed, the master unreachable, the link
cut) it resumes from the last change it applied: nothing is applied twice or skipped.
Changes arrive in sequence order; any at or below the position (a repeated answer) are
dropped.

Every call to the master goes through a keystoneauth1 session: a v3 password login at the
master's ``/identity/v3`` (the session logs in again by itself when a token is refused, say
after a key rotation), the ``/identity-replica/v1`` routes at absolute URLs, a long-poll read
timeout. An unreachable master is retried with Cascade's one backoff (``cascade.retry``,
0.5 s doubling to 5 s) while the replica keeps serving what it has. A master that refuses
this replica's credentials (its login answered 401, or its user is not an admin there: 403)
is tried ``LOGIN_ATTEMPTS`` times, then the follower gives up: retrying cannot help, an
operator must fix the password (``Following.failure`` says what was refused).

Stopping is prompt whatever the follower waits on: ``Following.stop`` returns as soon as no
local write is under way (a long poll in flight is abandoned; its answer, if it ever comes, is
never applied), and nothing is written after it returned.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import requests
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from keystoneauth1.plugin import BaseAuthPlugin

from cascade.db import Database
from cascade.db.models import ReplicaState, utcnow
from cascade.errors import CascadeError, Unavailable, present
from cascade.identity.keys import KeyRepository
from cascade.identity.possession import prove
from cascade.identity.replica import apply_changes, install_snapshot, open_package
from cascade.identity.sealing import NodeKey, SealError
from cascade.retry import Backoff, until_stopped

log = logging.getLogger(__name__)
T = TypeVar("T")
BATCH = 1000
READ_TIMEOUT = 70.0  # seconds: longer than the longest long poll the master serves (60 s)
# A cut-off replica costs the master nothing between attempts, and the cap bounds how long
# after the link returns the replica notices: a few seconds, not the supervisor's 30.
MASTER_BACKOFF = Backoff(first=0.5, cap=5.0)
LOGIN_ATTEMPTS = 3  # refusals of our credentials in a row before giving up (about 2-4 s)
LOGIN_CHECK_S = 10.0  # how long a start-up login check waits for the master to answer


class Refused(CascadeError):
    """The master refuses this replica's credentials: retrying cannot help."""

    status = 502


class Halted(Exception):  # control flow, never out of the follower
    """The follower was stopped: it writes nothing more."""


@dataclass(frozen=True)
class Master:
    url: str  # where the master serves /identity/v3 and /identity-replica/v1
    username: str
    password: str
    project: str = "admin"

    def login(self) -> v3.Password:
        """The keystoneauth1 plugin that logs in at the master (users and projects in the
        default domain, as Cascade's admin is)."""
        return v3.Password(
            auth_url=f"{self.url}/identity/v3",
            username=self.username,
            password=self.password,
            project_name=self.project,
            user_domain_id="default",
            project_domain_id="default",
        )


def master_session(
    master: Master,
    auth: BaseAuthPlugin | None = None,
    link: requests.adapters.BaseAdapter | None = None,
) -> ks_session.Session:
    """A keystoneauth1 session for the master: ``auth`` (default: its password login), every
    request sent through ``link`` (default: requests' own HTTP adapter)."""
    http = requests.Session()
    if link is not None:
        http.mount("http://", link)
        http.mount("https://", link)
    return ks_session.Session(auth=auth or master.login(), session=http, timeout=READ_TIMEOUT)


@dataclass(frozen=True)
class Position:
    seq: int
    master_head: int
    applied_at: datetime
    checked_at: datetime

    @property
    def behind(self) -> int:
        return max(0, self.master_head - self.seq)


class Follower:
    def __init__(
        self,
        db: Database,
        keys: KeyRepository,
        node: NodeKey,
        master: Master,
        name: str,
        on_keys: Callable[[], None] | None = None,
        endpoint: tuple[str, str] | None = None,
        link: requests.adapters.BaseAdapter | None = None,
        auth: BaseAuthPlugin | None = None,
    ) -> None:
        """``link`` carries every request to the master (a site-sim's can be cut); ``auth``
        replaces the password login (the replica bench shares one token)."""
        self.db = db
        self.keys = keys
        self.node = node
        self.master = master
        self.name = name  # how the master lists this replica
        self._session = master_session(master, auth, link)
        self._on_keys = on_keys
        self._endpoint = endpoint  # (region, identity URL) to list in the master's catalog
        self._challenge = ""  # the master's latest challenge: proven on the next poll
        self._writing = threading.Lock()  # held while this follower writes locally
        self._halted = False  # set under _writing: nothing is written any more
        self.failure: Refused | None = None  # why ``run`` gave up, if it did

    def position(self) -> Position | None:
        with self.db.session() as session:
            state = session.get(ReplicaState, 1)
            if state is None:
                return None
            return Position(state.seq, state.master_head, state.applied_at, state.checked_at)

    def sync(self, wait: float = 0.0) -> int:
        """Bootstrap if this replica is empty, else apply what the master has after our
        position (waiting up to ``wait`` seconds for news). Returns changes applied."""
        position = self.position()
        if position is None:
            rows = self._bootstrap()
            self._list_endpoint()
            return rows
        self._list_endpoint()
        held, proof = self._holding()
        answer = self._get(
            "/identity-replica/v1/changes",
            {
                "after": position.seq,
                "limit": BATCH,
                "wait": wait,
                "replica": self.name,
                "keys": held,
                **proof,
            },
        )
        self._challenge = str(answer.get("challenge") or self._challenge)
        if answer.get("keys") and answer["keys"] != held:
            self._fetch_keys()
        changes = [c for c in answer["changes"] if c["seq"] > position.seq]
        self._record(changes, int(answer["head"]))
        return len(changes)

    def _holding(self) -> tuple[str, dict[str, str]]:
        """The id of the key set held, and the proof of it for the master's last challenge."""
        set_id, keys = self.keys.held()
        if not self._challenge:
            return set_id, {}
        proof = prove(keys, self.name, self._challenge)
        return set_id, {"challenge": self._challenge, "proof": proof}

    def run(self, stop: threading.Event, wait: float = 10.0) -> None:
        """Follow until ``stop`` is set, or the master refuses our credentials
        ``LOGIN_ATTEMPTS`` times in a row (``failure`` then says so). A failed poll (an
        unreachable master, a bad answer, a local database error) is retried with
        ``MASTER_BACKOFF`` while this replica keeps serving what it has; the first poll that
        works resets the backoff."""
        refusals = 0

        def attempt() -> None:
            nonlocal refusals
            try:
                self.sync(wait)
            except Refused as refused:
                refusals += 1
                if refusals < LOGIN_ATTEMPTS:
                    raise
                self.failure = refused
                return
            except Halted:
                return
            refusals = 0

        while not stop.is_set() and self.failure is None and not self._halted:
            until_stopped(MASTER_BACKOFF, stop, attempt, _log_retry)

    def halt(self, timeout: float) -> bool:
        """Write nothing from now on: wait (up to ``timeout`` s) for a write under way to
        finish; True unless that write is still going."""
        if not self._writing.acquire(timeout=timeout):
            return False
        self._halted = True
        self._writing.release()
        return True

    @contextmanager
    def _write(self) -> Iterator[None]:
        """Around every local write: holds the write lock, raises ``Halted`` once stopped."""
        with self._writing:
            if self._halted:
                raise Halted
            yield

    def _bootstrap(self) -> int:
        snapshot = self._get(
            "/identity-replica/v1/snapshot", {"replica": self.name, "public_key": self.node.public}
        )
        master_key = str(snapshot["keys"]["master"])  # pinned: later key sets must come from it
        opened = open_package(snapshot["keys"], self.node, master_key)
        seq = int(snapshot["seq"])
        with self._write():
            install_snapshot(self.db, self.keys, snapshot, opened)
            self._keys_changed()
            now = utcnow()
            with self.db.session() as session:
                session.merge(
                    ReplicaState(
                        id=1,
                        master_url=self.master.url,
                        seq=seq,
                        master_head=seq,
                        applied_at=now,
                        checked_at=now,
                        master_public_key=master_key,
                    )
                )
        self._challenge = str(snapshot["keys"].get("challenge") or "")
        rows = sum(len(rows) for rows in snapshot["tables"].values())
        log.info("identity replica: installed %d rows at sequence %d", rows, seq)
        return rows

    def _list_endpoint(self) -> None:
        """Once per process: be the region's identity endpoint in the master's catalog."""
        if self._endpoint is None:
            return
        region, url = self._endpoint
        path = f"/identity-replica/v1/replicas/{self.name}/endpoint"
        self._call("PUT", path, json={"region": region, "url": url})
        log.info("identity replica: listed as region %s's identity endpoint", region)
        self._endpoint = None

    def _fetch_keys(self) -> None:
        package = self._get("/identity-replica/v1/keys", {"replica": self.name})
        with self.db.session() as session:
            state = session.get(ReplicaState, 1)
            pinned = state.master_public_key if state is not None else None
        if not pinned:
            raise SealError("no master node key pinned: bootstrap this replica again")
        opened = open_package(package, self.node, pinned)
        with self._write():
            self.keys.replace_all(opened)
            self._keys_changed()
        self._challenge = str(package.get("challenge") or self._challenge)
        log.info("identity replica: now holds key set %s", package["set"])

    def _keys_changed(self) -> None:
        if self._on_keys is not None:
            self._on_keys()

    def _record(self, changes: list[dict[str, Any]], head: int) -> None:
        now = utcnow()
        with self._write(), self.db.session() as session:
            apply_changes(session, changes)
            state = present(session.get(ReplicaState, 1), "the replica's position row")
            if changes:
                state.seq = int(changes[-1]["seq"])
                state.applied_at = now
            state.master_head = max(head, state.seq)
            state.checked_at = now

    # --- HTTP ---------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        return self._call("GET", path, params=params).json()

    def check_login(self, timeout: float = LOGIN_CHECK_S) -> None:
        """Log in at the master now (before following: the session keeps the token):
        ``Refused`` if it refuses our credentials, ``Unavailable`` if it does not answer
        within ``timeout`` seconds."""
        following_timeout, self._session.timeout = self._session.timeout, timeout
        try:
            self._master_says("/identity/v3/auth/tokens", lambda: self._session.get_token())
        finally:
            self._session.timeout = following_timeout

    def _call(self, method: str, path: str, **request: Any) -> requests.Response:
        """``method`` on the master's ``path``, logged in (again after a 401, by the session);
        any failure is ``Refused`` or ``Unavailable`` naming the master."""

        def send() -> requests.Response:
            answer: requests.Response = self._session.request(
                self.master.url + path, method, **request
            )
            return answer

        return self._master_says(path, send)

    def _master_says(self, path: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except ks_exceptions.HttpError as error:
            if error.http_status == 401 and _is_login(error):
                raise Refused(
                    f"identity master {self.master.url} refused the login of user "
                    f"{self.master.username!r} (project {self.master.project!r}): wrong "
                    "password or unknown user; fix --password / CASCADE_MASTER_PASSWORD"
                ) from None
            if error.http_status == 403:
                raise Refused(
                    f"identity master {self.master.url} refused {path} to user "
                    f"{self.master.username!r}: following needs the admin role there"
                ) from None
            raise Unavailable(
                f"identity master {self.master.url} answered {error.http_status} to {path}: "
                f"{error.details or error.message}"
            ) from None
        except ks_exceptions.ClientException as error:
            raise Unavailable(f"identity master {self.master.url} unreachable: {error}") from None


def _is_login(error: ks_exceptions.HttpError) -> bool:
    """Whether the refused request was the password login itself (not a replica route)."""
    return bool(error.url and error.url.rstrip("/").endswith("/auth/tokens"))


def _log_retry(error: BaseException, delay: float) -> None:
    if isinstance(error, Refused):
        # INFO: a refusal that lasts ends the follower with one error line (``Following``).
        log.info("identity replica: %s; trying again in %.1f s", error.message, delay)
    elif isinstance(error, Unavailable):
        log.warning("identity replica: %s; retrying in %.1f s", error, delay)
    else:  # a bad answer or a local database error: keep following
        log.error("identity replica: sync failed; retrying in %.1f s", delay, exc_info=error)


class Following:
    """A follower running in a daemon thread until ``stop``, or until it gives up (then
    ``failure`` says why and ``on_give_up`` is called, in the follower's thread)."""

    def __init__(
        self, follower: Follower, on_give_up: Callable[[Refused], None] | None = None
    ) -> None:
        self.follower = follower
        self._stop = threading.Event()
        self._on_give_up = on_give_up
        self._thread = threading.Thread(
            target=self._run, name=f"follow-{follower.name}", daemon=True
        )
        self._thread.start()

    @property
    def failure(self) -> Refused | None:
        return self.follower.failure

    def _run(self) -> None:
        self.follower.run(self._stop)
        failure = self.follower.failure
        if failure is None:
            return
        if self._on_give_up is not None:
            self._on_give_up(failure)  # whoever started us reports it
        else:
            log.error("identity replica: %s; no longer following", failure.message)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop following, without waiting for a long poll in flight: return once no local
        write is under way (at most ``timeout`` s); nothing is written after that."""
        self._stop.set()
        self._thread.join(0.2)  # between two polls it ends by itself
        if self._thread.is_alive() and not self.follower.halt(timeout):
            log.warning("identity replica: a local write still runs after %.0f s", timeout)
