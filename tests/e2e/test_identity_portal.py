"""How the portal calls the services for a signed-in person (shared/auth.py): a
short-lived token minted by the portal (``token_for``) with its own key, checked by the
tickets service through the portal's JWKS served over real HTTP; the services keep
checking every request (another key, an expired token, the portal's issuer with a
shared-secret token: 401)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.tickets.service import TicketsService
from shared.auth import Identity, issue_token, portal_jwks, token_for
from shared.config import Settings
from tests.e2e.conftest import SECRET, Api
from tests.e2e.test_identity import assert_401
from tests.helpers import free_port, serve


def pem(key: Any) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


PORT = free_port()
ISSUER = f"http://127.0.0.1:{PORT}"
PORTAL = Settings.from_env({"PORTAL_SIGNING_KEY": pem(ec.generate_private_key(ec.SECP256R1())), "PORTAL_ISSUER": ISSUER})


@pytest.fixture(scope="module")
def portal_jwks_server() -> Iterator[list[str]]:
    """The portal's /.well-known/jwks.json (what the portal's route serves), and the paths asked."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            asked.append(self.path)
            body = json.dumps(portal_jwks(PORTAL)).encode()
            self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    yield asked
    server.shutdown()
    server.server_close()


@pytest.fixture
def trusting_api(container_factory, broker_uri, database_url, tickets_db, monkeypatch, portal_jwks_server) -> Api:
    """The tickets service trusting the portal (by its issuer: JWKS at the default path) and an ENT secret."""
    monkeypatch.delenv("GUICHET_ENV", raising=False)
    monkeypatch.setenv("PORTAL_ISSUER", ISSUER)
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    return Api(serve(container_factory, TicketsService, "tickets", AMQP_URI=broker_uri, DATABASE_URL=database_url))


JEAN = Identity("jdupont", "jean.dupont@univ.example", "Jean Dupont", "0540001A", ("staff",))


def test_a_token_the_portal_mints_is_checked_through_its_jwks(trusting_api, portal_jwks_server):
    token = token_for(PORTAL, JEAN)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    filed = trusting_api.post("/api/v1/tickets", token=token,
                              json={"category_id": "wifi", "subject": "Wi-Fi", "description": "Coupé"})
    assert filed.status_code == 201, filed.text
    assert filed.json()["requester"] == {"id": "jdupont", "name": "Jean Dupont", "email": "jean.dupont@univ.example"}
    assert filed.json()["establishment"] == "0540001A"
    assert "/.well-known/jwks.json" in portal_jwks_server
    # The ENT's own tokens (shared secret, no iss) are still accepted beside the portal's.
    assert trusting_api.get("/api/v1/tickets", token=issue_token(Settings.from_env({"GUICHET_JWT_SECRET": SECRET}),
                                                                 sub="alice", email="alice@univ.example")).status_code == 200


def test_the_services_keep_checking_the_portals_tokens(trusting_api):
    stranger = Settings.from_env({"PORTAL_SIGNING_KEY": pem(ec.generate_private_key(ec.SECP256R1())),
                                  "PORTAL_ISSUER": ISSUER})
    now = int(time.time())
    forged_hs = jwt.encode({"iss": ISSUER, "sub": "root", "email": "root@univ.example", "aud": "guichet",
                            "roles": ["admin"], "exp": now + 60}, SECRET, algorithm="HS256")
    for token in (token_for(stranger, JEAN),                          # another key, same issuer and kid scheme
                  token_for(PORTAL, JEAN, ttl_seconds=-120),          # expired
                  forged_hs):                                          # the portal's issuer, the ENT's secret
        assert_401(trusting_api.get("/api/v1/tickets", token=token))
