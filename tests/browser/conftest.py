"""Browser tests: every Guichet service running for real (one ``guichet run`` process on
the test database, a throwaway RabbitMQ vhost, free local ports, an aiosmtpd server for
the notifier's mail, routing loaded with ``deploy/config/example.yaml``), and Debian's
Chromium driven by selenium, headless, with a fresh profile.

One set of services and one browser per test module keep a module well under two
minutes. Helpers: sign in through ``/dev/sign-in``, check a page with axe-core (no
serious or critical violation), save screenshots at 1280 px and 360 px into
``tests/browser/artefacts/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from shared.auth import issue_token
from shared.config import Settings
from tests.conftest import ROOT, TICKET_TABLES
from tests.helpers import SmtpServer, free_port, load_routing, wait_until

SECRET = "browser-test-secret-of-at-least-32-bytes"
SERVICES = ("tickets", "routing", "notifier", "attachments", "escalation", "portal")
NOTIFIER_TABLES = (
    "notifier.processed_events, notifier.ticket_facts, notifier.people, notifier.team_managers, notifier.teams,"
    " notifier.categories, notifier.catalogue_revision, notifier.feed_entries, notifier.delivery_attempts,"
    " notifier.emails, notifier.preferences"
)
ARTEFACTS = ROOT / "tests" / "browser" / "artefacts"
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run")


@dataclass
class Stack:
    """The running services: their URLs, the SMTP inbox, the test database."""

    urls: dict[str, str]
    smtp: SmtpServer
    pool: Any
    logs: Path
    process: subprocess.Popen
    settings: Settings = field(default_factory=lambda: Settings.from_env({"GUICHET_JWT_SECRET": SECRET}))

    @property
    def portal(self) -> str:
        return self.urls["portal"]

    def api(self, method: str, service: str, path: str, login: str, *, admin: bool = False, name: str | None = None,
            establishment: str | None = "0540001A", **kwargs: Any) -> requests.Response:
        """A real HTTP call to a service's API as ``login`` (a manager, through the API for now)."""
        token = issue_token(self.settings, sub=login, email=f"{login}@univ.example", name=name,
                            establishment=establishment, admin=admin)
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.urls[service] + path, headers=headers, timeout=30, **kwargs)

    def mails_to(self, address: str) -> list[Any]:
        return [m for m in self.smtp.inbox.messages if address in str(m.get("To", ""))]

    def tail(self) -> str:
        return self.logs.read_text(errors="replace")[-4000:] if self.logs.exists() else ""


