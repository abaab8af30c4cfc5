"""services/portal/sso.py against real servers on localhost: the OpenID Connect code
flow with PKCE through oidc-provider-mock's login form (checked by the provider), and CAS
3.0 through django-cas-server's login form; the mapped identity, the refusals, logout."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from services.portal import sso
from services.portal.sso import CasSignOn, OidcSignOn, SignInFailed, cas_logout_ticket
from shared.auth import Identity, TokenVerifier
from shared.config import Settings
from tests.identity_servers import CasServer, OidcProvider

CALLBACK = "http://127.0.0.1:8005/sign-in/callback"
JEAN = {"email": "jean.dupont@univ.example", "preferred_username": "jdupont", "given_name": "Jean",
        "family_name": "Dupont", "supannEtablissement": "{UAI}0540001A", "eduPersonAffiliation": ["staff", "admin"]}


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider({"8d3c2b1a-uuid-of-jean": JEAN}) as running:
        yield running


def oidc_env(provider: OidcProvider, **extra: str) -> dict[str, str]:
    return {"OIDC_ISSUER": provider.issuer, "OIDC_CLIENT_ID": "guichet-portal", "OIDC_CLIENT_SECRET": "portal-secret",
            **extra}


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def sign_in(provider: OidcProvider, signon: OidcSignOn, sub: str = "8d3c2b1a-uuid-of-jean"):
    url, kept = signon.begin(CALLBACK)
    back = provider.sign_in(url, sub)
    assert back.startswith(CALLBACK + "?")
    return signon.complete(query(back), CALLBACK, kept), kept


@pytest.mark.parametrize("secret", ["portal-secret", None], ids=["confidential client", "public client (PKCE only)"])
def test_oidc_code_flow_with_pkce_gives_the_mapped_identity(provider, secret):
    env = oidc_env(provider)
    if secret is None:
        del env["OIDC_CLIENT_SECRET"]
    signon = sso.from_env(env)
    assert isinstance(signon, OidcSignOn) and signon.name == "oidc"
    url, kept = signon.begin(CALLBACK)
    asked = query(url)
    assert url.startswith(provider.issuer + "/oauth2/authorize?")
    assert asked["code_challenge_method"] == "S256" and asked["code_challenge"] != kept["code_verifier"]
    assert asked["state"] == kept["state"] and asked["nonce"] == kept["nonce"]
    assert set(asked["scope"].split()) == {"openid", "profile", "email"}
    assert asked["redirect_uri"] == CALLBACK and asked["client_id"] == "guichet-portal"

    identity, kept_after = signon.complete(query(provider.sign_in(url, "8d3c2b1a-uuid-of-jean")), CALLBACK, kept)
    assert identity == Identity("jdupont", "jean.dupont@univ.example", "Jean Dupont", "0540001A", ("staff", "admin"))
    assert kept_after["id_token"].count(".") == 2


def test_a_wrong_pkce_verifier_is_refused_by_the_provider(provider):
    signon = OidcSignOn(Settings.from_env(oidc_env(provider)))
    url, kept = signon.begin(CALLBACK)
    back = provider.sign_in(url, "8d3c2b1a-uuid-of-jean")
    with pytest.raises(SignInFailed, match="refused the code"):
        signon.complete(query(back), CALLBACK, {**kept, "code_verifier": "x" * 64})


def test_a_wrong_state_an_error_or_a_stale_sign_in_is_refused(provider):
    signon = OidcSignOn(Settings.from_env(oidc_env(provider)))
    url, kept = signon.begin(CALLBACK)
    back = query(provider.sign_in(url, "8d3c2b1a-uuid-of-jean"))
    with pytest.raises(SignInFailed, match="state"):
        signon.complete({**back, "state": "forged"}, CALLBACK, kept)
    with pytest.raises(SignInFailed, match="state"):
        signon.complete({"code": back["code"]}, CALLBACK, kept)
    with pytest.raises(SignInFailed, match="refused"):
        signon.complete({"error": "access_denied", "state": kept["state"]}, CALLBACK, kept)
    with pytest.raises(SignInFailed, match="expired"):
        signon.complete(back, CALLBACK, {**kept, "begun_at": kept["begun_at"] - 3600})


def test_a_nonce_that_does_not_match_is_refused(provider):
    signon = OidcSignOn(Settings.from_env(oidc_env(provider)))
    url, kept = signon.begin(CALLBACK)
    back = query(provider.sign_in(url, "8d3c2b1a-uuid-of-jean"))
    with pytest.raises(SignInFailed, match="nonce"):
        signon.complete(back, CALLBACK, {**kept, "nonce": "replayed"})


def test_a_denied_sign_in_is_refused(provider):
    signon = OidcSignOn(Settings.from_env(oidc_env(provider)))
    url, kept = signon.begin(CALLBACK)
    session = requests.Session()
    session.get(url, timeout=10)
    denied = session.post(url, data={"action": "deny"}, timeout=10, allow_redirects=False)
    with pytest.raises(SignInFailed, match="refused"):
        signon.complete(query(denied.headers["Location"]), CALLBACK, kept)


def test_a_person_without_an_email_cannot_sign_in(provider):
    provider.storage.store_user(__import__("oidc_provider_mock").User(sub="nomail", claims={"name": "Sans Adresse"}))
    with pytest.raises(SignInFailed, match="email"):
        sign_in(provider, OidcSignOn(Settings.from_env(oidc_env(provider))), "nomail")


def test_the_id_token_survives_a_key_rotation(provider):
    signon = OidcSignOn(Settings.from_env(oidc_env(provider)))
    sign_in(provider, signon)
    provider.rotate()
    (identity, _), _ = sign_in(provider, signon)
    assert identity.login == "jdupont"


def test_oidc_logout_goes_through_the_end_session_endpoint(provider):
    signon = OidcSignOn(Settings.from_env(oidc_env(provider)))
    (_, kept), _ = sign_in(provider, signon)
    url = signon.logout_url(kept, "http://127.0.0.1:8005/")
    assert url.startswith(provider.issuer + "/oauth2/end_session?")
    assert query(url)["id_token_hint"] == kept["id_token"]
    assert query(url)["post_logout_redirect_uri"] == "http://127.0.0.1:8005/"
    form = requests.get(url, timeout=10)
    assert form.status_code == 200
    confirm = requests.post(provider.issuer + "/oauth2/end_session/confirm",
                            data={"redirect_uri": "http://127.0.0.1:8005/"}, timeout=10, allow_redirects=False)
    assert confirm.headers["Location"] == "http://127.0.0.1:8005/"


def test_a_provider_that_cannot_be_reached_fails_the_sign_in_clearly():
    signon = OidcSignOn(Settings.from_env({"OIDC_ISSUER": "http://127.0.0.1:1", "OIDC_CLIENT_ID": "guichet-portal"}))
    with pytest.raises(SignInFailed, match="cannot be reached"):
        signon.begin(CALLBACK)
    assert signon.logout_url({}, "http://127.0.0.1:8005/") is None


def test_the_portal_token_for_the_signed_in_person_is_accepted_by_the_services(provider):
    """The person the provider vouched for, as the services see them through token_for."""
    from shared.auth import token_for

    (identity, _), _ = sign_in(provider, OidcSignOn(Settings.from_env(oidc_env(provider))))
    settings = Settings.from_env({"GUICHET_JWT_SECRET": "integration-secret-of-at-least-32-bytes"})
    assert TokenVerifier(settings).verify("Bearer " + token_for(settings, identity)) == identity


def test_without_configuration_there_is_no_single_sign_on():
    assert sso.from_env({}) is None
    assert sso.from_env({"OIDC_ISSUER": "https://idp.example"}) is None  # API tokens only, no client


# -- CAS ----------------------------------------------------------------------------------

CAS_ATTRIBUTES = {"mail": "marc.leroy@univ.example", "displayName": "Marc Leroy",
                  "supannEtablissement": "{UAI}0541234B", "eduPersonAffiliation": ["staff", "member"]}


@pytest.fixture(scope="module")
def cas() -> Iterator[CasServer]:
    with CasServer("mleroy", "mot-de-passe", CAS_ATTRIBUTES) as running:
        yield running


def test_cas_sign_in_validates_the_ticket_and_maps_the_attributes(cas):
    signon = sso.from_env({"CAS_SERVER_URL": cas.url})
    assert isinstance(signon, CasSignOn) and signon.name == "cas"
    url, kept = signon.begin(CALLBACK)
    assert url.startswith(cas.url + "/login?") and query(url)["service"] == CALLBACK
    back = cas.sign_in(url)
    assert back.startswith(CALLBACK + "?ticket=")
    identity, kept_after = signon.complete(query(back), CALLBACK, kept)
    assert identity == Identity("mleroy", "marc.leroy@univ.example", "Marc Leroy", "0541234B", ("staff", "member"))
    assert kept_after["ticket"] == query(back)["ticket"]
    # A ticket is good once.
    with pytest.raises(SignInFailed, match="refused"):
        signon.complete(query(back), CALLBACK, kept)


def test_cas_admin_values_and_login_attribute_are_configurable(cas):
    signon = CasSignOn(Settings.from_env({"CAS_SERVER_URL": cas.url, "GUICHET_ADMIN_ROLES": "staff",
                                          "GUICHET_CLAIM_LOGIN": "mail"}))
    url, kept = signon.begin(CALLBACK)
    identity, _ = signon.complete(query(cas.sign_in(url)), CALLBACK, kept)
    assert identity.login == "marc.leroy@univ.example" and identity.is_admin


def test_cas_refuses_a_forged_ticket_a_ticket_for_another_service_and_a_wrong_password(cas):
    signon = CasSignOn(Settings.from_env({"CAS_SERVER_URL": cas.url}))
    url, kept = signon.begin(CALLBACK)
    with pytest.raises(SignInFailed, match="refused"):
        signon.complete({"ticket": "ST-forged"}, CALLBACK, kept)
    with pytest.raises(SignInFailed, match="no ticket"):
        signon.complete({}, CALLBACK, kept)
    back = query(cas.sign_in(url))
    with pytest.raises(SignInFailed, match="refused"):
        signon.complete(back, "http://127.0.0.1:9999/elsewhere", kept)
    with pytest.raises(AssertionError):  # the CAS form answers again instead of redirecting
        cas.sign_in(url, password="wrong")


def test_cas_logout_and_the_back_channel_logout_request(cas):
    signon = CasSignOn(Settings.from_env({"CAS_SERVER_URL": cas.url}))
    url = signon.logout_url({}, "http://127.0.0.1:8005/")
    assert url.startswith(cas.url + "/logout?") and query(url)["service"] == "http://127.0.0.1:8005/"
    assert requests.get(url, timeout=20, allow_redirects=False).status_code in (200, 302)
    request = ('<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x" Version="2.0">'
               '<saml:NameID xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">mleroy</saml:NameID>'
               '<samlp:SessionIndex>ST-1-abc</samlp:SessionIndex></samlp:LogoutRequest>')
    assert cas_logout_ticket(request) == "ST-1-abc"
    assert cas_logout_ticket("not xml") is None


def test_a_cas_server_that_cannot_be_reached_fails_the_sign_in_clearly():
    signon = CasSignOn(Settings.from_env({"CAS_SERVER_URL": "http://127.0.0.1:1/cas"}))
    url, kept = signon.begin(CALLBACK)
    with pytest.raises(SignInFailed, match="cannot be reached"):
        signon.complete({"ticket": "ST-1"}, CALLBACK, kept)
