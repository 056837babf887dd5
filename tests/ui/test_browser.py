"""End to end in Debian's Chromium (headless, driven by Selenium through chromedriver): a
``cascade up`` with a worker and two site-sims that follow its identity. Log in, see both
sites green, cut one from the master and watch it turn red without a reload, create a
server from the page and watch its operation finish live, see a network stretched over both
sites on its page, take the other site down and watch a convergence pass mark it
unreachable, log out and be refused (the API refuses the token too). A screenshot of each
page goes to a folder the test prints."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from cascade.cli.embedded import EmbeddedCascade, EmbeddedSite
from cascade.sites.driver import SiteDriver
from tests.conftest import ADMIN_PASSWORD, IN_CI
from tests.identity.test_replica_process import login

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ENV = {"CASCADE_PASSWORD_HASH_ROUNDS": "4"}
# A convergence pass every 5 s, giving up on a site after 10 s: a site down shows promptly.
MASTER_ENV = {**ENV, "CASCADE_CONVERGENCE_INTERVAL": "5", "CASCADE_SITE_CALL_DEADLINE": "10"}
IMAGE = "dashboard-image"
PAGES = ("sites", "operations", "cluster", "fabric", "networks", "protection", "replication")

pytestmark = pytest.mark.skipif(
    not IN_CI and not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="chromium and chromium-driver are not installed (apt); set CI=true to require them",
)


def wait_for(what: str, condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.25)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[EmbeddedCascade, list[EmbeddedSite]]]:
    """Cascade with one worker and two site-sims registered as identity replicas."""
    with ExitStack() as stack:
        master = stack.enter_context(
            EmbeddedCascade(tmp_path / "master", ADMIN_PASSWORD, env=MASTER_ENV, workers=1)
        )
        sites = [
            stack.enter_context(
                EmbeddedSite(
                    name,
                    tmp_path / name,
                    ADMIN_PASSWORD,
                    args=["--build-seconds", "0.5"],
                    env=ENV,
                    region=region,
                )
            )
            for name, region in (("site-a", "RegionA"), ("site-b", "RegionB"))
        ]
        SiteDriver(sites[0].access()).call(
            "upload image",
            lambda c: c.image.create_image(
                name=IMAGE, data=b"ui" * 512, disk_format="raw", container_format="bare"
            ),
        )
        admin = login(master.url, "admin", ADMIN_PASSWORD)
        for site in sites:
            spec = {
                "name": site.site_name,
                "region_name": site.region,
                "identity_url": site.auth_url,
                "identity": "replica",
                "credentials": {
                    "username": "admin",
                    "password": ADMIN_PASSWORD,
                    "project_name": "admin",
                },
            }
            created = httpx.post(
                f"{master.url}/v1/sites", json=spec, headers={"X-Auth-Token": admin}, timeout=60
            )
            assert created.status_code == 201, created.text
        yield master, sites


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1500,1000")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.timeout(420)
def test_the_dashboard_in_chromium(
    cloud: tuple[EmbeddedCascade, list[EmbeddedSite]], browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    driver = browser
    master, (site_a, site_b) = cloud
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"dashboard screenshots: {shots}")

    def shot(name: str) -> None:
        driver.save_screenshot(str(shots / f"{name}.png"))

    def read(script: str, *args: str) -> str:
        """One DOM read in one script: htmx may swap the element between two WebDriver calls."""
        return str(driver.execute_script(script, *args) or "")

    def row_class(site: str) -> str:
        return read("return document.getElementById('site-' + arguments[0])?.className", site)

    def map_colour(site: str) -> str:
        return read("return document.getElementById('map-' + arguments[0])?.dataset.colour", site)

    driver.get(f"{master.url}/ui/login")
    shot("login")
    driver.find_element(By.ID, "user").send_keys("admin")
    driver.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD)
    driver.find_element(By.ID, "project").send_keys("admin")
    driver.find_element(By.ID, "login").click()
    wait_for("the sites page", lambda: driver.current_url.endswith("/ui/sites"), 30)
    wait_for(
        "both sites green",
        lambda: row_class("site-a") == "green" and row_class("site-b") == "green",
        60,
    )
    assert map_colour("site-b") == "green"
    shot("sites")

    admin = login(master.url, "admin", ADMIN_PASSWORD)
    cut = httpx.put(
        f"{site_b.url}/sim/v1/faults",
        json={"cut_from_master": True},
        headers={"X-Auth-Token": admin},
    )
    assert cut.status_code == 200, cut.text
    change = httpx.post(  # a change the cut site cannot follow
        f"{master.url}/identity/v3/users",
        json={"user": {"name": "after-the-cut", "password": "pw-after-the-cut"}},
        headers={"X-Auth-Token": admin},
    )
    assert change.status_code == 201, change.text
    wait_for("site-b to turn red", lambda: row_class("site-b") == "red", 120)
    assert row_class("site-a") == "green"
    assert map_colour("site-b") == "red"
    shot("sites-cut")

    driver.get(f"{master.url}/ui/operations")
    driver.find_element(By.ID, "server-name").send_keys("from-the-dashboard")
    driver.find_element(By.ID, "server-image").send_keys(IMAGE)
    driver.find_element(By.CSS_SELECTOR, "#server-site option[value='site-a']").click()
    shot("operations-form")
    driver.find_element(By.ID, "server-create").click()
    wait_for("the operation page", lambda: "/ui/operations/" in driver.current_url, 30)

    def status() -> str:
        return read("return document.getElementById('op-status')?.textContent")

    wait_for("the operation to finish", lambda: status() in ("succeeded", "failed"), 120)
    shot("operation")
    assert status() == "succeeded", read("return document.getElementById('operation').innerText")
    assert read("return document.querySelectorAll('#timeline rect.bar.succeeded').length") != "0"

    network = httpx.post(
        f"{master.url}/v1/networks",
        json={"name": "stretched", "cidr": "10.20.0.0/24", "sites": ["site-a", "site-b"]},
        headers={"X-Auth-Token": admin},
        timeout=60,
    )
    assert network.status_code == 202, network.text
    network_id = network.json()["network"]["id"]

    driver.get(f"{master.url}/ui/operations")
    wait_for(
        "the list", lambda: "server.create" in driver.find_element(By.ID, "operations").text, 30
    )
    shot("operations")
    for name in PAGES[2:]:
        driver.get(f"{master.url}/ui/{name}")
        shot(name)

    def network_status() -> str:
        driver.get(f"{master.url}/ui/networks/{network_id}")
        return read("return document.getElementById('network-status')?.textContent")

    wait_for("the network at both sites", lambda: network_status() == "ACTIVE", 120)
    assert read("return document.getElementById('segments').innerText").count("present") == 2
    shot("network")

    down = httpx.post(
        f"{site_a.url}/sim/v1/outage", json={"seconds": 300}, headers={"X-Auth-Token": admin}
    )
    assert down.status_code == 202, down.text
    driver.get(f"{master.url}/ui/sites")
    wait_for(
        "a convergence pass to find site-a unreachable",
        lambda: (
            read("return document.getElementById('site-site-a')?.dataset.health") == "unreachable"
        ),
        120,
    )
    assert map_colour("site-a") == "red"
    shot("sites-unreachable")

    token = (driver.get_cookie("cascade_session") or {}).get("value")
    assert token
    driver.find_element(By.ID, "logout").click()
    wait_for("the login page", lambda: driver.current_url.endswith("/ui/login"), 30)
    driver.get(f"{master.url}/ui/sites")
    assert driver.current_url.endswith("/ui/login")  # refused: back to the form
    refused = httpx.get(f"{master.url}/v1/sites", headers={"X-Auth-Token": token})
    assert refused.status_code == 401
    assert sorted(path.stem for path in shots.iterdir()) == sorted(
        [
            "login",
            "sites",
            "sites-cut",
            "operations-form",
            "operation",
            "operations",
            "network",
            "sites-unreachable",
            *PAGES[2:],
        ]
    )
    assert os.path.getsize(shots / "sites-cut.png") > 0
