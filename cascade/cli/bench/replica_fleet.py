"""The replicas ``cascade bench identity --replica`` follows the master with, and what it times
on them: change visibility and Fernet key rotation.

- Visibility: the time from a write at the master (a user created) until it is visible at
  the real replica process (it answers ``GET /users/{id}``), or until every simulated replica
  applied it. A simulated replica is a real ``Follower`` (its own SQLite database, key
  repository and node key, bootstrapped from the master's snapshot) long-polling the master
  over HTTP from its own thread, as ``cascade identity-replica`` does; only the password login
  is replaced by one shared admin token (no 100 bcrypt hashes).
- Rotation: ``KeyRotation.rotate`` run from this process on the master's data dir, as
  ``cascade`` operators do, timed from its start until the new key set is promoted: staged,
  fetched sealed and installed by every registered replica (each learns from its long poll),
  reported held, promoted. Then tokens minted at the master with the new primary must
  validate at the replica process.
"""

from __future__ import annotations

import random
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from keystoneauth1 import token_endpoint

from cascade.cli.clients import Client, SessionClient, rescoped
from cascade.cli.ops import operator_services
from cascade.db import Database
from cascade.db.migrate import upgrade
from cascade.errors import CascadeError
from cascade.identity.follower import Follower, Master
from cascade.identity.keys import KeyRepository
from cascade.identity.sealing import NodeKey

TOKENS = "/identity/v3/auth/tokens"


def create_user(master: SessionClient) -> str:
    """A user created at the master, without a password so the write is not a bcrypt hash."""
    name = f"bench-visible-{random.getrandbits(48):012x}"
    body = {"user": {"name": name, "domain_id": "default"}}
    return str(master.call("POST", "/identity/v3/users", body, 201)["user"]["id"])


def visible_at_process(
    master: SessionClient, replica: Client, admin_token: str, changes: int
) -> list[float]:
    """Seconds from a user created at the master until the replica process serves it."""
    headers = {"X-Auth-Token": admin_token}
    found = []
    for _ in range(changes):
        time.sleep(random.uniform(0.1, 0.3))  # land anywhere in the master's poll cycle
        started = time.perf_counter()
        user_id = create_user(master)
        deadline = started + 30
        while replica.request("GET", f"/identity/v3/users/{user_id}", headers).status != 200:
            if time.perf_counter() > deadline:
                raise CascadeError(f"user {user_id} not visible at the replica in 30 s")
        found.append(time.perf_counter() - started)
    return found


class Simulated(Follower):
    """A follower that logs in with a shared token and notes when it applied each change."""

    def __init__(self, root: Path, template: Path, master: Master, token: str) -> None:
        root.mkdir(parents=True)
        shutil.copyfile(template, root / "cascade.db")
        super().__init__(
            Database(f"sqlite:///{root / 'cascade.db'}"),
            KeyRepository(root / "fernet-keys"),
            NodeKey(root / "node.key"),
            master,
            f"bench-{root.name}",
            auth=token_endpoint.Token(None, token),
        )
        self.applied: dict[int, float] = {}  # last seq of a batch -> when it committed
        self.changed = threading.Event()

    def _record(self, changes: list[dict[str, Any]], head: int) -> None:
        super()._record(changes, head)
        if changes:
            self.applied[int(changes[-1]["seq"])] = time.perf_counter()
            self.changed.set()

    def reached(self, seq: int) -> float | None:
        """When this replica's position first reached ``seq``."""
        times = [at for applied, at in self.applied.items() if applied >= seq]
        return min(times) if times else None


@contextmanager
def simulated_replicas(
    root: Path, master: SessionClient, password: str, token: str, count: int
) -> Iterator[list[Simulated]]:
    """``count`` followers of the master, each in its own thread, bootstrapped and long-polling;
    stopped (and their threads joined) on exit."""
    template = root / "template.db"
    root.mkdir(parents=True, exist_ok=True)
    schema = Database(f"sqlite:///{template}")
    upgrade(schema)  # migrate once, copy the file: each replica still has its own database
    schema.dispose()
    followed = Master(master.base_url, "admin", password)
    followers = [Simulated(root / f"r{i:03d}", template, followed, token) for i in range(count)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=f.run, args=(stop,), name=f.name, daemon=True) for f in followers
    ]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while any(f.position() is None for f in followers):
            if time.monotonic() > deadline:
                raise CascadeError("simulated replicas did not bootstrap in 120 s")
            time.sleep(0.1)
        time.sleep(0.5)  # each is now in its long poll
        yield followers
    finally:
        stop.set()
        with suppress(CascadeError):  # a change ends every long poll at once, so the
            create_user(master)  # threads see ``stop``
        for thread in threads:
            thread.join(timeout=15)
        for follower in followers:
            follower.db.dispose()


