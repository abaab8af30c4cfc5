"""The person's session: a signed cookie (itsdangerous), no table.

It holds the person (login, name, email, establishment, roles), the language, a CSRF
token, a one-shot message (flash), what the single sign-on keeps between sign-in and
sign-out, and when it was created and last seen. A session idle longer than
``PORTAL_SESSION_IDLE_MINUTES``, or older than ``PORTAL_SESSION_HOURS``, is forgotten.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from shared.auth import Identity

COOKIE = "guichet_session"
SALT = "guichet.portal.session"


@dataclass
class Session:
    """What the cookie carries; ``changed`` says whether to send it again."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    person: dict[str, Any] | None = None
    language: str | None = None
    flash: list[tuple[str, str]] = field(default_factory=list)
    sso: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    seen: float = field(default_factory=time.time)
    changed: bool = True

    @property
    def identity(self) -> Identity | None:
        if not self.person:
            return None
        p = self.person
        return Identity(login=p["login"], email=p["email"], name=p.get("name"),
                        establishment=p.get("establishment"), roles=tuple(p.get("roles") or ()))

    def sign_in(self, identity: Identity, language: str | None = None) -> None:
        """A new session for ``identity`` (a new CSRF token too: nothing carries over)."""
        self.person = {"login": identity.login, "email": identity.email, "name": identity.name,
                       "establishment": identity.establishment, "roles": list(identity.roles)}
        self.csrf = secrets.token_urlsafe(32)
        self.language = language
        self.created = self.seen = time.time()
        self.changed = True

    def sign_out(self) -> None:
        self.person = None
        self.sso = {}
        self.csrf = secrets.token_urlsafe(32)
        self.changed = True

    def check_csrf(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf)

    def say(self, kind: str, message: str) -> None:
        """A message shown once, on the next page."""
        self.flash.append((kind, message))
        self.changed = True

    def take_flash(self) -> list[tuple[str, str]]:
        messages, self.flash = self.flash, []
        if messages:
            self.changed = True
        return messages


class SessionCodec:
    """Reads and writes the cookie, enforcing the idle timeout and the lifetime."""

    def __init__(self, secret: str, idle_minutes: int, hours: int) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt=SALT)
        self.idle = idle_minutes * 60
        self.lifetime = hours * 3600

    def load(self, cookie: str | None) -> Session:
        """The session the cookie carries, or a new anonymous one."""
        if not cookie:
            return Session()
        try:
            data = self.serializer.loads(cookie, max_age=self.lifetime)
        except BadSignature:
            return Session()
        now = time.time()
        if not isinstance(data, dict) or now - float(data.get("seen", 0)) > self.idle \
                or now - float(data.get("created", 0)) > self.lifetime:
            return Session()
        session = Session(
            csrf=str(data.get("csrf") or secrets.token_urlsafe(32)), person=data.get("person"),
            language=data.get("language"), flash=[tuple(f) for f in data.get("flash") or []],
            sso=data.get("sso") or {}, created=float(data["created"]), seen=float(data["seen"]), changed=False,
        )
        # Refreshing "seen" at most once a minute keeps most answers free of Set-Cookie.
        if now - session.seen > 60:
            session.seen = now
            session.changed = True
        return session

    def dump(self, session: Session) -> str:
        return self.serializer.dumps({
            "csrf": session.csrf, "person": session.person, "language": session.language,
            "flash": session.flash, "sso": session.sso, "created": session.created, "seen": session.seen,
        })
