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
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from cascade.db import Database
from cascade.db.models import ReplicaState, utcnow
from cascade.errors import Unavailable, present
from cascade.identity.keys import KeyRepository
from cascade.identity.render import password_auth
from cascade.identity.replica import apply_changes, install_snapshot, open_package
from cascade.identity.sealing import NodeKey, SealError

log = logging.getLogger(__name__)
BATCH = 1000


@dataclass(frozen=True)
class Master:
    url: str  # where the master serves /identity/v3 and /identity-replica/v1
    username: str
    password: str
    project: str = "admin"


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
        http: httpx.Client | None = None,
        on_keys: Callable[[], None] | None = None,
        endpoint: tuple[str, str] | None = None,
    ) -> None:
        self.db = db
        self.keys = keys
        self.node = node
        self.master = master
        self.name = name  # how the master lists this replica
        self._http = http or httpx.Client(base_url=master.url, timeout=70)
        self._on_keys = on_keys
        self._endpoint = endpoint  # (region, identity URL) to list in the master's catalog
        self._token: str | None = None

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

    def run(self, stop: threading.Event, wait: float = 10.0, retry: float = 1.0) -> None:
        """Follow until ``stop`` is set; an unreachable master is retried every ``retry`` s
        while this replica keeps serving what it has."""
        while not stop.is_set():
            try:
                self.sync(wait)
            except Unavailable as error:
                log.warning("identity replica: %s; retrying in %.0f s", error, retry)
                stop.wait(retry)
            except Exception:  # a bad answer or a local database error: keep following
                log.exception("identity replica: sync failed; retrying in %.0f s", retry)
                stop.wait(retry)

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

    def _call(self, method: str, path: str, **request: Any) -> httpx.Response:
        for attempt in range(2):
            try:
                response = self._http.request(
                    method, path, headers={"X-Auth-Token": self._login()}, **request
                )
            except httpx.HTTPError as error:
                raise Unavailable(
                    f"identity master {self.master.url} unreachable: {error}"
                ) from None
            if response.status_code == 401 and attempt == 0:
                self._token = None  # expired or keys rotated: log in again, once
                continue
            if response.status_code not in (200, 204):
                raise Unavailable(
                    f"identity master {self.master.url} answered {response.status_code} "
                    f"to {path}: {response.text[:200]}"
                )
            return response
        raise AssertionError("unreachable")

    def _login(self) -> str:
        if self._token is None:
            body = password_auth(self.master.username, self.master.password, self.master.project)
            try:
                response = self._http.post("/identity/v3/auth/tokens", json=body)
            except httpx.HTTPError as error:
                raise Unavailable(
                    f"identity master {self.master.url} unreachable: {error}"
                ) from None
            if response.status_code != 201:
                raise Unavailable(
                    f"identity master {self.master.url} refused the replica's login "
                    f"({response.status_code})"
                )
            self._token = response.headers["X-Subject-Token"]
        return self._token


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
