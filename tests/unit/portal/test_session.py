"""The signed session cookie: tampering, idle timeout, lifetime, CSRF; the settings."""

import time

import pytest

from services.portal.app import safe_next
from services.portal.session import Session, SessionCodec
from services.portal.settings import MissingSecret, PortalSettings
from shared.auth import Identity

ALICE = Identity(login="alice", email="alice@univ.example", name="Alice Martin", establishment="0540001A")


def test_a_session_round_trips_and_a_forged_one_is_a_new_anonymous_session():
    codec = SessionCodec("secret-one", idle_minutes=30, hours=8)
    session = Session()
    session.sign_in(ALICE, "en")
    cookie = codec.dump(session)
    back = codec.load(cookie)
    assert back.identity == ALICE and back.language == "en" and back.csrf == session.csrf
    assert codec.load(cookie[:-2] + "xx").identity is None
    assert SessionCodec("another-secret", 30, 8).load(cookie).identity is None


def test_idle_and_lifetime_limits():
    codec = SessionCodec("secret", idle_minutes=30, hours=8)
    idle = Session(person={"login": "alice", "email": "a@u"}, seen=time.time() - 31 * 60)
    assert codec.load(codec.dump(idle)).identity is None
    old = Session(person={"login": "alice", "email": "a@u"}, created=time.time() - 9 * 3600)
    assert codec.load(codec.dump(old)).identity is None
    fresh = Session(person={"login": "alice", "email": "a@u"})
    assert codec.load(codec.dump(fresh)).identity is not None


def test_signing_in_and_out_changes_the_csrf_token():
    session = Session()
    before = session.csrf
    session.sign_in(ALICE)
    assert session.csrf != before and session.check_csrf(session.csrf)
    assert not session.check_csrf(None) and not session.check_csrf("") and not session.check_csrf(before)
    signed_in = session.csrf
    session.sign_out()
    assert session.identity is None and session.csrf != signed_in


def test_no_secret_no_start_outside_development():
    with pytest.raises(MissingSecret, match="PORTAL_SESSION_SECRET"):
        PortalSettings.from_env({})
    assert PortalSettings.from_env({"GUICHET_ENV": "development"}).session_secret
    settings = PortalSettings.from_env({"PORTAL_SESSION_SECRET": "s", "PORTAL_FRAME_ANCESTORS": "https://ent.a https://ent.b",
                                        "TICKETS_URL": "http://tickets/"})
    assert not settings.development
    assert settings.frame_ancestors == ("https://ent.a", "https://ent.b")
    assert settings.backend_urls["tickets"] == "http://tickets"


@pytest.mark.parametrize("target, expected", [
    ("/tickets/12", "/tickets/12"), ("/?scope=invited", "/?scope=invited"), (None, "/"), ("", "/"),
    ("https://evil.example/", "/"), ("//evil.example/x", "/"), ("/\\evil.example", "/"), ("javascript:alert(1)", "/"),
])
def test_only_relative_paths_to_return_to(target, expected):
    assert safe_next(target) == expected
