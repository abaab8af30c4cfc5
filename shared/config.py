"""Configuration from the environment, with working local defaults (ARCHITECTURE.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

DEV_JWT_SECRET = "guichet-dev-secret-do-not-use-in-production"


@dataclass(frozen=True)
class Settings:
    amqp_uri: str
    database_url: str
    smtp_url: str | None
    attachments_dir: str
    max_attachment_bytes: int
    jwt_secret: str | None
    jwt_public_key: str | None
    public_url: str
    log_format: str  # "json", "console" or "auto" (console on a terminal)
    log_level: str
    # -- identity (README, "Connecting Guichet to ..."); defaults keep today's behaviour
    environment: str = "production"  # GUICHET_ENV: "development" allows the dev secret
    jwt_issuer: str | None = None  # `iss` required on tokens checked with the static key
    jwt_audience: str = "guichet"
    jwt_allowed_azp: tuple[str, ...] = ()  # also accepted when `aud` does not fit
    jwt_max_age_seconds: int = 24 * 3600  # a token may not live longer than this
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: str = "openid profile email"
    oidc_jwks_refetch_per_minute: int = 6  # unknown `kid`s may refetch the JWKS this often
    oidc_jwks_max_age_seconds: int = 3600
    cas_server_url: str | None = None
    portal_issuer: str | None = None  # tokens the portal mints for a signed-in person
    portal_jwks_url: str | None = None
    portal_public_key: str | None = None
    portal_signing_key: str | None = None
    claims: dict[str, tuple[str, ...]] = field(default_factory=dict)  # Identity field -> claim names
    admin_roles: tuple[str, ...] = ("admin",)
    ldap_url: str | None = None
    ldap_bind_dn: str | None = None
    ldap_bind_password: str | None = None
    ldap_base_dn: str | None = None
    ldap_filter: str = "(objectClass=inetOrgPerson)"
    ldap_attributes: dict[str, str] = field(default_factory=dict)  # Identity field -> attribute
    ldap_timeout_seconds: float = 3.0
    cors_allowed_origins: tuple[str, ...] = ()

    @property
    def development(self) -> bool:
        """``GUICHET_ENV=development``: the development secret and sign-in exist only then."""
        return self.environment == "development"

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            amqp_uri=env.get("AMQP_URI", "pyamqp://guest:guest@localhost:5672/"),
            database_url=env.get("DATABASE_URL", "postgresql://localhost/guichet"),
            smtp_url=env.get("SMTP_URL") or None,
            attachments_dir=env.get("ATTACHMENTS_DIR", "var/attachments"),
            max_attachment_bytes=int(env.get("MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024)),
            jwt_secret=env.get("GUICHET_JWT_SECRET") or None,
            jwt_public_key=env.get("GUICHET_JWT_PUBLIC_KEY") or None,
            public_url=env.get("PUBLIC_URL", "http://localhost:8005").rstrip("/"),
            log_format=env.get("LOG_FORMAT", "auto"),
            log_level=env.get("LOG_LEVEL", "info"),
            environment=(env.get("GUICHET_ENV") or "production").strip().lower(),
            jwt_issuer=_exact(env.get("GUICHET_JWT_ISSUER")),
            jwt_audience=env.get("GUICHET_JWT_AUDIENCE") or "guichet",
            jwt_allowed_azp=_list(env.get("GUICHET_JWT_AZP")),
            jwt_max_age_seconds=int(env.get("GUICHET_JWT_MAX_AGE", 24 * 3600)),
            oidc_issuer=_exact(env.get("OIDC_ISSUER")),
            oidc_client_id=env.get("OIDC_CLIENT_ID") or None,
            oidc_client_secret=env.get("OIDC_CLIENT_SECRET") or None,
            oidc_scopes=env.get("OIDC_SCOPES") or "openid profile email",
            oidc_jwks_refetch_per_minute=int(env.get("OIDC_JWKS_REFETCH_PER_MINUTE", 6)),
            oidc_jwks_max_age_seconds=int(env.get("OIDC_JWKS_MAX_AGE", 3600)),
            cas_server_url=_url(env.get("CAS_SERVER_URL")),
            portal_issuer=_exact(env.get("PORTAL_ISSUER")),
            portal_jwks_url=env.get("PORTAL_JWKS_URL") or None,
            portal_public_key=env.get("PORTAL_PUBLIC_KEY") or None,
            portal_signing_key=env.get("PORTAL_SIGNING_KEY") or None,
            claims={name: _list(env[var]) for name, var in CLAIM_VARIABLES.items() if env.get(var)},
            admin_roles=_list(env.get("GUICHET_ADMIN_ROLES")) or ("admin",),
            ldap_url=env.get("LDAP_URL") or None,
            ldap_bind_dn=env.get("LDAP_BIND_DN") or None,
            ldap_bind_password=env.get("LDAP_BIND_PASSWORD") or None,
            ldap_base_dn=env.get("LDAP_BASE_DN") or None,
            ldap_filter=env.get("LDAP_FILTER") or "(objectClass=inetOrgPerson)",
            ldap_attributes={name: env[var] for name, var in LDAP_ATTRIBUTE_VARIABLES.items() if env.get(var)},
            ldap_timeout_seconds=float(env.get("LDAP_TIMEOUT", 3)),
            cors_allowed_origins=tuple(o.rstrip("/") for o in _list(env.get("CORS_ALLOWED_ORIGINS"))),
        )

    def nameko_config(self, **extra: object) -> dict[str, object]:
        """The dictionary Nameko's ``config.setup`` expects."""
        return {"AMQP_URI": self.amqp_uri, "DATABASE_URL": self.database_url, **extra}


# Which claims give each Identity field (comma-separated, first present wins; roles: all).
CLAIM_VARIABLES = {
    "login": "GUICHET_CLAIM_LOGIN",
    "email": "GUICHET_CLAIM_EMAIL",
    "name": "GUICHET_CLAIM_NAME",
    "establishment": "GUICHET_CLAIM_ESTABLISHMENT",
    "roles": "GUICHET_CLAIM_ROLES",
}
LDAP_ATTRIBUTE_VARIABLES = {
    "login": "LDAP_ATTR_LOGIN",
    "email": "LDAP_ATTR_EMAIL",
    "name": "LDAP_ATTR_NAME",
    "establishment": "LDAP_ATTR_ESTABLISHMENT",
    "roles": "LDAP_ATTR_ROLES",
}


def _list(value: str | None) -> tuple[str, ...]:
    """A comma-separated variable as a tuple, blanks dropped."""
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _exact(value: str | None) -> str | None:
    """An issuer, compared byte for byte with `iss` (a trailing slash matters)."""
    return value.strip() if value and value.strip() else None


def _url(value: str | None) -> str | None:
    return value.strip().rstrip("/") if value and value.strip() else None


def with_database(url: str, dbname: str) -> str:
    """The same PostgreSQL URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"
