"""The university's single sign-on for the portal: OpenID Connect (authorization code
with PKCE) or CAS 3.0, chosen by configuration.

The portal's routes (``/sign-in``, ``/sign-in/callback``, ``/sign-out``) speak to this
module only through ``SingleSignOn``; this module alone knows the protocols.

- OIDC (``OIDC_ISSUER`` + ``OIDC_CLIENT_ID``, and ``OIDC_CLIENT_SECRET`` for a
  confidential client; without it a public client, PKCE only; ``OIDC_SCOPES``): the
  endpoints come from discovery; the ID token is checked with the provider's JWKS
  (``shared.auth.KeySet``: iss, aud = the client id, nonce, exp); the claims (ID token,
  then userinfo) are mapped like API tokens (``shared.auth.ClaimMapping``). Sign-out
  goes through the provider's ``end_session_endpoint`` (RP-initiated logout) when it
  has one.
- CAS 3.0 (``CAS_SERVER_URL``, e.g. ``https://cas.univ.example/cas``): ``/login``, then
  ``/serviceValidate`` with the attributes (python-cas), mapped the same way, the CAS
  user being the login unless ``GUICHET_CLAIM_LOGIN`` names an attribute; sign-out
  through ``/logout`` (which ends the CAS session: single logout for the other
  services); ``cas_logout_ticket`` reads the CAS server's back-channel logout request.

What the portal keeps in its session is small and JSON-serialisable. Session lifetime
and idle timeout are ``PORTAL_SESSION_HOURS`` / ``PORTAL_SESSION_IDLE_MINUTES`` (the portal's settings).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

import jwt
import requests
import structlog
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from shared.auth import LEEWAY_SECONDS, ClaimMapping, Identity, KeySet, Unauthenticated, fetch_json
from shared.config import Settings

log = structlog.stdlib.get_logger("guichet.portal.sso")

HTTP_TIMEOUT_SECONDS = 10
SIGN_IN_MAX_SECONDS = 15 * 60  # a sign-in begun longer ago than this is stale


class SignInFailed(Exception):
    """The provider did not vouch for anyone (bad state, refused ticket, provider down)."""


class SingleSignOn(Protocol):
    name: str  # "oidc" or "cas"

    def begin(self, callback_url: str) -> tuple[str, dict[str, Any]]:
        """Where to send the browser, and what the portal keeps in the session until the
        callback (state, PKCE verifier, nonce...)."""

    def complete(self, args: Mapping[str, str], callback_url: str, kept: dict[str, Any]) -> tuple[Identity, dict[str, Any]]:
        """The person the provider vouches for, from the callback's query ``args``, and
        what to keep for sign-out (an id token, a CAS ticket...). ``SignInFailed`` otherwise."""

    def logout_url(self, kept: dict[str, Any], return_to: str) -> str | None:
        """The provider's logout address (single logout), or ``None``."""


# -- OpenID Connect -------------------------------------------------------------------------


