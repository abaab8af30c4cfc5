"""Identity (API.md "Identity"): every /api/v1 call but the OpenAPI document needs a valid
bearer JWT; anything else is a 401 problem with a WWW-Authenticate header."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.warnings import InsecureKeyLengthWarning

from shared.auth import AUDIENCE, MAX_TOKEN_BYTES, TokenVerifier, Unauthenticated, issue_token
from shared.config import DEV_JWT_SECRET, Settings
from tests.e2e.conftest import ALICE, BOB, ROOT, SECRET

REPO = Path(__file__).resolve().parents[2]


# -- crafting tokens -----------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for alice; ``None`` removes a claim."""
    now = int(time.time())
    values = {"sub": "alice", "email": "alice@univ.example", "name": "Alice Martin", "aud": AUDIENCE,
              "iat": now, "exp": now + 600, "roles": [], **overrides}
    return {k: v for k, v in values.items() if v is not None}


def signed(key: str = SECRET, algorithm: str = "HS256", **overrides: Any) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # HS512 with a 37-byte secret
        return jwt.encode(claims(**overrides), key, algorithm=algorithm)


def unsigned(**overrides: Any) -> str:
    """An ``alg: none`` token, made by hand: header, claims, empty signature."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims(**overrides)).encode())}."


def hs256_by_hand(secret: bytes, **overrides: Any) -> str:
    """HS256 over any bytes, even a PEM public key (which PyJWT refuses to use as a secret)."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims(**overrides)).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def tampered(**overrides: Any) -> str:
    """alice's valid token with other claims pasted in, keeping her signature."""
    header, _, signature = signed().split(".")
    return f"{header}.{b64url(json.dumps(claims(**overrides)).encode())}.{signature}"


