"""A replica's follower: it fills a site's identity database from the master's snapshot and
then follows the master's change log (HTTP long poll on ``/identity-replica/v1``).

Fernet keys arrive the same way: each poll tells the master which key set this replica holds
(by id) and learns which one it should hold; when they differ the replica fetches the set,
sealed for its node key by the master's node key it pinned at bootstrap, and installs it
(0600 files). A rotation at the master waits for every replica to hold the new set.

The replica's position (``replica_state.seq``) moves in the same transaction as the changes
it covers, so after any interruption (the process killed, the master unreachable, the link
cut) it resumes from the last change it applied: nothing is applied twice or skipped.
Changes arrive in sequence order; any at or below the position (a repeated answer) are
dropped.

Every call to the master goes through a keystoneauth1 session: a v3 password login at the
master's ``/identity/v3`` (the session logs in again by itself when a token is refused, say
after a key rotation), the ``/identity-replica/v1`` routes at absolute URLs, a long-poll read
timeout. An unreachable master is retried with Cascade's one backoff (``cascade.retry``,
0.5 s doubling to 5 s) while the replica keeps serving what it has.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from keystoneauth1.plugin import BaseAuthPlugin

from cascade.db import Database
from cascade.db.models import ReplicaState, utcnow
from cascade.errors import Unavailable, present
from cascade.identity.keys import KeyRepository
from cascade.identity.replica import apply_changes, install_snapshot, open_package
from cascade.identity.sealing import NodeKey, SealError
from cascade.retry import Backoff, until_stopped

log = logging.getLogger(__name__)
BATCH = 1000
READ_TIMEOUT = 70.0  # seconds: longer than the longest long poll the master serves (60 s)
# A cut-off replica costs the master nothing between attempts, and the cap bounds how long
# after the link returns the replica notices: a few seconds, not the supervisor's 30.
MASTER_BACKOFF = Backoff(first=0.5, cap=5.0)


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
        held = self.keys.set_id()
        answer = self._get(
            "/identity-replica/v1/changes",
            {
                "after": position.seq,
                "limit": BATCH,
                "wait": wait,
                "replica": self.name,
                "keys": held,
            },
        )
        if answer.get("keys") and answer["keys"] != held:
            self._fetch_keys()
        changes = [c for c in answer["changes"] if c["seq"] > position.seq]
        self._record(changes, int(answer["head"]))
        return len(changes)

    def run(self, stop: threading.Event, wait: float = 10.0) -> None:
        """Follow until ``stop`` is set. A failed poll (an unreachable master, a bad answer, a
        local database error) is retried with ``MASTER_BACKOFF`` while this replica keeps
        serving what it has; the first poll that works resets the backoff."""
        while not stop.is_set():
            until_stopped(MASTER_BACKOFF, stop, lambda: self.sync(wait), _log_retry)

    def _bootstrap(self) -> int:
        snapshot = self._get(
            "/identity-replica/v1/snapshot", {"replica": self.name, "public_key": self.node.public}
        )
        master_key = str(snapshot["keys"]["master"])  # pinned: later key sets must come from it
        opened = open_package(snapshot["keys"], self.node, master_key)
        install_snapshot(self.db, self.keys, snapshot, opened)
        self._keys_changed()
        now = utcnow()
        seq = int(snapshot["seq"])
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
        self.keys.replace_all(open_package(package, self.node, pinned))
        self._keys_changed()
        log.info("identity replica: now holds key set %s", package["set"])

    def _keys_changed(self) -> None:
        if self._on_keys is not None:
            self._on_keys()

    def _record(self, changes: list[dict[str, Any]], head: int) -> None:
        now = utcnow()
        with self.db.session() as session:
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

    def _call(self, method: str, path: str, **request: Any) -> requests.Response:
        """``method`` on the master's ``path``, logged in (again after a 401, by the session);
        any failure is ``Unavailable`` naming the master."""
        try:
            response: requests.Response = self._session.request(
                self.master.url + path, method, **request
            )
        except ks_exceptions.HttpError as error:
            raise Unavailable(
                f"identity master {self.master.url} answered {error.http_status} to {path}: "
                f"{error.details or error.message}"
            ) from None
        except ks_exceptions.ClientException as error:
            raise Unavailable(f"identity master {self.master.url} unreachable: {error}") from None
        return response


def _log_retry(error: BaseException, delay: float) -> None:
    if isinstance(error, Unavailable):
        log.warning("identity replica: %s; retrying in %.1f s", error, delay)
    else:  # a bad answer or a local database error: keep following
        log.error("identity replica: sync failed; retrying in %.1f s", delay, exc_info=error)


class Following:
    """A follower running in a daemon thread until ``stop``."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=follower.run, args=(self._stop,), name=f"follow-{follower.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