def _create_vhost(rabbit_manager: Any, amqp_uri: str) -> tuple[str, str]:
    vhost = f"guichet_browser_{uuid.uuid4().hex[:10]}"
    username = urlsplit(amqp_uri).username or "guest"
    rabbit_manager.create_vhost(vhost)
    rabbit_manager.set_vhost_permissions(vhost, username, ".*", ".*", ".*")
    parts = urlsplit(amqp_uri)
    return vhost, f"{parts.scheme}://{parts.netloc}/{vhost}"


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    """More environment for the module's services (a module overrides this fixture, e.g.
    to configure a single sign-on)."""
    return {}


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, database_url: str, pool: Any, rabbit_manager: Any,
          stack_env: dict[str, str]) -> Iterator[Stack]:
    """Every service, started once for the module."""
    base_uri = request.config.getoption("RABBIT_AMQP_URI")
    vhost, amqp_uri = _create_vhost(rabbit_manager, base_uri)
    with pool.connection() as conn:
        conn.execute(f"TRUNCATE {TICKET_TABLES} RESTART IDENTITY")
        conn.execute("ALTER SEQUENCE tickets.ticket_number RESTART WITH 53350")
        config = yaml.safe_load((ROOT / "deploy" / "config" / "example.yaml").read_text(encoding="utf-8"))
        load_routing(conn, config, NOTIFIER_TABLES)
    smtp = SmtpServer(free_port())
    smtp.start()
    ports = {name: free_port() for name in SERVICES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    scratch = Path(tempfile.mkdtemp(prefix="guichet-browser-"))
    env = {
        **os.environ, "DATABASE_URL": database_url, "AMQP_URI": amqp_uri, "GUICHET_JWT_SECRET": SECRET,
        "GUICHET_ENV": "development", "SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "PUBLIC_URL": urls["portal"],
        "NOTIFIER_POLL_INTERVAL": "0.3", "NOTIFIER_RETRY_BASE": "0.2", "NOTIFIER_RETRY_MAX": "1",
        "ATTACHMENTS_DIR": str(scratch / "attachments"), "LOG_FORMAT": "json", "LOG_LEVEL": "info",
        "PORTAL_FRAME_ANCESTORS": "https://ent.univ.example",
        # The console's queues refresh themselves every 15 s; the tests do not wait that long.
        "PORTAL_CONSOLE_POLL_SECONDS": "1",
        **{f"{name.upper()}_URL": url for name, url in urls.items() if name != "portal"},
        **{f"{name.upper()}_HTTP_ADDRESS": f"127.0.0.1:{port}" for name, port in ports.items()},
        **stack_env,
    }
    logs = scratch / "services.log"
    with logs.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "services.cli", "run", *SERVICES], cwd=ROOT, env=env,
                                   stdout=log, stderr=log)
    stack = Stack(urls, smtp, pool, logs, process)
    try:
        def ready(name: str) -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the services exited:\n{stack.tail()}")
            try:
                return requests.get(urls[name] + ("/healthz" if name == "portal" else "/readyz"),
                                    timeout=2).status_code == 200
            except requests.RequestException:
                return False

        for name in SERVICES:
            wait_until(lambda name=name: ready(name), timeout=90, what=f"{name} to be ready", interval=0.2)

        def catalogue_copied() -> bool:
            with pool.connection() as conn:
                return conn.execute("SELECT count(*) AS n FROM tickets.department_managers").fetchone()["n"] > 0

        wait_until(catalogue_copied, timeout=60, what="the tickets service's copy of routing's teams")
        yield stack
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        smtp.stop()
        # The services' logs stay beside the screenshots, for whoever reads a failure.
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(logs, ARTEFACTS / f"services-{request.module.__name__.rsplit('.', 1)[-1]}.log")
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            rabbit_manager.delete_vhost(vhost)
        except Exception:  # noqa: BLE001 - a vhost left behind is harmless
            pass


