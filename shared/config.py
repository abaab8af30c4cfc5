"""Configuration from the environment, with working local defaults (ARCHITECTURE.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
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
        )

    def nameko_config(self, **extra: object) -> dict[str, object]:
        """The dictionary Nameko's ``config.setup`` expects."""
        return {"AMQP_URI": self.amqp_uri, "DATABASE_URL": self.database_url, **extra}


def with_database(url: str, dbname: str) -> str:
    """The same PostgreSQL URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"
