"""shared/auth.py without servers: claim mapping (SupAnn / eduPerson / Keycloak), fail
closed, the algorithms each key allows, token times, audience and azp, issuers, and the
portal's own tokens and JWKS (read back through ``KeySet`` with the document in memory:
the HTTP side is in tests/e2e/test_identity_oidc.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from shared.auth import (
    ClaimMapping,
    Identity,
    IdentityMisconfigured,
    KeySet,
    TokenVerifier,
    Unauthenticated,
    issue_token,
    portal_jwks,
    token_for,
)
from shared.config import DEV_JWT_SECRET, Settings

SECRET = "unit-test-secret-of-at-least-32-bytes!"


def pem_private(key: Any) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def pem_public(key: Any) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values = {"sub": "alice", "email": "alice@univ.example", "aud": "guichet", "iat": now, "exp": now + 600,
              **overrides}
    return {k: v for k, v in values.items() if v is not None}


def bearer(token: str) -> str:
    return f"Bearer {token}"


# -- claim mapping ------------------------------------------------------------------------


def test_keycloak_claims_map_to_the_login_not_the_uuid():
    mapping = ClaimMapping()
    identity = mapping.identity({
        "sub": "5f0c6a2e-9d1b-4c1e-8f57-0c1f2d3e4a5b", "preferred_username": "jdupont",
        "email": "jean.dupont@univ.example", "given_name": "Jean", "family_name": "Dupont",
        "realm_access": {"roles": ["offline_access", "admin"]}, "establishment": "0540001A",
    })
    assert identity == Identity("jdupont", "jean.dupont@univ.example", "Jean Dupont", "0540001A",
                                ("offline_access", "admin"))
    assert identity.is_admin


def test_supann_attributes_map_with_the_uai_prefix_removed():
    identity = ClaimMapping().identity({
        "uid": ["mleroy"], "mail": "marc.leroy@univ.example", "displayName": "Marc Leroy",
        "supannEtablissement": ["{UAI}0541234B"], "eduPersonAffiliation": ["staff", "employee"],
    })
    assert identity == Identity("mleroy", "marc.leroy@univ.example", "Marc Leroy", "0541234B", ("staff", "employee"))
    assert not identity.is_admin


def test_eppn_then_sub_give_the_login():
    assert ClaimMapping().identity({"eduPersonPrincipalName": "ines@univ.example", "sub": "x",
                                    "email": "ines@univ.example"}).login == "ines@univ.example"
    assert ClaimMapping().identity({"sub": "carla", "email": "carla@univ.example"}).login == "carla"


def test_admin_values_are_configured_and_a_plain_admin_claim_then_means_nothing():
    settings = Settings.from_env({"GUICHET_ADMIN_ROLES": "guichet-admins,/guichet/admins",
                                  "GUICHET_CLAIM_ROLES": "groups"})
    mapping = ClaimMapping.from_settings(settings)
    assert mapping.identity(claims(groups=["/guichet/admins"])).is_admin
    assert not mapping.identity(claims(groups=["admin"])).is_admin
    assert not mapping.identity(claims(roles=["guichet-admins"])).is_admin  # roles is not a configured claim


def test_configured_claim_names_replace_the_defaults():
    settings = Settings.from_env({"GUICHET_CLAIM_LOGIN": "employeeNumber", "GUICHET_CLAIM_EMAIL": "courriel"})
    identity = ClaimMapping.from_settings(settings).identity(
        {"employeeNumber": "E123", "preferred_username": "ignored", "courriel": "e123@univ.example"})
    assert (identity.login, identity.email) == ("E123", "e123@univ.example")


@pytest.mark.parametrize("email", ["alice", "alice@univ.example\r\nBcc: all@univ.example", "a b@c.d", "", "x" * 320 + "@u.fr"])
def test_an_email_must_be_one_address(email):
    with pytest.raises(Unauthenticated):
        ClaimMapping().identity({"sub": "alice", "email": email})


def test_no_login_or_a_control_character_in_it_is_refused():
    for bad in ({"email": "a@u.example"}, {"sub": "  ", "email": "a@u.example"},
                {"sub": "ali\nce", "email": "a@u.example"}, {"sub": 42, "email": "a@u.example"}):
        with pytest.raises(Unauthenticated):
            ClaimMapping().identity(bad)


# -- fail closed ----------------------------------------------------------------------------


def test_nothing_to_trust_outside_development_refuses_to_start():
    with pytest.raises(IdentityMisconfigured, match="OIDC_ISSUER"):
        TokenVerifier(Settings.from_env({}))


def test_the_development_secret_is_refused_outside_development_mode():
    with pytest.raises(IdentityMisconfigured, match="development secret"):
        TokenVerifier(Settings.from_env({"GUICHET_JWT_SECRET": DEV_JWT_SECRET}))


def test_development_mode_accepts_the_development_secret_and_only_it():
    settings = Settings.from_env({"GUICHET_ENV": "development"})
    verifier = TokenVerifier(settings)
    assert verifier.verify(bearer(issue_token(settings, sub="alice", email="alice@univ.example"))).login == "alice"
    with pytest.raises(Unauthenticated):
        verifier.verify(bearer(jwt.encode(claims(), SECRET, algorithm="HS256")))
    # A configured secret replaces the development one, even in development mode.
    verifier = TokenVerifier(Settings.from_env({"GUICHET_ENV": "development", "GUICHET_JWT_SECRET": SECRET}))
    with pytest.raises(Unauthenticated):
        verifier.verify(bearer(jwt.encode(claims(), DEV_JWT_SECRET, algorithm="HS256")))


def test_a_bad_public_key_refuses_to_start():
    with pytest.raises(IdentityMisconfigured):
        TokenVerifier(Settings.from_env({"GUICHET_JWT_PUBLIC_KEY": "not a key"}))


# -- algorithms: the key decides ----------------------------------------------------------

KEYS = {
    "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "PS256": None,  # the RSA key again
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate(),
}
KEYS["PS256"] = KEYS["RS256"]


@pytest.mark.parametrize("alg", KEYS)
def test_each_asymmetric_algorithm_is_checked_with_its_key_type(alg):
    key = KEYS[alg]
    verifier = TokenVerifier(Settings.from_env({"GUICHET_JWT_PUBLIC_KEY": pem_public(key)}))
    assert verifier.verify(bearer(jwt.encode(claims(), key, algorithm=alg))).login == "alice"
    other = {"RS256": "ES256", "PS256": "ES256", "ES256": "RS256", "EdDSA": "RS256"}[alg]
    with pytest.raises(Unauthenticated):
        verifier.verify(bearer(jwt.encode(claims(), KEYS[other], algorithm=other)))
    with pytest.raises(Unauthenticated):  # algorithm confusion: HMAC keyed with the public PEM
        verifier.verify(bearer(_hs256(pem_public(key).encode())))


def _hs256(secret: bytes) -> str:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    return f"{head}.{body}.{b64(hmac.new(secret, f'{head}.{body}'.encode(), hashlib.sha256).digest())}"


# -- times, audience, issuer --------------------------------------------------------------


@pytest.fixture
def hs() -> TokenVerifier:
    return TokenVerifier(Settings.from_env({"GUICHET_JWT_SECRET": SECRET, "GUICHET_JWT_MAX_AGE": "3600",
                                            "GUICHET_JWT_AZP": "ent-frontend"}))


def hs_token(**overrides: Any) -> str:
    return bearer(jwt.encode(claims(**overrides), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("overrides", [
    {"exp": str(int(time.time()) + 600)},        # a string that PyJWT alone would read as a number
    {"exp": True},
    {"nbf": str(int(time.time()) - 10)},
    {"iat": "now"},
    {"iat": int(time.time()) - 7200},             # issued two hours ago, max age one hour
    {"exp": int(time.time()) + 7200},             # would live two hours
    {"iat": None, "exp": int(time.time()) + 7200},
    {"aud": "moodle"},
    {"aud": None},
    {"aud": "moodle", "azp": "someone-else"},
], ids=["exp string", "exp bool", "nbf string", "iat string", "too old", "lives too long",
        "lives too long without iat", "wrong aud", "no aud", "wrong azp"])
def test_times_must_be_numbers_within_the_max_age_and_the_audience_must_fit(hs, overrides):
    with pytest.raises(Unauthenticated):
        hs.verify(hs_token(**overrides))


def test_an_allowed_azp_stands_in_for_the_audience(hs):
    assert hs.verify(hs_token(aud="account", azp="ent-frontend")).login == "alice"


def test_a_configured_issuer_is_required_with_the_static_key():
    verifier = TokenVerifier(Settings.from_env({"GUICHET_JWT_SECRET": SECRET, "GUICHET_JWT_ISSUER": "https://ent.univ.example"}))
    assert verifier.verify(bearer(jwt.encode(claims(iss="https://ent.univ.example"), SECRET))).login == "alice"
    for bad in (claims(), claims(iss="https://evil.example"), claims(iss="https://ent.univ.example/")):
        with pytest.raises(Unauthenticated):
            verifier.verify(bearer(jwt.encode(bad, SECRET)))


def test_an_oidc_issuer_refuses_tokens_of_other_issuers_and_hs256():
    keys = KeySet(issuer="https://idp.univ.example", fetch=lambda url: pytest.fail(f"no fetch expected: {url}"))
    verifier = TokenVerifier(Settings.from_env({"OIDC_ISSUER": "https://idp.univ.example"}))
    verifier.trusts[0].key_set = keys
    for bad in (jwt.encode(claims(iss="https://other.example"), SECRET),
                jwt.encode(claims(iss="https://idp.univ.example"), SECRET),
                jwt.encode(claims(), SECRET)):
        with pytest.raises(Unauthenticated):
            verifier.verify(bearer(bad))


# -- the JWKS cache -----------------------------------------------------------------------


def test_unknown_kids_refetch_the_key_set_a_few_times_a_minute_at_most():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    fetched: list[str] = []

    def fetch(url: str) -> dict[str, Any]:
        fetched.append(url)
        if url.endswith("openid-configuration"):
            return {"issuer": "https://idp.example", "jwks_uri": "https://idp.example/jwks"}
        return {"keys": [{**jwk, "kid": "k1"}, {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}

    keys = KeySet(issuer="https://idp.example", refetch_per_minute=3, fetch=fetch)
    assert keys.key("k1", "RS256") is not None
    assert keys.key("k1", "PS256") is not None
    with pytest.raises(Unauthenticated):
        keys.key("k1", "ES256")
    with pytest.raises(Unauthenticated):
        keys.key("hmac", "HS256")  # a symmetric key in a JWKS is never used
    for _ in range(20):
        with pytest.raises(Unauthenticated):
            keys.key("made-up", "RS256")
    jwks_fetches = [u for u in fetched if u.endswith("/jwks")]
    assert len(jwks_fetches) == 1 + 3  # the first fetch, then three refetches this minute


def test_a_discovery_document_for_another_issuer_gives_no_keys():
    keys = KeySet(issuer="https://idp.example",
                  fetch=lambda url: {"issuer": "https://evil.example", "jwks_uri": "https://evil.example/jwks"})
    with pytest.raises(Unauthenticated):
        keys.key("k1", "RS256")


# -- the portal's tokens ------------------------------------------------------------------


@pytest.mark.parametrize("key", [rsa.generate_private_key(public_exponent=65537, key_size=2048),
                                 ec.generate_private_key(ec.SECP256R1())], ids=["RSA", "EC"])
def test_the_portal_mints_tokens_the_services_check_through_its_jwks(key):
    portal = Settings.from_env({"PORTAL_SIGNING_KEY": pem_private(key), "PORTAL_ISSUER": "https://guichet.univ.example"})
    document = portal_jwks(portal)
    assert [k["use"] for k in document["keys"]] == ["sig"] and "d" not in document["keys"][0]
    service = TokenVerifier(Settings.from_env({"PORTAL_ISSUER": "https://guichet.univ.example"}))
    service.trusts[0].key_set = KeySet(jwks_url="https://guichet.univ.example/.well-known/jwks.json",
                                       fetch=lambda url: document)
    person = Identity("jdupont", "jean.dupont@univ.example", "Jean Dupont", "0540001A", ("staff", "admin"))
    token = token_for(portal, person)
    assert jwt.decode(token, options={"verify_signature": False})["exp"] - time.time() <= 300
    assert service.verify(bearer(token)) == person
    # The same claims signed by anyone else, or by the portal with no issuer, are refused.
    with pytest.raises(Unauthenticated):
        service.verify(bearer(issue_token(portal, sub="root", email="root@univ.example", admin=True)))
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Unauthenticated):
        service.verify(bearer(issue_token(portal, sub="root", email="root@univ.example", admin=True,
                                          private_key=pem_private(other), issuer="https://guichet.univ.example")))


def test_without_a_signing_key_the_portal_signs_with_the_shared_secret():
    settings = Settings.from_env({"GUICHET_JWT_SECRET": SECRET})
    assert portal_jwks(settings) == {"keys": []}
    person = Identity("ines", "ines@univ.example")
    assert TokenVerifier(settings).verify(bearer(token_for(settings, person))) == person


def test_a_token_without_kid_is_checked_only_while_the_issuer_publishes_one_key():
    one, two = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    published = [json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(one.public_key()))]
    keys = KeySet(jwks_url="https://idp.example/jwks", refetch_per_minute=0, fetch=lambda url: {"keys": published})
    assert keys.key(None, "RS256") is not None
    published.append(json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(two.public_key())))
    keys = KeySet(jwks_url="https://idp.example/jwks", refetch_per_minute=0, fetch=lambda url: {"keys": published})
    with pytest.raises(Unauthenticated):
        keys.key(None, "RS256")  # which one? refused rather than guessed


def test_an_issuer_that_fails_is_not_asked_again_at_every_request():
    calls: list[str] = []

    def down(url: str) -> dict[str, Any]:
        calls.append(url)
        raise OSError("connection refused")

    keys = KeySet(jwks_url="https://idp.example/jwks", fetch=down)
    for _ in range(10):
        with pytest.raises(Unauthenticated):
            keys.key("k1", "RS256")
    assert len(calls) == 1
