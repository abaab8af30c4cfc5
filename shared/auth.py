"""Identity: the ENT's JWT bearer tokens (HS256 with a shared secret, or RS256 with the
ENT's public key), audience ``guichet``, ``exp`` required (``API.md``, Identity)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt
import structlog

from shared.config import DEV_JWT_SECRET, Settings

AUDIENCE = "guichet"
LEEWAY_SECONDS = 30
MAX_TOKEN_BYTES = 8192
CACHE_SIZE = 10_000  # verified tokens remembered until they expire

log = structlog.stdlib.get_logger("guichet.auth")


class Unauthenticated(Exception):
    """No valid identity (HTTP 401)."""


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


class TokenVerifier:
    """Checks bearer tokens; the algorithm is fixed by the configured key, never by the token."""

    def __init__(self, settings: Settings) -> None:
        self._verified: dict[str, tuple[Identity, float]] = {}
        if settings.jwt_public_key:
            self.key: str = settings.jwt_public_key
            self.algorithms = ["RS256"]
        else:
            self.key = settings.jwt_secret or DEV_JWT_SECRET
            self.algorithms = ["HS256"]
            if not settings.jwt_secret:
                log.warning(
                    "GUICHET_JWT_SECRET is not set: using the development secret."
                    " Anyone can mint tokens. Never run like this in production."
                )

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
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                audience=AUDIENCE,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        return identity_from_claims(claims), float(claims["exp"])


def identity_from_claims(claims: dict[str, Any]) -> Identity:
    sub, email = claims.get("sub"), claims.get("email")
    if not isinstance(sub, str) or not sub.strip() or len(sub) > 200:
        raise Unauthenticated("the token's sub must be a login")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        raise Unauthenticated("the token must carry an email")
    name = claims.get("name")
    establishment = claims.get("establishment")
    roles = claims.get("roles") or []
    if not isinstance(roles, list):
        raise Unauthenticated("the token's roles must be a list")
    return Identity(
        login=sub.strip(),
        email=email,
        name=name if isinstance(name, str) and len(name) <= 200 else None,
        establishment=establishment if isinstance(establishment, str) and len(establishment) <= 20 else None,
        roles=tuple(r for r in roles if isinstance(r, str)),
    )


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
) -> str:
    """A token for local use and tests (HS256 with the configured secret, or RS256 with
    ``private_key``)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "email": email,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
        "roles": ["admin"] if admin else [],
    }
    if name:
        claims["name"] = name
    if establishment:
        claims["establishment"] = establishment
    if private_key:
        return jwt.encode(claims, private_key, algorithm="RS256")
    return jwt.encode(claims, settings.jwt_secret or DEV_JWT_SECRET, algorithm="HS256")


def token_for(settings: Settings, identity: Identity, ttl_seconds: int = 300) -> str:
    """A short-lived token a backend-for-frontend (the portal) sends to the services on
    behalf of a signed-in person; the services check it like any other token."""
    return issue_token(
        settings, sub=identity.login, email=identity.email, name=identity.name,
        establishment=identity.establishment, admin=identity.is_admin, ttl_seconds=ttl_seconds,
    )
