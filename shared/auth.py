"""Identity: who calls the services, from a bearer JWT (``API.md``, Identity).

A service trusts, each by configuration:

- the university's OpenID Connect provider (``OIDC_ISSUER``): its keys come from its
  JWKS (found by discovery), chosen by ``kid``; an unknown ``kid`` refetches the key set
  (a few times a minute at most), so the provider's key rotation needs no restart;
- a static key of the ENT: ``GUICHET_JWT_PUBLIC_KEY`` (RSA: RS256/PS256, EC P-256: ES256,
  Ed25519: EdDSA) or ``GUICHET_JWT_SECRET`` (HS256, the only symmetric algorithm);
  ``GUICHET_JWT_ISSUER``, when set, is then required as ``iss``;
- the portal (``PORTAL_ISSUER``), for the people signed in to it.

**How the portal calls the services for a person.** The portal never forwards the
provider's token (its audience is the portal, and it may be long-lived): after the
single sign-on, for each call it mints a short-lived token (``token_for``, five minutes)
with the person's mapped identity, signed with its own private key
(``PORTAL_SIGNING_KEY``, RSA or EC, PEM), ``iss`` = ``PORTAL_ISSUER`` and a ``kid``. It
publishes the public half at ``/.well-known/jwks.json`` (``portal_jwks``). The services
trust that issuer through ``PORTAL_JWKS_URL`` (default ``<PORTAL_ISSUER>/.well-known/
jwks.json``) or ``PORTAL_PUBLIC_KEY``, and check every request like any other token.
In development mode, with no signing key, ``token_for`` signs with the development
secret, which the services accept only in development mode.

The algorithm is fixed by the key that checks the token, never by the token: ``alg:
none``, HS256 against a public key and tokens of unknown issuers are refused. ``exp``
is required, ``exp``/``nbf``/``iat`` must be numbers, a token may not live longer than
``GUICHET_JWT_MAX_AGE``, and the audience (``GUICHET_JWT_AUDIENCE``, default
``guichet``) must be in ``aud``, or ``azp`` one of ``GUICHET_JWT_AZP``.

**Fail closed.** Outside development mode (``GUICHET_ENV=development``) a service with
nothing to trust refuses to start (``IdentityMisconfigured``), and the development
secret is refused even when configured by mistake.

Claims are mapped to an ``Identity`` by ``ClaimMapping`` with SupAnn / eduPerson /
Keycloak defaults; the portal's single sign-on uses the same mapping.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from shared.config import DEV_JWT_SECRET, Settings

AUDIENCE = "guichet"
LEEWAY_SECONDS = 30
MAX_TOKEN_BYTES = 8192
CACHE_SIZE = 10_000  # verified tokens remembered until they expire
FETCH_TIMEOUT_SECONDS = 5.0
FAILURE_BACKOFF_SECONDS = 5.0  # after a failed fetch, the keys in hand are used this long
MAX_DOCUMENT_BYTES = 1024 * 1024  # a discovery document or a JWKS larger than this is refused

ASYMMETRIC = {"RS256", "PS256", "ES256", "EdDSA"}

log = structlog.stdlib.get_logger("guichet.auth")


class Unauthenticated(Exception):
    """No valid identity (HTTP 401)."""


class IdentityMisconfigured(RuntimeError):
    """The service has nothing to check tokens with: it must not start."""


@dataclass(frozen=True)
class Identity:
    """Who calls, as the ENT vouches for them."""

    login: str
    email: str
    name: str | None = None
    establishment: str | None = None
    roles: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


# -- claim mapping -------------------------------------------------------------------------

DEFAULT_CLAIMS: dict[str, tuple[str, ...]] = {
    "login": ("preferred_username", "uid", "eduPersonPrincipalName", "sub"),
    "email": ("email", "mail"),
    "name": ("name", "displayName", "cn"),
    "establishment": ("establishment", "supannEtablissement"),
    "roles": ("roles", "realm_access.roles", "groups", "eduPersonAffiliation"),
}
# What the portal mints (``token_for``): already mapped, so read back as is.
CANONICAL_CLAIMS: dict[str, tuple[str, ...]] = {
    "login": ("sub",), "email": ("email",), "name": ("name",), "establishment": ("establishment",),
    "roles": ("roles",),
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ClaimMapping:
    """Which claims (or CAS / LDAP attributes) make each ``Identity`` field.

    Scalar fields take the first claim present (a list gives its first string); roles
    gather every listed claim (dotted names reach into objects: ``realm_access.roles``);
    any value of ``admin_roles`` makes the ``admin`` role Guichet reads.
    """

    claims: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_CLAIMS))
    admin_roles: tuple[str, ...] = ("admin",)

    @classmethod
    def from_settings(cls, settings: Settings) -> ClaimMapping:
        return cls({**DEFAULT_CLAIMS, **settings.claims}, settings.admin_roles)

    def identity(self, claims: Mapping[str, Any]) -> Identity:
        """The identity these claims describe; ``Unauthenticated`` without a login or an email."""
        login = self._scalar(claims, "login")
        if login is None or not login.strip() or len(login) > 200 or CONTROL.search(login):
            raise Unauthenticated("the token's sub must be a login")
        email = self._scalar(claims, "email")
        if email is None or len(email) > 320 or not EMAIL.match(email):
            raise Unauthenticated("the token must carry an email")
        name = self._scalar(claims, "name")
        if name is None:
            given, family = claims.get("given_name"), claims.get("family_name")
            parts = [p.strip() for p in (given, family) if isinstance(p, str) and p.strip()]
            name = " ".join(parts) or None
        establishment = self._scalar(claims, "establishment")
        if establishment is not None:
            establishment = establishment.removeprefix("{UAI}").strip()  # SupAnn: {UAI}0540001A
        return Identity(
            login=login.strip(),
            email=email,
            name=name if name is not None and len(name) <= 200 and not CONTROL.search(name) else None,
            establishment=establishment if establishment and len(establishment) <= 20 else None,
            roles=self._roles(claims),
        )

    def _scalar(self, claims: Mapping[str, Any], what: str) -> str | None:
        for name in self.claims.get(what, ()):
            value = _lookup(claims, name)
            if isinstance(value, list):
                value = next((v for v in value if isinstance(v, str) and v.strip()), None)
            if isinstance(value, str) and value.strip():
                return value
        return None

    def _roles(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        values: list[str] = []
        for name in self.claims.get("roles", ()):
            value = _lookup(claims, name)
            if value is None:
                continue
            if not isinstance(value, list):
                raise Unauthenticated(f"the token's {name} must be a list")
            values.extend(v for v in value if isinstance(v, str) and v not in values)
        if self.admin_roles == ("admin",):
            return tuple(values)
        # Only the configured values make an admin, not a claim that happens to say "admin".
        roles = [v for v in values if v != "admin"]
        if any(v in self.admin_roles for v in values):
            roles.append("admin")
        return tuple(roles)


def _lookup(claims: Mapping[str, Any], name: str) -> Any:
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def identity_from_claims(claims: dict[str, Any], mapping: ClaimMapping | None = None) -> Identity:
    """The identity verified ``claims`` describe (the canonical claim names by default)."""
    return (mapping or ClaimMapping(CANONICAL_CLAIMS)).identity(claims)


# -- keys ---------------------------------------------------------------------------------


def fetch_json(url: str) -> dict[str, Any]:
    """A JSON document over HTTP(S), size- and time-limited."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as answer:  # noqa: S310 - configured URL
        raw = answer.read(MAX_DOCUMENT_BYTES + 1)
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    document = json.loads(raw)
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return document


