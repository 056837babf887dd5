"""Workers beyond one machine: the API, the database and an emulated site each on a machine
of its own, a worker on each of three more (network namespaces on one bridge, see ``machines``), all
of them reaching PostgreSQL over that network. Server creates stream in; one machine's
workers are SIGKILLed and another machine's link is cut while they run. Every operation
completes exactly once, the site holds one server per Cascade server, and the cut-off worker
fences itself (it stops before a peer may resume its work, while its link is still down), so
nothing it had started runs again when the link comes back."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from cascade.cli.embedded import ChildServer, EmbeddedWorker
from cascade.config import Settings
from cascade.db.models import Operation
from cascade.identity.render import password_auth
from cascade.services import Services
from cascade.sites.driver import SiteDriver
from tests.conftest import ADMIN_PASSWORD, make_settings
from tests.engine.conftest import IMAGE, WORKER_ENV, wait_nothing_pending
from tests.engine.machines import (
    Api,
    Machine,
    NamespacedApi,
    NamespacedSite,
    machines,
    postgres_on,
)
from tests.fabric.netns import require_netns

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(420)]
WORKERS = ("m1", "m2", "m3")  # machines running a worker each (its executor id: the name)
FIRST, LATER = 20, 4  # server creates before the kill and the cut, and after the link is back
BUILD_SECONDS = "2"  # how long the site takes to build a server: creates stay in flight
# A lease of 6 s (worker_dead_after 8 s) and fewer looks at the queue: on a loaded machine a
# process may get no CPU for seconds, and a worker merely starved must not fence itself.
TIMING = {
    "CASCADE_WORKER_DEAD_AFTER": "8",
    "CASCADE_HEARTBEAT_INTERVAL": "0.5",
    "CASCADE_QUEUE_POLL_INTERVAL": "0.2",
}


@dataclass
class Lab:
    machines: dict[str, Machine]
    api: Api
    site: NamespacedSite
    workers: dict[str, EmbeddedWorker]


@pytest.fixture
def settings(postgres_url: str, tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", database_url=postgres_url)


def _start_all(children: list[ChildServer]) -> None:
    """Start them side by side (each waits until it is ready)."""
    with ThreadPoolExecutor(len(children)) as pool:
        list(pool.map(lambda child: child.start(timeout=180), children))


@pytest.fixture
def lab(tmp_path: Path, settings: Settings, services: Services) -> Iterator[Lab]:
    require_netns()
    with ExitStack() as stack:
        net = stack.enter_context(machines(["db", "api", "site", *WORKERS]))
        stack.enter_context(postgres_on(net["db"]))
        url = make_url(str(settings.database_url)).set(host=net["db"].address)
        env = {"CASCADE_DATABASE_URL": url.render_as_string(hide_password=False)}
        env["CASCADE_PASSWORD_HASH_ROUNDS"] = "4"
        server = NamespacedApi(settings.data_dir, net["api"], env)
        site = NamespacedSite(
            "site-x", tmp_path / "site-x", ADMIN_PASSWORD, net["site"],
            ["--build-seconds", BUILD_SECONDS],
        )  # fmt: skip
        worker_env = {**WORKER_ENV, **TIMING, **env}
        workers = {}
        for name in WORKERS:
            workers[name] = EmbeddedWorker(settings.data_dir, name, services.db, env=worker_env)
            workers[name].launcher = net[name].launcher
        children: list[ChildServer] = [server, site, *workers.values()]
        for child in children:
            stack.callback(child.stop)
        _start_all(children)
        net["site"].run(lambda: _upload_image(site))
        api = Api(net["api"], server.url)
        stack.callback(api.close)
        login = password_auth("admin", ADMIN_PASSWORD, "admin")
        api.token = api.call("POST", "/identity/v3/auth/tokens", 201, json=login).headers[
            "X-Subject-Token"
        ]
        credentials = {"username": "admin", "password": ADMIN_PASSWORD, "project_name": "admin"}
        body = {"name": site.site_name, "region_name": site.region}
        api.call("POST", "/v1/sites", 201, json={**body, "identity_url": site.auth_url,
                                                 "credentials": credentials})  # fmt: skip
        yield Lab(net, api, site, workers)


def _upload_image(site: NamespacedSite) -> None:
    SiteDriver(site.access()).call(
        "upload image",
        lambda c: c.image.create_image(
            name=IMAGE, data=b"machines" * 512, disk_format="raw", container_format="bare"
        ),
    )


def _servers_at(site: NamespacedSite) -> list[Any]:
    return site.machine.run(
        lambda: SiteDriver(site.access()).call(
            "list servers", lambda c: list(c.compute.servers(details=True))
        )
    )


def _until(
    condition: Callable[[], bool], timeout: float, what: str, keep: EmbeddedWorker | None = None
) -> None:
    """Wait for ``condition``; meanwhile start ``keep`` again whenever it is no longer
    alive, as its supervisor would (starved for longer than its lease, it fenced itself)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        if keep is not None and (_exited(keep) or not keep.is_ready()):
            print(f"worker {keep.executor_id} ended on its own: started again")
            keep.stop()
            keep.start(timeout=180)
        time.sleep(0.1)


