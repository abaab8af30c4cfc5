"""Tokens from a real OpenID Connect provider on localhost (``oidc-provider-mock``, served
by tests/identity_servers.py), checked by the tickets service over real HTTP: discovery,
JWKS, a key rotation while the service runs, and the tokens it must refuse (401 each,
nothing filed). Also: every service refuses to start with nothing to trust outside
development mode, and says so once in development mode."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from authlib.jose import JsonWebKey

from services.attachments.service import AttachmentsService
from services.escalation.service import EscalationService
from services.notifier.service import NotifierService
from services.routing.service import RoutingService
from services.tickets.service import TicketsService
from shared import auth
from shared.auth import IdentityMisconfigured
from tests.e2e.conftest import Api
from tests.e2e.test_identity import assert_401
from tests.helpers import free_port, serve
from tests.identity_servers import OidcProvider


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider() as running:
        yield running


@pytest.fixture
def oidc_api(container_factory, broker_uri, database_url, tickets_db, monkeypatch, provider) -> Api:
    """The tickets service trusting only the provider (no shared secret, production mode)."""
    monkeypatch.delenv("GUICHET_JWT_SECRET", raising=False)
    monkeypatch.delenv("GUICHET_ENV", raising=False)
    monkeypatch.setenv("OIDC_ISSUER", provider.issuer)
    monkeypatch.setenv("OIDC_JWKS_REFETCH_PER_MINUTE", "3")
    return Api(serve(container_factory, TicketsService, "tickets", AMQP_URI=broker_uri, DATABASE_URL=database_url))


def provider_claims(provider: OidcProvider, **overrides: Any) -> dict[str, Any]:
    """What a Keycloak-like provider puts in an access token for Guichet."""
    now = int(time.time())
    values = {"iss": provider.issuer, "sub": "8d3c2b1a-0f9e-4d7c-b6a5-112233445566", "aud": "guichet",
              "azp": "ent", "preferred_username": "jdupont", "email": "jean.dupont@univ.example",
              "given_name": "Jean", "family_name": "Dupont", "supannEtablissement": "{UAI}0540001A",
              "realm_access": {"roles": ["admin"]}, "iat": now, "exp": now + 300, **overrides}
    return {k: v for k, v in values.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def file_ticket(api: Api, token: str):
    return api.post("/api/v1/tickets", token=token,
                    json={"category_id": "wifi", "subject": "Wi-Fi", "description": "Coupé"})


def test_a_token_of_the_provider_is_checked_with_its_discovered_jwks(oidc_api, provider):
    """Discovery -> jwks_uri -> the key of the token's kid; the claims mapped from Keycloak names."""
    filed = file_ticket(oidc_api, provider.sign(provider_claims(provider)))
    assert filed.status_code == 201, filed.text
    ticket = filed.json()
    assert ticket["requester"] == {"id": "jdupont", "name": "Jean Dupont", "email": "jean.dupont@univ.example"}
    assert ticket["establishment"] == "0540001A"
    # realm_access.roles says admin: another person's ticket is visible to jdupont only as admin.
    marc = provider_claims(provider, preferred_username="mleroy", email="marc.leroy@univ.example", realm_access=None)
    theirs = file_ticket(oidc_api, provider.sign(marc)).json()
    assert oidc_api.get(f"/api/v1/tickets/{theirs['id']}", token=provider.sign(provider_claims(provider))).status_code == 200
    not_admin = provider_claims(provider, realm_access={"roles": ["offline_access"]})
    assert oidc_api.get(f"/api/v1/tickets/{theirs['id']}", token=provider.sign(not_admin)).status_code == 404


def test_a_key_rotation_needs_no_restart(oidc_api, provider):
    """The old kid works, the provider rotates, the new kid works at once, the old one
    still works while published; once retired, a fresh token with the old key is refused."""
    old_key = provider.storage.jwk
    assert file_ticket(oidc_api, provider.sign(provider_claims(provider))).status_code == 201
    fetches = provider.jwks_fetches
    new_kid = provider.rotate()
    token = provider.sign(provider_claims(provider))
    assert json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"] == new_kid
    assert file_ticket(oidc_api, token).status_code == 201
    assert provider.jwks_fetches == fetches + 1  # one refetch for the new kid
    assert file_ticket(oidc_api, provider.sign(provider_claims(provider, jti="old"), key=old_key)).status_code == 201

    provider.rotate(retire_old=True)
    newest = provider.sign(provider_claims(provider, jti="newest"))
    assert file_ticket(oidc_api, newest).status_code == 201
    # The service's cache has dropped the retired keys with the refetch.
    assert_401(file_ticket(oidc_api, provider.sign(provider_claims(provider, jti="retired"), key=old_key)))