def _algorithms_for(key: Any) -> set[str]:
    """The algorithms a public key may check: its type decides, never the token."""
    if isinstance(key, rsa.RSAPublicKey):
        return {"RS256", "PS256"}
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return {"ES256"}
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {"EdDSA"}
    return set()


class KeySet:
    """An issuer's signing keys (its JWKS), cached and chosen by ``kid``.

    An unknown ``kid`` refetches the set, at most ``refetch_per_minute`` times a minute,
    so a rotation works at once while a flood of made-up ``kid``s cannot hammer the
    provider. The set is also refetched when older than ``max_age`` seconds.
    """

    def __init__(self, *, issuer: str | None = None, jwks_url: str | None = None, refetch_per_minute: int = 6,
                 max_age: float = 3600, fetch: Callable[[str], dict[str, Any]] = fetch_json) -> None:
        if issuer is None and jwks_url is None:
            raise ValueError("a KeySet needs an issuer (discovery) or a JWKS URL")
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.refetch_per_minute = refetch_per_minute
        self.max_age = max_age
        self._fetch = fetch
        self._keys: dict[str, tuple[Any, set[str]]] = {}
        self._fetched_at = 0.0
        self._failed_until = 0.0
        self._refetches: deque[float] = deque()
        self._lock = threading.Lock()

    def key(self, kid: str | None, alg: str) -> Any:
        """The public key ``kid`` names, for a token signed with ``alg``; ``Unauthenticated`` otherwise."""
        if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 200):
            raise Unauthenticated("the token's header must name its key (kid)")
        with self._lock:
            now = time.monotonic()
            if now < self._failed_until:
                pass  # the issuer just failed to answer: use what we have for a few seconds
            elif not self._fetched_at or now - self._fetched_at > self.max_age:
                self._refresh()
            elif self._find(kid, alg) is None and self._may_refetch():
                log.info("unknown key id: fetching the issuer's keys again", issuer=self.issuer, kid=kid)
                self._refresh()
            found = self._find(kid, alg)
        if found is None:
            raise Unauthenticated("the token is signed with a key the issuer does not publish")
        key, algorithms = found
        if alg not in algorithms:
            raise Unauthenticated(f"the key {kid or ''} does not sign with {alg}")
        return key

    def _find(self, kid: str | None, alg: str) -> tuple[Any, set[str]] | None:
        if kid is not None:
            return self._keys.get(kid)
        # No kid: allowed while the issuer publishes a single key for this algorithm
        # (OpenID Connect Core 10.1), as some providers do.
        candidates = [found for found in self._keys.values() if alg in found[1]]
        return candidates[0] if len(candidates) == 1 else None

    def _may_refetch(self) -> bool:
        now = time.monotonic()
        while self._refetches and now - self._refetches[0] > 60:
            self._refetches.popleft()
        if len(self._refetches) >= self.refetch_per_minute:
            return False
        self._refetches.append(now)
        return True

    def _refresh(self) -> None:
        try:
            url = self.jwks_url or self._discover()
            document = self._fetch(url)
        except Exception as exc:  # noqa: BLE001 - any failure: keep the keys we have, refuse the unknown
            log.warning("the issuer's keys cannot be fetched", issuer=self.issuer, error=str(exc))
            # Not once per request while it is down: each try may wait FETCH_TIMEOUT_SECONDS.
            self._failed_until = time.monotonic() + FAILURE_BACKOFF_SECONDS
            return
        keys: dict[str, tuple[Any, set[str]]] = {}
        for jwk in document.get("keys") or []:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                continue
            kid = jwk["kid"] if isinstance(jwk.get("kid"), str) else f"#{len(keys)}"
            try:
                public = jwt.PyJWK(jwk).key
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue  # a key type we do not check with (e.g. enc keys, unsupported curves)
            algorithms = _algorithms_for(public)
            if isinstance(jwk.get("alg"), str):
                algorithms &= {jwk["alg"]}
            if algorithms:
                keys[kid] = (public, algorithms)
        self._keys = keys
        self._fetched_at = time.monotonic()
        log.info("issuer keys fetched", issuer=self.issuer, kids=sorted(keys))

    def _discover(self) -> str:
        assert self.issuer is not None
        document = self._fetch(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if document.get("issuer") != self.issuer:
            raise ValueError(f"the discovery document names another issuer: {document.get('issuer')!r}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise ValueError("the discovery document has no jwks_uri")
        self.jwks_url = jwks_uri
        return jwks_uri


@dataclass
class Trust:
    """One source of tokens: its issuer (``None``: tokens without ``iss`` too), how its
    tokens are checked, and how their claims are mapped."""

    issuer: str | None
    mapping: ClaimMapping
    static_key: Any = None
    static_algorithms: set[str] = field(default_factory=set)
    key_set: KeySet | None = None
    label: str = ""

    def key(self, header: Mapping[str, Any]) -> Any:
        alg = header.get("alg")
        if self.key_set is not None:
            if alg not in ASYMMETRIC:
                raise Unauthenticated(f"tokens of {self.issuer} must be signed with one of {sorted(ASYMMETRIC)}")
            return self.key_set.key(header.get("kid"), alg)
        if alg not in self.static_algorithms:
            raise Unauthenticated(f"the token must be signed with {' or '.join(sorted(self.static_algorithms))}")
        return self.static_key


def _static_trust(settings: Settings, mapping: ClaimMapping) -> Trust | None:
    if settings.jwt_public_key:
        try:
            key = serialization.load_pem_public_key(settings.jwt_public_key.encode())
        except ValueError as exc:
            raise IdentityMisconfigured(f"GUICHET_JWT_PUBLIC_KEY is not a PEM public key: {exc}") from None
        algorithms = _algorithms_for(key)
        if not algorithms:
            raise IdentityMisconfigured("GUICHET_JWT_PUBLIC_KEY must be an RSA, EC P-256 or Ed25519 public key")
        return Trust(settings.jwt_issuer, mapping, key, algorithms, label="GUICHET_JWT_PUBLIC_KEY")
    if settings.jwt_secret:
        if settings.jwt_secret == DEV_JWT_SECRET and not settings.development:
            raise IdentityMisconfigured("GUICHET_JWT_SECRET is the public development secret: refused outside"
                                        " development mode")
        return Trust(settings.jwt_issuer, mapping, settings.jwt_secret.encode(), {"HS256"},
                     label="GUICHET_JWT_SECRET")
    return None


_development_said = False


def trusts_from_settings(settings: Settings) -> list[Trust]:
    """Every source of tokens the settings configure; ``IdentityMisconfigured`` if none
    outside development mode (in development mode, the development secret)."""
    global _development_said
    mapping = ClaimMapping.from_settings(settings)
    trusts: list[Trust] = []
    if settings.oidc_issuer:
        trusts.append(Trust(settings.oidc_issuer, mapping, label="OIDC_ISSUER", key_set=KeySet(
            issuer=settings.oidc_issuer, refetch_per_minute=settings.oidc_jwks_refetch_per_minute,
            max_age=settings.oidc_jwks_max_age_seconds)))
    if settings.portal_issuer:
        canonical = ClaimMapping(CANONICAL_CLAIMS)
        if settings.portal_public_key:
            key = serialization.load_pem_public_key(settings.portal_public_key.encode())
            trusts.append(Trust(settings.portal_issuer, canonical, key, _algorithms_for(key), label="PORTAL_PUBLIC_KEY"))
        else:
            url = settings.portal_jwks_url or settings.portal_issuer.rstrip("/") + "/.well-known/jwks.json"
            trusts.append(Trust(settings.portal_issuer, canonical, label="PORTAL_ISSUER", key_set=KeySet(
                jwks_url=url, issuer=settings.portal_issuer,
                refetch_per_minute=settings.oidc_jwks_refetch_per_minute,
                max_age=settings.oidc_jwks_max_age_seconds)))
    static = _static_trust(settings, mapping)
    if static is not None:
        trusts.append(static)
    if not trusts:
        if not settings.development:
            raise IdentityMisconfigured(
                "no way to check tokens: set OIDC_ISSUER, GUICHET_JWT_PUBLIC_KEY or GUICHET_JWT_SECRET"
                " (or GUICHET_ENV=development for local use only)")
        if not _development_said:
            _development_said = True
            log.warning("development mode: tokens signed with the public development secret are accepted;"
                        " never run like this in production")
        trusts.append(Trust(None, mapping, DEV_JWT_SECRET.encode(), {"HS256"}, label="development secret"))
    return trusts


def refuse_to_start(settings: Settings) -> None:
    """Raise ``IdentityMisconfigured`` (after one log line) when the settings trust nothing."""
    try:
        trusts_from_settings(settings)
    except IdentityMisconfigured as exc:
        log.error("refusing to start: " + str(exc))
        raise


class TokenVerifier:
    """Checks bearer tokens against every configured ``Trust``, chosen by the token's ``iss``."""

    def __init__(self, settings: Settings) -> None:
        self._verified: dict[str, tuple[Identity, float]] = {}
        try:
            self.trusts = trusts_from_settings(settings)
        except IdentityMisconfigured as exc:
            log.error("refusing to start: " + str(exc))
            raise
        self.audience = settings.jwt_audience
        self.allowed_azp = set(settings.jwt_allowed_azp)
        self.max_age = settings.jwt_max_age_seconds

    def verify(self, authorization: str | None) -> Identity:
        """The identity a bearer token vouches for; 401 (``Unauthenticated``) otherwise.

        A frontend sends the same token with every request, so verified tokens are
        remembered until they expire (a signature check is a good part of a request).
        """
        cached = self._verified.get(authorization or "")
        if cached is not None and cached[1] > time.time():
            return cached[0]
        identity, expires_at = self._verify(authorization)
        if len(self._verified) >= CACHE_SIZE:
            self._verified.clear()
        self._verified[authorization or ""] = (identity, expires_at)
        return identity

    def _verify(self, authorization: str | None) -> tuple[Identity, float]:
        if not authorization:
            raise Unauthenticated("an Authorization: Bearer token is required")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthenticated("the token is too long")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        trust = self._trust_for(unverified.get("iss"))
        key = trust.key(header)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                issuer=trust.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        self._check_times(claims)
        self._check_audience(claims)
        return trust.mapping.identity(claims), float(claims["exp"])

    def _trust_for(self, iss: Any) -> Trust:
        if iss is not None and not isinstance(iss, str):
            raise Unauthenticated("the token's iss must be a string")
        for trust in self.trusts:
            if trust.issuer is not None and trust.issuer == iss:
                return trust
        for trust in self.trusts:
            # A static key without a configured issuer vouches for its own tokens,
            # whatever they say in iss (the ENT's, before issuers were checked).
            if trust.issuer is None and trust.key_set is None:
                return trust
        raise Unauthenticated(f"tokens of issuer {iss!r} are not trusted" if iss else "the token must name its issuer")

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        for name in ("exp", "nbf", "iat"):
            value = claims.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise Unauthenticated(f"the token's {name} must be a number")
        now = time.time()
        issued = claims.get("iat")
        if issued is not None and now - issued > self.max_age + LEEWAY_SECONDS:
            raise Unauthenticated("the token is too old")
        if claims["exp"] - (issued if issued is not None else now) > self.max_age + LEEWAY_SECONDS:
            raise Unauthenticated(f"the token lives longer than {self.max_age} seconds")

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.audience in audiences:
            return
        if self.allowed_azp and claims.get("azp") in self.allowed_azp:
            return
        raise Unauthenticated(f"the token's audience must be {self.audience}")


# -- tokens Guichet signs -----------------------------------------------------------------


def _private_key(pem: str) -> tuple[Any, str]:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key, "ES256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key, "EdDSA"
    raise ValueError("the private key must be RSA, EC P-256 or Ed25519")


def key_id(public_key: Any) -> str:
    """A stable ``kid`` for a public key: a hash of its DER encoding."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:12]).rstrip(b"=").decode()


def issue_token(
    settings: Settings,
    *,
    sub: str,
    email: str,
    name: str | None = None,
    establishment: str | None = None,
    admin: bool = False,
    ttl_seconds: int = 8 * 3600,
    private_key: str | None = None,
    issuer: str | None = None,
    roles: tuple[str, ...] | None = None,
) -> str:
    """A token for local use and tests (HS256 with the configured secret, or the
    algorithm of ``private_key``: RSA RS256, EC ES256, Ed25519 EdDSA, with its ``kid``)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "email": email,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_seconds,
        "roles": list(roles) if roles is not None else (["admin"] if admin else []),
    }
    if admin and "admin" not in claims["roles"]:
        claims["roles"].append("admin")
    if issuer:
        claims["iss"] = issuer
    if name:
        claims["name"] = name
    if establishment:
        claims["establishment"] = establishment
    if private_key:
        key, algorithm = _private_key(private_key)
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": key_id(key.public_key())})
    return jwt.encode(claims, settings.jwt_secret or DEV_JWT_SECRET, algorithm="HS256")


def token_for(settings: Settings, identity: Identity, ttl_seconds: int = 300) -> str:
    """A short-lived token the portal sends to the services on behalf of a signed-in
    person; the services check it like any other token.

    Signed with ``PORTAL_SIGNING_KEY`` (``iss`` = ``PORTAL_ISSUER``, else ``PUBLIC_URL``)
    when set, else with the shared secret (development: the development secret).
    """
    return issue_token(
        settings, sub=identity.login, email=identity.email, name=identity.name,
        establishment=identity.establishment, ttl_seconds=ttl_seconds, roles=identity.roles,
        private_key=settings.portal_signing_key,
        issuer=(settings.portal_issuer or settings.public_url) if settings.portal_signing_key else None,
    )


def portal_jwks(settings: Settings) -> dict[str, Any]:
    """The JWKS document the portal serves at ``/.well-known/jwks.json``: the public half
    of ``PORTAL_SIGNING_KEY`` (no keys without one)."""
    if not settings.portal_signing_key:
        return {"keys": []}
    key, algorithm = _private_key(settings.portal_signing_key)
    public = key.public_key()
    jwk = json.loads(_to_jwk(public, algorithm))
    jwk.update({"kid": key_id(public), "use": "sig", "alg": algorithm})
    return {"keys": [jwk]}


def _to_jwk(public: Any, algorithm: str) -> str:
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    if algorithm == "RS256":
        return RSAAlgorithm.to_jwk(public)
    if algorithm == "ES256":
        return ECAlgorithm.to_jwk(public)
    return OKPAlgorithm.to_jwk(public)