def _exited(child: ChildServer) -> bool:
    """The child's process ended (a zombie until it is waited for), or there is none."""
    try:
        state = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def _create(lab: Lab, count: int, prefix: str) -> dict[str, str]:
    """Server id -> its create's operation id."""
    created = {}
    for index in range(count):
        body = {"name": f"{prefix}-{index}", "flavor": "m1.tiny", "image": IMAGE}
        accepted = lab.api.call("POST", "/v1/servers", 202, json={**body, "site": "site-x"}).json()
        created[accepted["server"]["id"]] = accepted["operation"]["id"]
    return created


def _running_on(services: Services) -> set[str]:
    with services.db.session() as session:
        running = select(Operation.executor_id).where(Operation.status == "running")
        return {executor for executor in session.scalars(running) if executor}


def _unfinished(services: Services, operation_ids: list[str]) -> int:
    with services.db.session() as session:
        return session.scalar(
            select(func.count()).where(
                Operation.id.in_(operation_ids), Operation.status.not_in(("succeeded", "failed"))
            )
        ) or 0  # fmt: skip


def _ended(worker: EmbeddedWorker, timeout: float) -> bool:
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(worker.wait)
        try:
            waiting.result(timeout=timeout)
        except TimeoutError:
            worker.kill()  # the wait ends with it
            return False
    return True


def _outcomes(lab: Lab, operation_ids: list[str]) -> dict[str, dict[str, Any]]:
    return {
        op_id: lab.api.call("GET", f"/v1/operations/{op_id}", 200).json()["operation"]
        for op_id in operation_ids
    }


def test_a_killed_machine_and_a_cut_machine_lose_nothing_and_double_nothing(
    lab: Lab, services: Services
) -> None:
    killed, cut = lab.workers["m1"], lab.workers["m2"]
    began = time.monotonic()
    first = _create(lab, FIRST, "vm")
    wanted = {killed.executor_id, cut.executor_id}
    _until(lambda: wanted <= _running_on(services), 120, "creates running on m1 and m2")
    killed.kill()
    lab.machines["m2"].cut()
    print(f"killed m1 and cut m2 {time.monotonic() - began:.1f} s after the first create")

    # Cut off from the database, the worker fences itself while its link is down.
    assert _ended(cut, 90), "the cut-off worker kept running without a lease"
    log = cut.log_file.read_text()
    assert "could not renew its lease" in log, log[-3000:]
    print(f"m2's worker fenced itself {time.monotonic() - began:.1f} s after the first create")
    survivor = lab.workers["m3"]
    unfinished = list(first.values())
    _until(lambda: _unfinished(services, unfinished) == 0, 240, "the first creates", survivor)
    at_site = Counter(s.metadata.get("cascade_id") for s in _servers_at(lab.site))
    assert at_site == Counter(dict.fromkeys(first, 1)), "a duplicate or a leak at the site"

    # The link comes back and the fenced worker is started again, as a supervisor would.
    lab.machines["m2"].heal()
    cut.start(timeout=120)
    print(f"first creates done {time.monotonic() - began:.1f} s after the first")
    later = _create(lab, LATER, "later")
    unfinished = list(later.values())
    _until(lambda: _unfinished(services, unfinished) == 0, 240, "the later creates", survivor)

    outcomes = _outcomes(lab, [*first.values(), *later.values()])
    failed = {op_id: op["error"] for op_id, op in outcomes.items() if op["status"] != "succeeded"}
    assert failed == {}
    print("finished by", Counter(op["executor_id"] for op in outcomes.values()))
    servers = _servers_at(lab.site)
    at_site = Counter(s.metadata.get("cascade_id") for s in servers)
    assert at_site == Counter(dict.fromkeys([*first, *later], 1)), "a step ran twice"
    assert {s.status for s in servers} == {"ACTIVE"}
    listed = lab.api.call("GET", "/v1/servers", 200).json()["servers"]
    assert {s["id"]: s["status"] for s in listed} == dict.fromkeys([*first, *later], "ACTIVE")
    wait_nothing_pending(services)