class Browser:
    """A selenium-driven Chromium on the portal, with the tests' helpers."""

    def __init__(self, driver: Any, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    @property
    def path(self) -> str:
        parts = urlsplit(self.driver.current_url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str = "main") -> str:
        """The visible text of ``css`` (read again if htmx swapped it meanwhile)."""
        from selenium.common.exceptions import StaleElementReferenceException

        for _ in range(20):
            try:
                return self.find(css).text
            except StaleElementReferenceException:
                time.sleep(0.05)
        return self.find(css).text

    def button(self, label: str) -> Any:
        """The visible button (or submit) whose text is ``label``."""
        from selenium.webdriver.common.by import By

        for element in self.driver.find_elements(By.CSS_SELECTOR, "button, a.button, summary"):
            if element.text.strip() == label and element.is_displayed():
                return element
        raise AssertionError(f"no visible button {label!r} on {self.path}")

    def click_and_wait(self, element: Any, timeout: float = 15) -> None:
        """Click what submits a form (or follows a link) and wait for the next page."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        page = self.driver.find_element("css selector", "html")
        element.click()

        def left(driver: Any) -> bool:
            try:
                page.is_enabled()
                return False
            except WebDriverException:  # stale, or "does not belong to the document"
                return True

        WebDriverWait(self.driver, timeout).until(left)
        WebDriverWait(self.driver, timeout).until(
            lambda d: d.execute_script("return document.readyState") == "complete")

    def press(self, label: str) -> None:
        """Click the visible button ``label`` and wait for the page it leads to."""
        self.click_and_wait(self.button(label))

    def submit(self, css: str) -> None:
        """Click the element ``css`` and wait for the page it leads to."""
        self.click_and_wait(self.find(css))

    def fill(self, css: str, value: str) -> None:
        element = self.find(css)
        element.clear()
        element.send_keys(value)

    def sign_in(self, login: str, name: str | None = None, *, establishment: str = "0540001A",
                admin: bool = False, next_path: str = "/") -> None:
        self.sign_out()
        self.open(f"/dev/sign-in?next={next_path}")
        self.fill("#login", login)
        self.fill("#name", name or login.title())
        self.fill("#email", f"{login}@univ.example")
        self.fill("#establishment", establishment)
        if admin:
            self.find("#admin").click()
        self.submit("form[action='/dev/sign-in'] button[type=submit]")
        wait_until(lambda: "/dev/sign-in" not in self.path, timeout=10, what="the sign-in")

    def sign_out(self) -> None:
        self.driver.delete_all_cookies()

    def axe(self, context: str = "") -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the current page (WCAG 2.x A/AA)."""
        self.driver.execute_script(AXE.read_text(encoding="utf-8"))
        result = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',"
            " 'best-practice']}}).then(r => done(r.violations)).catch(e => done([{id: 'axe-error',"
            " impact: 'critical', help: String(e), nodes: []}]));"
        )
        bad = [v for v in result if v.get("impact") in ("serious", "critical")]
        return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
                 "targets": [n.get("target") for n in v.get("nodes", [])][:5]} for v in bad]

    def assert_accessible(self) -> None:
        violations = self.axe()
        assert not violations, f"axe-core on {self.path}:\n{json.dumps(violations, indent=2, ensure_ascii=False)}"

    def screenshots(self, name: str) -> list[Path]:
        """The page at 1280 px and 360 px wide, full height, as PNG files."""
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        saved = []
        for width, label in ((1280, "desktop"), (360, "phone")):
            self.driver.set_window_size(width, 900)
            height = self.driver.execute_script(
                "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
            self.driver.set_window_size(width, min(max(int(height) + 40, 600), 4000))
            path = ARTEFACTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}-{label}.png"
            self.driver.save_screenshot(str(path))
            saved.append(path)
        self.driver.set_window_size(1280, 900)
        return saved

    def check_page(self, name: str) -> None:
        """axe-core at both widths, and the screenshots."""
        self.assert_accessible()
        self.screenshots(name)
        self.driver.set_window_size(360, 800)
        self.assert_accessible()
        self.driver.set_window_size(1280, 900)


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Browser]:
    if not AXE.exists():
        pytest.fail(f"axe-core is missing at {AXE}: run scripts/test-deps.sh")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="guichet-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,900")
    options.add_argument("--lang=fr-FR")
    options.add_experimental_option("prefs", {"intl.accept_languages": "fr-FR,fr"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield Browser(driver, stack.portal)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def portal_client(stack: Stack, login: str, name: str | None = None,
                  establishment: str = "0540001A") -> tuple[requests.Session, str]:
    """A plain HTTP client signed in to the portal through ``/dev/sign-in``; its CSRF token."""
    client = requests.Session()
    form = client.get(stack.portal + "/dev/sign-in", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    done = client.post(stack.portal + "/dev/sign-in", timeout=10, allow_redirects=False,
                       data={"login": login, "name": name or login, "establishment": establishment,
                             "csrf_token": token})
    assert done.status_code == 303, done.text
    home = client.get(stack.portal + "/", timeout=10)
    return client, re.search(r'name="csrf_token" value="([^"]+)"', home.text).group(1)


def wait_for(predicate: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    """``wait_until`` with real sleeps (the browser tests' own thread)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