def rsa_key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def assert_401(response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == 401
    assert SECRET not in response.text and "Traceback" not in response.text


# -- the service refuses ------------------------------------------------------------------

OTHER_PRIVATE, _ = rsa_key_pair()

BAD_AUTHORIZATION = {
    "no header": None,
    "empty header": "",
    "Bearer and nothing": "Bearer",
    "Bearer and spaces": "Bearer    ",
    "Basic scheme": "Basic YWxpY2U6c2VjcmV0",
    "token without scheme": "@TOKEN",
    "Token scheme": "Token @TOKEN",
    "garbage token": "Bearer not-a-jwt",
    "three garbage parts": "Bearer aaa.bbb.ccc",
    "expired beyond the 30 s leeway": lambda: signed(exp=int(time.time()) - 60),
    "wrong signature": lambda: signed(key="another-secret-of-at-least-32-bytes!!"),
    "tampered claims": lambda: tampered(sub="root", roles=["admin"]),
    "HS512 with the right secret": lambda: signed(algorithm="HS512"),
    "RS256 signed by someone else": lambda: signed(key=OTHER_PRIVATE, algorithm="RS256"),
    "alg none": lambda: unsigned(),
    "alg none claiming admin": lambda: unsigned(sub="root", roles=["admin"]),
    "wrong audience": lambda: signed(aud="moodle"),
    "wrong audience list": lambda: signed(aud=["moodle", "nextcloud"]),
    "missing audience": lambda: signed(aud=None),
    "missing exp": lambda: signed(exp=None),
    "exp not a number": lambda: signed(exp="tomorrow"),
    "not valid yet (nbf)": lambda: signed(nbf=int(time.time()) + 600),
    "missing sub": lambda: signed(sub=None),
    "blank sub": lambda: signed(sub="   "),
    "sub not a string": lambda: signed(sub=42),
    "missing email": lambda: signed(email=None),
    "email not an address": lambda: signed(email="alice"),
    "roles not a list": lambda: signed(roles="admin"),
}


def authorization(value: Any) -> dict[str, str]:
    if callable(value):
        value = "Bearer " + value()
    if value is None:
        return {}
    return {"Authorization": value.replace("@TOKEN", signed())}


@pytest.mark.parametrize("value", BAD_AUTHORIZATION.values(), ids=BAD_AUTHORIZATION.keys())
def test_bad_identity_is_401(api, value):
    """401 problem+json with WWW-Authenticate, and nothing is filed."""
    assert_401(api.get("/api/v1/tickets", headers=authorization(value)))
    filed = api.post("/api/v1/tickets", headers=authorization(value),
                     json={"category_id": "wifi", "subject": "Intrus", "description": "Intrus"})
    assert_401(filed)
    assert api.get("/api/v1/tickets", ROOT, params={"scope": "all"}).json()["items"] == []


@pytest.mark.parametrize("size", [MAX_TOKEN_BYTES, 20_000, 45_000])
def test_an_oversized_token_is_401(api, size):
    """A token over MAX_TOKEN_BYTES is malformed: 401, even far over (not the HTTP server's 400)."""
    token = signed(name="x" * size)
    assert len(token) > MAX_TOKEN_BYTES
    assert_401(api.get("/api/v1/tickets", token=token))


def test_a_valid_token_is_accepted_and_the_leeway_is_30_seconds(api):
    """A fresh token, one expired 10 s ago, a lower-case scheme."""
    assert api.get("/api/v1/tickets", token=signed()).status_code == 200
    assert api.get("/api/v1/tickets", token=signed(exp=int(time.time()) - 10)).status_code == 200
    assert api.get("/api/v1/tickets", headers={"Authorization": f"bearer {signed()}"}).status_code == 200


def test_the_requester_is_who_the_token_says(api):
    """sub, name, email and establishment come from the token."""
    token = signed(sub="carla", email="carla@univ.example", name="Carla Rossi", establishment="0541234B")
    ticket = api.post("/api/v1/tickets", token=token,
                      json={"category_id": "wifi", "subject": "Wi-Fi", "description": "Coupé"}).json()
    assert ticket["requester"] == {"id": "carla", "name": "Carla Rossi", "email": "carla@univ.example"}
    assert ticket["establishment"] == "0541234B"


def test_admin_comes_only_from_the_roles_claim(api):
    """Only `roles` containing `admin` makes an admin."""
    mine = api.submit(BOB)
    assert api.get(f"/api/v1/tickets/{mine['id']}", token=signed(admin=True, is_admin=True)).status_code == 404
    assert api.get(f"/api/v1/tickets/{mine['id']}", token=signed(roles=["staff", "admin"])).status_code == 200


ENDPOINTS = [
    ("GET", "/api/v1/tickets"),
    ("POST", "/api/v1/tickets"),
    ("GET", "/api/v1/tickets/{id}"),
    ("GET", "/api/v1/tickets/{id}/history"),
    ("POST", "/api/v1/tickets/{id}/comments"),
    ("POST", "/api/v1/tickets/{id}/actions/take"),
    ("POST", "/api/v1/tickets/{id}/actions/no-such-action"),
    ("POST", "/api/v1/tickets/{id}/invitations"),
    ("DELETE", "/api/v1/tickets/{id}/invitations/ines"),
    ("PUT", "/api/v1/tickets/{id}/watchers/me"),
    ("DELETE", "/api/v1/tickets/{id}/watchers/me"),
    ("POST", "/api/v1/tickets/{id}/attachments"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_every_api_endpoint_needs_a_token(api, routed, method, path):
    """Even for an unknown ticket or action: 401 comes first, and nothing changes."""
    before = api.get(f"/api/v1/tickets/{routed['id']}", ROOT).json()
    for ticket in (routed["id"], str(uuid.uuid4())):
        assert_401(api.request(method, path.format(id=ticket), json={}))
        assert_401(api.request(method, path.format(id=ticket), token=unsigned(sub="root", roles=["admin"]),
                               json={}))
    assert api.get(f"/api/v1/tickets/{routed['id']}", ROOT).json() == before


def test_openapi_healthz_and_readyz_need_no_token(api):
    """The public endpoints answer without a token."""
    for path in ("/api/v1/openapi.json", "/healthz", "/readyz"):
        assert api.get(path).status_code == 200, path


# -- the verifier with an RS256 public key (no restart: a unit test of TokenVerifier) ---------


def test_rs256_tokens_are_checked_with_the_ents_public_key():
    """RS256 with the public key; no algorithm confusion, no alg none."""
    private, public = rsa_key_pair()
    settings = Settings.from_env({"GUICHET_JWT_PUBLIC_KEY": public})
    verifier = TokenVerifier(settings)

    token = issue_token(settings, sub="alice", email="alice@univ.example", name="Alice", private_key=private)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    identity = verifier.verify(f"Bearer {token}")
    assert (identity.login, identity.email, identity.is_admin) == ("alice", "alice@univ.example", False)
    admin = issue_token(settings, sub="root", email="root@univ.example", admin=True, private_key=private)
    assert verifier.verify(f"Bearer {admin}").is_admin

    refused = {
        # Algorithm confusion: HS256 keyed with the public key, which anyone can read.
        "HS256 keyed with the public key": hs256_by_hand(public.encode()),
        "HS256 keyed with the public key, stripped": hs256_by_hand(public.strip().encode()),
        "HS256 with the development secret": signed(key=DEV_JWT_SECRET),
        "RS256 signed by someone else": signed(key=OTHER_PRIVATE, algorithm="RS256"),
        "alg none": unsigned(),
        "expired": jwt.encode(claims(exp=int(time.time()) - 60), private, algorithm="RS256"),
        "wrong audience": jwt.encode(claims(aud="moodle"), private, algorithm="RS256"),
        "missing email": jwt.encode(claims(email=None), private, algorithm="RS256"),
    }
    for name, bad in refused.items():
        with pytest.raises(Unauthenticated):
            verifier.verify(f"Bearer {bad}")
            pytest.fail(f"accepted: {name}")


def test_hs256_verifier_refuses_rs256_tokens():
    """With a shared secret, only HS256 with that secret passes."""
    private, _ = rsa_key_pair()
    verifier = TokenVerifier(Settings.from_env({"GUICHET_JWT_SECRET": SECRET}))
    assert verifier.verify(f"Bearer {signed()}").login == "alice"
    for bad in (signed(key=private, algorithm="RS256"), unsigned(), hs256_by_hand(DEV_JWT_SECRET.encode())):
        with pytest.raises(Unauthenticated):
            verifier.verify(f"Bearer {bad}")


# -- the project command that prints a token ---------------------------------------------------


def guichet_token(*args: str, secret: str | None = SECRET) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_JWT_")}
    if secret is not None:
        env["GUICHET_JWT_SECRET"] = secret
    done = subprocess.run([sys.executable, "-m", "services.cli", "token", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout  # only the token on stdout, so $(guichet token ...) works
    return lines[0]


def test_guichet_token_prints_a_token_the_service_accepts(api):
    """`guichet token` prints one line: a token for that user (or an admin)."""
    token = guichet_token("--sub", "carla", "--email", "carla@univ.example", "--name", "Carla Rossi",
                          "--establishment", "0541234B")
    filed = api.post("/api/v1/tickets", token=token,
                     json={"category_id": "wifi", "subject": "Wi-Fi", "description": "Coupé"})
    assert filed.status_code == 201, filed.text
    assert filed.json()["requester"] == {"id": "carla", "name": "Carla Rossi", "email": "carla@univ.example"}
    assert filed.json()["establishment"] == "0541234B"

    alices = api.submit(ALICE)
    admin = guichet_token("--sub", "root", "--email", "root@univ.example", "--admin")
    assert api.get(f"/api/v1/tickets/{alices['id']}", token=admin).status_code == 200
    assert api.get(f"/api/v1/tickets/{alices['id']}", token=token).status_code == 404


def test_guichet_token_ttl_and_secret_matter(api):
    """--ttl sets the expiry; without the secret the token is refused."""
    expired = guichet_token("--sub", "carla", "--email", "carla@univ.example", "--ttl", "-60")
    assert_401(api.get("/api/v1/tickets", token=expired))
    # Without GUICHET_JWT_SECRET the command signs with the development secret,
    # which a service configured with a real secret refuses.
    dev = guichet_token("--sub", "carla", "--email", "carla@univ.example", secret=None)
    assert_401(api.get("/api/v1/tickets", token=dev))