def refused(provider: OidcProvider) -> dict[str, str]:
    stranger = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": provider.kid})
    unknown = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": "never-published"})
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": provider.kid}).encode())
    payload = b64url(json.dumps(provider_claims(provider)).encode())
    hs256 = hmac.new(provider.public_pem(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    none_header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": provider.kid}).encode())
    return {
        "wrong iss": provider.sign(provider_claims(provider, iss="http://127.0.0.1:1")),
        "iss with a trailing slash": provider.sign(provider_claims(provider, iss=provider.issuer + "/")),
        "no iss": provider.sign(provider_claims(provider, iss=None)),
        "wrong aud": provider.sign(provider_claims(provider, aud="moodle", azp="moodle")),
        "no aud": provider.sign(provider_claims(provider, aud=None)),
        "alg none": f"{none_header}.{payload}.",
        "HS256 signed with the public key": f"{header}.{payload}.{b64url(hs256)}",
        "unknown kid": provider.sign(provider_claims(provider), key=unknown),
        "the provider's kid, another key": provider.sign(provider_claims(provider), key=stranger),
        "expired": provider.sign(provider_claims(provider, iat=int(time.time()) - 400, exp=int(time.time()) - 60)),
        "not valid yet": provider.sign(provider_claims(provider, nbf=int(time.time()) + 600)),
        "exp as a string": provider.sign(provider_claims(provider, exp=str(int(time.time()) + 300))),
        "lives a week": provider.sign(provider_claims(provider, exp=int(time.time()) + 7 * 86400)),
    }


REFUSED = ["wrong iss", "iss with a trailing slash", "no iss", "wrong aud", "no aud", "alg none",
           "HS256 signed with the public key", "unknown kid", "the provider's kid, another key", "expired",
           "not valid yet", "exp as a string", "lives a week"]


@pytest.mark.parametrize("case", REFUSED)
def test_tokens_the_provider_did_not_vouch_for_are_401(oidc_api, provider, root_token, case):
    token = refused(provider)[case]
    assert_401(oidc_api.get("/api/v1/tickets", token=token))
    assert_401(file_ticket(oidc_api, token))
    assert oidc_api.get("/api/v1/tickets", token=root_token, params={"scope": "all"}).json()["items"] == []


@pytest.fixture
def root_token(provider) -> str:
    return provider.sign(provider_claims(provider, preferred_username="root", email="root@univ.example"))


def test_a_flood_of_unknown_kids_refetches_the_jwks_a_few_times_only(oidc_api, provider):
    assert file_ticket(oidc_api, provider.sign(provider_claims(provider))).status_code == 201
    before = provider.jwks_fetches
    for n in range(15):
        made_up = JsonWebKey.generate_key("EC", "P-256", is_private=True, options={"kid": f"made-up-{n}"})
        token = provider.sign(provider_claims(provider), key=made_up, header={"alg": "ES256"})
        assert_401(oidc_api.get("/api/v1/tickets", token=token))
    assert provider.jwks_fetches - before <= 3  # OIDC_JWKS_REFETCH_PER_MINUTE


def test_the_provider_down_means_401_not_500(container_factory, broker_uri, database_url, tickets_db, monkeypatch):
    monkeypatch.delenv("GUICHET_JWT_SECRET", raising=False)
    monkeypatch.delenv("GUICHET_ENV", raising=False)
    nowhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("OIDC_ISSUER", nowhere)
    api = Api(serve(container_factory, TicketsService, "tickets", AMQP_URI=broker_uri, DATABASE_URL=database_url))
    key = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": "k"})
    from authlib.jose import jwt

    now = int(time.time())
    token = jwt.encode({"alg": "RS256", "kid": "k"}, {"iss": nowhere, "sub": "a", "email": "a@u.example",
                                                      "aud": "guichet", "exp": now + 60}, key).decode()
    assert_401(api.get("/api/v1/tickets", token=token))
    assert api.get("/healthz").status_code == 200


# -- starting without keys ----------------------------------------------------------------

SERVICES = {"tickets": TicketsService, "routing": RoutingService, "notifier": NotifierService,
            "attachments": AttachmentsService, "escalation": EscalationService}


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_refuses_to_start_without_keys_outside_development(
        name, container_factory, broker_uri, database_url, monkeypatch, tmp_path):
    for variable in ("GUICHET_ENV", "GUICHET_JWT_SECRET", "GUICHET_JWT_PUBLIC_KEY", "OIDC_ISSUER", "PORTAL_ISSUER"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("ATTACHMENTS_DIR", str(tmp_path))
    with structlog.testing.capture_logs() as logs, pytest.raises(IdentityMisconfigured):
        serve(container_factory, SERVICES[name], name, AMQP_URI=broker_uri, DATABASE_URL=database_url)
    refusals = [entry for entry in logs if entry["event"].startswith("refusing to start")]
    assert len(refusals) == 1 and "OIDC_ISSUER" in refusals[0]["event"], logs


def test_in_development_mode_every_service_starts_and_says_so_once(
        container_factory, broker_uri, database_url, monkeypatch, tmp_path):
    for variable in ("GUICHET_JWT_SECRET", "GUICHET_JWT_PUBLIC_KEY", "OIDC_ISSUER", "PORTAL_ISSUER"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("GUICHET_ENV", "development")
    monkeypatch.setenv("ATTACHMENTS_DIR", str(tmp_path))
    monkeypatch.setattr(auth, "_development_said", False)
    with structlog.testing.capture_logs() as logs:
        urls = {name: serve(container_factory, cls, name, AMQP_URI=broker_uri, DATABASE_URL=database_url)
                for name, cls in SERVICES.items()}
    said = [entry for entry in logs if entry["event"].startswith("development mode")]
    assert len(said) == 1, logs
    import requests

    for name, url in urls.items():
        assert requests.get(url + "/healthz", timeout=10).status_code == 200, name