def visible_at_simulated(
    followers: list[Simulated], master: SessionClient, changes: int
) -> list[float]:
    """Seconds from a user created at the master until every follower applied it."""
    found = []
    for _ in range(changes):
        time.sleep(random.uniform(0.1, 0.3))
        started = time.perf_counter()
        create_user(master)
        seq = int(master.call("GET", "/identity-replica/v1/changes?limit=1&after=0")["head"])
        deadline = started + 30
        while True:
            reached = [f.reached(seq) for f in followers]
            if all(at is not None for at in reached):
                break
            if time.perf_counter() > deadline:
                missing = sum(at is None for at in reached)
                raise CascadeError(f"{missing} replicas did not apply seq {seq} in 30 s")
            time.sleep(0.005)
        found.append(max(at for at in reached if at is not None) - started)
    return found


# --- key rotation -----------------------------------------------------------------------


@dataclass
class Rotations:
    """Key rotations timed with ``replicas`` simulated replicas following the master; the
    replica process is registered too, so every rotation waits for ``replicas + 1`` sites."""

    replicas: int
    seconds: list[float] = field(default_factory=list)  # start of rotate() until promoted
    sites: int = 0  # replicas registered at the master (the fewest over the rotations)
    holding: int = 0  # of which held the new set when it was promoted (the fewest)
    master_pickup_s: float = 0.0  # last promotion until the master API mints with its key
    tokens: int = 0  # minted at the master after the last rotation, validated at the replica
    token_errors: int = 0

    def figures(self) -> dict[str, Any]:
        prefix = f"rotation_{self.replicas}_sites"
        return {
            f"{prefix}_p50_s": round(statistics.median(self.seconds), 4),
            f"{prefix}_max_s": round(max(self.seconds), 4),
            "rotations": len(self.seconds),
            "rotation_sites_registered": self.sites,
            "rotation_sites_holding": self.holding,
            "rotation_master_pickup_s": round(self.master_pickup_s, 3),
            "rotation_tokens_checked": self.tokens,
            "rotation_token_errors": self.token_errors,
        }


def rotate_keys(
    master_data_dir: Path, replicas: int, count: int, note: Callable[[str], None]
) -> Rotations:
    """``count`` full rotations of the master's key set, each timed until promoted; every
    registered replica must hold the new set. ``max_active_keys`` leaves room for all the
    rotations, so none drops a key (which a recent rotation would refuse to do)."""
    done = Rotations(replicas)
    with operator_services(master_data_dir) as services:
        rotation = services.key_rotation(max_active_keys=count + 3)
        for number in range(1, count + 1):
            started = time.perf_counter()
            report = rotation.rotate(timeout=30)
            elapsed = time.perf_counter() - started
            if not report.promoted or report.missing:
                missing = ", ".join(site.name for site in report.missing)
                raise CascadeError(f"rotation {number} not promoted in 30 s; missing: {missing}")
            done.seconds.append(elapsed)
            done.sites = min(done.sites or report.sites, report.sites)
            done.holding = min(done.holding or len(report.holding), len(report.holding))
            note(
                f"rotation {number}: key {report.primary} primary, held by "
                f"{len(report.holding)}/{report.sites} sites, in {elapsed:.3f} s"
            )
    return done


def check_new_primary(
    done: Rotations,
    master: SessionClient,
    replica: Client,
    admin_token: str,
    master_keys: Path,
    count: int = 20,
) -> None:
    """Wait until the master API mints with the new primary key (it follows its key
    repository by itself, within 1 s), then validate ``count`` tokens it mints there (token
    method: no bcrypt) at the replica process, counting refusals."""
    keys = KeyRepository(master_keys).read_all()
    primary = Fernet(keys[max(keys)])
    auth_url = f"{master.base_url}/identity/v3"
    started = time.perf_counter()
    while not _encrypted_with(primary, rescoped(auth_url, admin_token)):
        if time.perf_counter() - started > 10:
            raise CascadeError("the master did not mint with the new primary key in 10 s")
        time.sleep(0.02)
    done.master_pickup_s = time.perf_counter() - started
    for _ in range(count):
        headers = {"X-Auth-Token": admin_token, "X-Subject-Token": rescoped(auth_url, admin_token)}
        done.tokens += 1
        done.token_errors += replica.request("GET", TOKENS, headers).status != 200


def _encrypted_with(key: Fernet, token: str) -> bool:
    try:
        key.decrypt(token + "=" * (-len(token) % 4))  # Keystone strips the padding
    except InvalidToken:
        return False
    return True
