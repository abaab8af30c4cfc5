"""CORS (``CORS_ALLOWED_ORIGINS``) on the tickets service, over real HTTP: a listed
origin's preflight is answered and its answers expose ETag and Location; another
origin gets nothing; and a real Chromium on a page of a listed origin files a ticket
with fetch(), while a page of another origin is blocked by the browser."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from services.tickets.service import TicketsService
from shared.cors import ALLOWED_HEADERS
from tests.e2e.conftest import ALICE, SECRET, Api
from tests.helpers import free_port, serve

ENT_PORT = free_port()
ENT = f"http://127.0.0.1:{ENT_PORT}"      # the listed ENT frontend
OTHER_PORT = free_port()
OTHER = f"http://127.0.0.1:{OTHER_PORT}"  # an origin nobody listed


@pytest.fixture
def cors_api(container_factory, broker_uri, database_url, tickets_db, monkeypatch) -> Api:
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", f"{ENT}, https://ent.univ.example/")
    return Api(serve(container_factory, TicketsService, "tickets", AMQP_URI=broker_uri, DATABASE_URL=database_url))


def preflight(api: Api, origin: str, method: str = "POST",
              headers: str = "authorization, content-type, idempotency-key, if-match"):
    return api.session.options(api.base_url + "/api/v1/tickets", timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers})


def test_a_listed_origins_preflight_is_answered(cors_api):
    for origin in (ENT, "https://ent.univ.example"):
        answer = preflight(cors_api, origin)
        assert answer.status_code == 204, answer.text
        assert answer.headers["Access-Control-Allow-Origin"] == origin
        assert set(answer.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST", "PUT", "DELETE"}
        assert answer.headers["Access-Control-Allow-Headers"].split(", ") == list(ALLOWED_HEADERS)
        assert "Access-Control-Allow-Credentials" not in answer.headers


def test_a_listed_origins_answers_expose_etag_and_location(cors_api):
    filed = cors_api.post("/api/v1/tickets", ALICE, headers={"Origin": ENT},
                          json={"category_id": "wifi", "subject": "Wi-Fi", "description": "Coupé"})
    assert filed.status_code == 201
    assert filed.headers["Access-Control-Allow-Origin"] == ENT
    assert {"ETag", "Location"} <= set(filed.headers["Access-Control-Expose-Headers"].split(", "))
    assert "Origin" in filed.headers["Vary"]
    refused = cors_api.get("/api/v1/tickets", headers={"Origin": ENT})  # a 401 is readable by the frontend too
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == ENT


@pytest.mark.parametrize("origin", [OTHER, "https://ent.univ.example.evil.example", "null", "https://ENT.univ.example"])
def test_other_origins_get_nothing(cors_api, origin):
    answer = preflight(cors_api, origin)
    assert answer.status_code == 403 and answer.headers["Content-Type"] == "application/problem+json"
    assert not [h for h in answer.headers if h.lower().startswith("access-control-")]
    listed = cors_api.get("/api/v1/tickets", ALICE, headers={"Origin": origin})
    assert listed.status_code == 200
    assert not [h for h in listed.headers if h.lower().startswith("access-control-")]


@pytest.mark.parametrize(("method", "headers"), [("PATCH", "authorization"), ("POST", "authorization, x-forwarded-for")])
def test_methods_and_headers_beyond_the_api_are_not_allowed(cors_api, method, headers):
    answer = preflight(cors_api, ENT, method, headers)
    assert answer.status_code == 403
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_without_origins_configured_there_is_no_cors(api):
    answer = preflight(api, ENT)
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert "Access-Control-Allow-Origin" not in api.get("/api/v1/tickets", ALICE, headers={"Origin": ENT}).headers


def test_paths_outside_the_api_get_no_cors(cors_api):
    assert "Access-Control-Allow-Origin" not in cors_api.get("/healthz", headers={"Origin": ENT}).headers


# -- a real browser ------------------------------------------------------------------------

PAGE = b"<!doctype html><html lang='fr'><head><meta charset='utf-8'><title>ENT</title></head><body>ENT</body></html>"


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def pages() -> Iterator[None]:
    """An ENT page on ENT's origin and the same page on another origin."""
    servers = [ThreadingHTTPServer(("127.0.0.1", port), _Page) for port in (ENT_PORT, OTHER_PORT)]
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    yield
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="guichet-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--no-first-run", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    driver.set_script_timeout(20)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


FETCH = """
const [url, token, done] = arguments;
fetch(url + "/api/v1/tickets", {
  method: "POST",
  headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json", "Idempotency-Key": "cors-1"},
  body: JSON.stringify({category_id: "wifi", subject: "Depuis l'ENT", description: "Coupé"}),
}).then(async r => done({status: r.status, location: r.headers.get("Location"), etag: r.headers.get("ETag"),
                         number: (await r.json()).number}))
  .catch(e => done({error: String(e)}));
"""


def test_a_browser_on_a_listed_origin_calls_the_api_and_another_is_blocked(cors_api, pages, chromium):
    token = cors_api.token(ALICE)
    chromium.get(ENT + "/")
    result = chromium.execute_async_script(FETCH, cors_api.base_url, token)
    assert result.get("status") == 201, result
    assert "/api/v1/tickets/" in result["location"]  # readable only because it is exposed
    assert result["etag"]

    chromium.get(OTHER + "/")
    blocked = chromium.execute_async_script(FETCH, cors_api.base_url, token)
    assert "error" in blocked and "Failed to fetch" in blocked["error"], blocked
    mine = cors_api.get("/api/v1/tickets", ALICE).json()["items"]
    assert len(mine) == 1  # the preflight stopped the other origin's request before it was sent
