"""The portal's configuration, from the environment (``ARCHITECTURE.md``, Configuration).

Outside development mode (``GUICHET_ENV=development``) the portal refuses to start
without ``PORTAL_SESSION_SECRET``: a known secret would let anyone forge a session.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEV_SESSION_SECRET = "guichet-portal-dev-session-secret-do-not-use-in-production"

BACKENDS = {
    "tickets": ("TICKETS_URL", "http://localhost:8000"),
    "routing": ("ROUTING_URL", "http://localhost:8001"),
    "notifier": ("NOTIFIER_URL", "http://localhost:8002"),
    "attachments": ("ATTACHMENTS_URL", "http://localhost:8003"),
    "escalation": ("ESCALATION_URL", "http://localhost:8004"),
}


class MissingSecret(RuntimeError):
    """``PORTAL_SESSION_SECRET`` is required outside development mode."""


@dataclass(frozen=True)
class PortalSettings:
    development: bool
    session_secret: str
    session_idle_minutes: int
    session_hours: int
    frame_ancestors: tuple[str, ...]
    backend_urls: dict[str, str]
    backend_timeout: float
    max_upload_bytes: int
    console_poll_seconds: int = 15

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PortalSettings:
        """The settings; ``MissingSecret`` outside development without a session secret."""
        env = os.environ if env is None else env
        development = env.get("GUICHET_ENV", "").strip().lower() == "development"
        secret = env.get("PORTAL_SESSION_SECRET") or ""
        if not secret:
            if not development:
                raise MissingSecret(
                    "PORTAL_SESSION_SECRET is not set: the portal does not start without it outside"
                    " development mode (GUICHET_ENV=development)"
                )
            secret = DEV_SESSION_SECRET
        return cls(
            development=development,
            session_secret=secret,
            session_idle_minutes=int(env.get("PORTAL_SESSION_IDLE_MINUTES", 120)),
            session_hours=int(env.get("PORTAL_SESSION_HOURS", 12)),
            frame_ancestors=tuple(env.get("PORTAL_FRAME_ANCESTORS", "").split()),
            backend_urls={name: env.get(var, default).rstrip("/") for name, (var, default) in BACKENDS.items()},
            backend_timeout=float(env.get("PORTAL_BACKEND_TIMEOUT", 10)),
            max_upload_bytes=int(env.get("MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024)),
            # How often a console queue asks for its rows again (htmx polling).
            console_poll_seconds=max(1, int(env.get("PORTAL_CONSOLE_POLL_SECONDS", 15))),
        )
