"""The portal's own routes, served for real by its Nameko HTTP entrypoint on a free port,
with the other services away (their URLs point at a closed port): sign-in / callback /
sign-out around a small fake ``SingleSignOn`` (a test of the routes, not of a
provider), the friendly 503 page when a service does not answer, HTML 404s, the
development sign-in outside development, and the headers every answer carries."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from services.portal import sso
from services.portal.service import PortalService
from shared.auth import Identity
from tests.helpers import free_port


class FakeSignOn:
    """Vouches for ``alice`` when the callback carries the state it was given."""

    name = "fake"

    def __init__(self) -> None:
        self.logouts: list[dict[str, Any]] = []

    def begin(self, callback_url: str) -> tuple[str, dict[str, Any]]:
        return f"https://idp.example/authorize?redirect_uri={callback_url}&state=s-123", {"state": "s-123"}

    def complete(self, args: Any, callback_url: str, kept: dict[str, Any]) -> tuple[Identity, dict[str, Any]]:
        if args.get("state") != kept.get("state") or args.get("code") != "good":
            raise sso.SignInFailed("bad state or code")
        assert callback_url.endswith("/sign-in/callback")
        return Identity(login="alice", email="alice@univ.example", name="Alice Martin"), {"id_token": "tok"}

    def logout_url(self, kept: dict[str, Any], return_to: str) -> str | None:
        self.logouts.append(kept)
        return f"https://idp.example/logout?id_token_hint={kept['id_token']}"


def start(container_factory: Any, monkeypatch: pytest.MonkeyPatch, provider: Any, **env: str) -> str:
    closed = free_port()  # nothing listens there: every service is "down"
    for name in ("TICKETS", "ROUTING", "NOTIFIER", "ATTACHMENTS", "ESCALATION"):
        monkeypatch.setenv(f"{name}_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("PORTAL_BACKEND_TIMEOUT", "2")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sso, "from_env", lambda env=None: provider)
    port = free_port()
    container = container_factory(PortalService, {"HTTP_ADDRESSES": {"portal": f"127.0.0.1:{port}"}})
    container.start()
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def fake() -> FakeSignOn:
    return FakeSignOn()


@pytest.fixture
def portal(container_factory, monkeypatch, fake) -> str:
    # Development mode only so the cookie is not Secure over this test's plain http; a
    # configured provider still takes the sign-in.
    return start(container_factory, monkeypatch, fake, GUICHET_ENV="development")


@pytest.fixture
def production(container_factory, monkeypatch) -> str:
    monkeypatch.delenv("GUICHET_ENV", raising=False)
    return start(container_factory, monkeypatch, None, PORTAL_SESSION_SECRET="s",
                 PORTAL_FRAME_ANCESTORS="https://ent.univ.example")


def test_a_page_needing_a_person_sends_to_the_sign_in_then_to_the_provider(portal):
    browser = requests.Session()
    first = browser.get(portal + "/tickets/53350?x=1", allow_redirects=False)
    assert first.status_code == 303 and first.headers["Location"] == "/sign-in?next=/tickets/53350%3Fx%3D1"
    to_provider = browser.get(portal + first.headers["Location"], allow_redirects=False)
    assert to_provider.status_code == 302
    assert to_provider.headers["Location"].startswith("https://idp.example/authorize?")
    assert "sign-in/callback" in to_provider.headers["Location"]


def test_the_callback_starts_the_session_and_returns_to_a_safe_next(portal, fake):
    browser = requests.Session()
    browser.get(portal + "/sign-in?next=/tickets/53350", allow_redirects=False)
    back = browser.get(portal + "/sign-in/callback?state=s-123&code=good", allow_redirects=False)
    assert back.status_code == 303 and back.headers["Location"] == "/tickets/53350"
    cookie = back.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    # Signed in: the page now asks the (absent) services: the friendly 503, no trace.
    page = browser.get(portal + "/tickets/53350", allow_redirects=False)
    assert page.status_code == 503 and page.headers["Retry-After"] == "30"
    assert "Service momentanément indisponible" in page.text and "Traceback" not in page.text
    # Sign-out: the CSRF token, the session cleared, then the provider's logout.
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert browser.post(portal + "/sign-out", allow_redirects=False).status_code == 403
    out = browser.post(portal + "/sign-out", data={"csrf_token": token}, allow_redirects=False)
    assert out.status_code == 303 and out.headers["Location"] == "https://idp.example/logout?id_token_hint=tok"
    assert fake.logouts == [{"id_token": "tok"}]
    assert browser.get(portal + "/tickets/53350", allow_redirects=False).status_code == 303


def test_a_next_elsewhere_returns_home(portal):
    browser = requests.Session()
    browser.get(portal + "/sign-in?next=https://evil.example/", allow_redirects=False)
    back = browser.get(portal + "/sign-in/callback?state=s-123&code=good", allow_redirects=False)
    assert back.headers["Location"] == "/"


@pytest.mark.parametrize("query", ["state=wrong&code=good", "state=s-123&code=bad", ""])
def test_a_refused_callback_starts_no_session(portal, query):
    browser = requests.Session()
    browser.get(portal + "/sign-in", allow_redirects=False)
    refused = browser.get(portal + "/sign-in/callback?" + query, allow_redirects=False)
    assert refused.status_code == 403 and "Connexion impossible" in refused.text
    assert browser.get(portal + "/", allow_redirects=False).status_code == 303


def test_a_callback_without_a_sign_in_under_way(portal):
    refused = requests.get(portal + "/sign-in/callback?state=s-123&code=good", allow_redirects=False)
    assert refused.status_code == 400 and "Aucune connexion" in refused.text


def test_no_development_sign_in_outside_development(production):
    for method in ("GET", "POST"):
        answer = requests.request(method, production + "/dev/sign-in", data={"login": "root", "admin": "on"},
                                  allow_redirects=False)
        assert answer.status_code == 404
    assert requests.get(production + "/", allow_redirects=False).status_code == 303


def test_unknown_paths_and_headers(portal):
    missing = requests.get(portal + "/nowhere", headers={"Accept-Language": "en"})
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith("text/html")
    assert "Page not found" in missing.text and '<html lang="en">' in missing.text
    assert missing.headers["X-Content-Type-Options"] == "nosniff"
    assert missing.headers["Referrer-Policy"] == "same-origin"
    csp = missing.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in csp and "script-src 'self'" in csp
    css = requests.get(portal + "/static/portal.css")
    assert css.status_code == 200 and "immutable" in css.headers["Cache-Control"]
    assert css.headers["Content-Type"].startswith("text/css")
    assert requests.get(portal + "/static/..%2Fapp.py").status_code == 404


def test_sign_in_without_a_provider_outside_development(production):
    page = requests.get(production + "/sign-in")
    assert page.status_code == 503 and "pas encore configurée" in page.text
    assert "frame-ancestors 'self' https://ent.univ.example" in page.headers["Content-Security-Policy"]
    cookie = page.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie  # outside development


def test_development_sign_in_without_a_provider(container_factory, monkeypatch):
    base = start(container_factory, monkeypatch, None, GUICHET_ENV="development")
    to_dev = requests.get(base + "/sign-in?next=/feed", allow_redirects=False)
    assert to_dev.status_code == 303 and to_dev.headers["Location"] == "/dev/sign-in?next=%2Ffeed"
    browser = requests.Session()
    form = browser.get(base + "/dev/sign-in?next=/feed")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    assert "Secure" not in form.headers["Set-Cookie"]  # development: plain http works
    assert browser.post(base + "/dev/sign-in", data={"login": "alice"}, allow_redirects=False).status_code == 403
    bad = browser.post(base + "/dev/sign-in", data={"login": "a b<", "csrf_token": token})
    assert bad.status_code == 422 and "Un identifiant" in bad.text
    done = browser.post(base + "/dev/sign-in", data={"login": "alice", "csrf_token": token, "next": "/feed"},
                        allow_redirects=False)
    assert done.status_code == 303 and done.headers["Location"] == "/feed"
    assert parse_qs(urlsplit(to_dev.headers["Location"]).query) == {"next": ["/feed"]}