class OidcSignOn:
    """Authorization code flow with PKCE (S256), state and nonce, through Authlib."""

    name = "oidc"

    def __init__(self, settings: Settings) -> None:
        if not settings.oidc_issuer or not settings.oidc_client_id:
            raise ValueError("OIDC sign-in needs OIDC_ISSUER and OIDC_CLIENT_ID")
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self.client_secret = settings.oidc_client_secret
        self.scopes = settings.oidc_scopes if "openid" in settings.oidc_scopes.split() else f"openid {settings.oidc_scopes}"
        self.mapping = ClaimMapping.from_settings(settings)
        self.keys = KeySet(issuer=self.issuer, refetch_per_minute=settings.oidc_jwks_refetch_per_minute,
                           max_age=settings.oidc_jwks_max_age_seconds)
        self._metadata: dict[str, Any] | None = None

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once)."""
        if self._metadata is None:
            try:
                document = fetch_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
            except Exception as exc:  # noqa: BLE001 - unreachable, not JSON, too large: all the same here
                raise SignInFailed(f"the identity provider cannot be reached: {exc}") from None
            if document.get("issuer") != self.issuer:
                raise SignInFailed(f"the identity provider names another issuer: {document.get('issuer')!r}")
            self._metadata = document
        return self._metadata

    def _client(self, callback_url: str) -> OAuth2Session:
        return OAuth2Session(
            self.client_id, self.client_secret, scope=self.scopes, redirect_uri=callback_url,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic" if self.client_secret else "none",
        )

    def begin(self, callback_url: str) -> tuple[str, dict[str, Any]]:
        kept = {"state": generate_token(32), "nonce": generate_token(32), "code_verifier": generate_token(64),
                "begun_at": int(time.time())}
        url, _ = self._client(callback_url).create_authorization_url(
            self.metadata()["authorization_endpoint"], state=kept["state"], nonce=kept["nonce"],
            code_verifier=kept["code_verifier"])
        return url, kept

    def complete(self, args: Mapping[str, str], callback_url: str, kept: dict[str, Any]) -> tuple[Identity, dict[str, Any]]:
        _check_fresh(kept)
        if args.get("error"):
            raise SignInFailed(f"the identity provider refused: {args.get('error_description') or args['error']}")
        state, code = args.get("state"), args.get("code")
        if not state or not isinstance(kept.get("state"), str) or not hmac.compare_digest(state, kept["state"]):
            raise SignInFailed("the sign-in state does not match: start again")
        if not code:
            raise SignInFailed("the identity provider sent no authorization code")
        client = self._client(callback_url)
        try:
            token = client.fetch_token(self.metadata()["token_endpoint"], grant_type="authorization_code", code=code,
                                       code_verifier=kept["code_verifier"], timeout=HTTP_TIMEOUT_SECONDS)
        except (OAuthError, requests.RequestException, ValueError) as exc:
            raise SignInFailed(f"the identity provider refused the code: {exc}") from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("the identity provider sent no ID token")
        claims = self._id_token_claims(id_token, kept["nonce"])
        userinfo_endpoint = self.metadata().get("userinfo_endpoint")
        if userinfo_endpoint:
            try:
                answer = client.get(userinfo_endpoint, timeout=HTTP_TIMEOUT_SECONDS)
                info = answer.json() if answer.ok else {}
            except (requests.RequestException, ValueError):
                info = {}
            if isinstance(info, dict) and info.get("sub") == claims["sub"]:
                claims = {**info, **claims}  # the signed ID token wins where both speak
        try:
            identity = self.mapping.identity(claims)
        except Unauthenticated as exc:
            raise SignInFailed(f"the identity provider's answer does not describe a person: {exc}") from None
        log.info("signed in", provider="oidc", login=identity.login)
        return identity, {"id_token": id_token}

    def _id_token_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(id_token)
            key = self.keys.key(header.get("kid"), header.get("alg"))
            claims = jwt.decode(id_token, key, algorithms=[header["alg"]], audience=self.client_id, issuer=self.issuer,
                                leeway=LEEWAY_SECONDS, options={"require": ["exp", "iat", "sub", "aud", "iss"]})
        except (jwt.PyJWTError, Unauthenticated) as exc:
            raise SignInFailed(f"the ID token is not valid: {exc}") from None
        if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
            raise SignInFailed("the ID token's nonce does not match: start again")
        return claims

    def logout_url(self, kept: dict[str, Any], return_to: str) -> str | None:
        try:
            endpoint = self.metadata().get("end_session_endpoint")
        except SignInFailed:
            return None
        if not isinstance(endpoint, str):
            return None
        params = {"client_id": self.client_id, "post_logout_redirect_uri": return_to}
        if isinstance(kept.get("id_token"), str):
            params["id_token_hint"] = kept["id_token"]
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"


# -- CAS 3.0 --------------------------------------------------------------------------------

CAS_USER = "cas:user"


class CasSignOn:
    """CAS 3.0: ``/login`` then ``/serviceValidate`` with attributes (python-cas)."""

    name = "cas"

    def __init__(self, settings: Settings) -> None:
        if not settings.cas_server_url:
            raise ValueError("CAS sign-in needs CAS_SERVER_URL")
        self.server_url = settings.cas_server_url.rstrip("/") + "/"
        mapping = ClaimMapping.from_settings(settings)
        # The CAS user is the login, unless the configuration names an attribute for it.
        self.mapping = ClaimMapping({**mapping.claims, "login": settings.claims.get("login", (CAS_USER,))},
                                    mapping.admin_roles)

    def _client(self, service_url: str) -> Any:
        from cas import CASClientV3

        class Cas3(CASClientV3):
            url_suffix = "serviceValidate"  # CAS 3.0's own path (p3/ is for 2.0 servers)

        client = Cas3(service_url=service_url, server_url=self.server_url)
        client.session.request = _with_timeout(client.session.request)
        return client

    def begin(self, callback_url: str) -> tuple[str, dict[str, Any]]:
        return self._client(callback_url).get_login_url(), {"begun_at": int(time.time())}

    def complete(self, args: Mapping[str, str], callback_url: str, kept: dict[str, Any]) -> tuple[Identity, dict[str, Any]]:
        _check_fresh(kept)
        ticket = args.get("ticket")
        if not ticket or len(ticket) > 256 or not ticket.isascii():
            raise SignInFailed("the CAS server sent no ticket")
        try:
            user, attributes, _ = self._client(callback_url).verify_ticket(ticket)
        except (requests.RequestException, ValueError, SyntaxError) as exc:  # ElementTree.ParseError is a SyntaxError
            raise SignInFailed(f"the CAS server cannot be reached: {exc}") from None
        if not user:
            raise SignInFailed("the CAS server refused the ticket")
        claims: dict[str, Any] = {**(attributes or {}), CAS_USER: user}
        for name in self.mapping.claims.get("roles", ()):
            if isinstance(claims.get(name), str):
                claims[name] = [claims[name]]  # a single-valued CAS attribute comes as a string
        try:
            identity = self.mapping.identity(claims)
        except Unauthenticated as exc:
            raise SignInFailed(f"the CAS server's attributes do not describe a person: {exc}") from None
        log.info("signed in", provider="cas", login=identity.login)
        return identity, {"ticket": ticket}

    def logout_url(self, kept: dict[str, Any], return_to: str) -> str | None:
        return self._client(return_to).get_logout_url(return_to)


def cas_logout_ticket(logout_request: str) -> str | None:
    """The service ticket a CAS back-channel logout request (``logoutRequest`` form
    field, SAML) ends, so the portal can end the session that kept it; ``None`` if unreadable."""
    from cas import CASClientV3

    found = CASClientV3.get_saml_slos(logout_request.encode()) if logout_request else None
    return found[0].text if found else None


def _with_timeout(request: Any) -> Any:
    def with_timeout(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", HTTP_TIMEOUT_SECONDS)
        return request(*args, **kwargs)
    return with_timeout


def _check_fresh(kept: Mapping[str, Any]) -> None:
    begun = kept.get("begun_at")
    if not isinstance(begun, int) or time.time() - begun > SIGN_IN_MAX_SECONDS:
        raise SignInFailed("this sign-in has expired: start again")


def from_env(env: Mapping[str, str] | None = None) -> SingleSignOn | None:
    """The configured single sign-on, or ``None`` when none is configured (then only the
    development sign-in exists, in development mode). OIDC when ``OIDC_CLIENT_ID`` is set,
    else CAS when ``CAS_SERVER_URL`` is set."""
    settings = Settings.from_env(env)
    if settings.oidc_issuer and settings.oidc_client_id:
        return OidcSignOn(settings)
    if settings.cas_server_url:
        return CasSignOn(settings)
    return None
