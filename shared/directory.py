"""The university's LDAP directory (ldap3): people found by login, email or name, so they
can be invited or assigned before they ever signed in, and the portal can search them.

Configured by ``LDAP_URL`` (``ldap://`` or ``ldaps://``), ``LDAP_BIND_DN`` /
``LDAP_BIND_PASSWORD`` (anonymous when unset), ``LDAP_BASE_DN``, ``LDAP_FILTER``
(default ``(objectClass=inetOrgPerson)``), ``LDAP_TIMEOUT`` and the attribute of each
field (``LDAP_ATTR_LOGIN`` ``uid``, ``LDAP_ATTR_EMAIL`` ``mail``, ``LDAP_ATTR_NAME``
``displayName`` then ``cn``, ``LDAP_ATTR_ESTABLISHMENT`` ``supannEtablissement``,
``LDAP_ATTR_ROLES`` ``eduPersonAffiliation``), mapped like token claims
(``shared.auth.ClaimMapping``). Without ``LDAP_URL`` there is no directory: only people
Guichet has already seen are known (the behaviour before the directory).

A directory that cannot be reached is ``DirectoryUnavailable``: a 503 problem with
``Retry-After`` in the HTTP APIs, and nothing else is affected.
"""

from __future__ import annotations

import threading
from typing import Any

import ldap3
import structlog
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from shared.auth import ClaimMapping, Identity, Unauthenticated
from shared.config import Settings
from shared.web import HttpProblem

log = structlog.stdlib.get_logger("guichet.directory")

DEFAULT_ATTRIBUTES = {
    "login": "uid",
    "email": "mail",
    "name": "displayName",
    "establishment": "supannEtablissement",
    "roles": "eduPersonAffiliation",
}
RETRY_AFTER_SECONDS = 30
MAX_RESULTS = 20


class DirectoryUnavailable(HttpProblem):
    """The directory did not answer (down, refused the bind, timed out): HTTP 503."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class Directory:
    """Lookups in one LDAP directory; a connection per lookup (lookups are rare: an
    invitation, an assignment, a search as one types)."""

    def __init__(self, settings: Settings) -> None:
        if not settings.ldap_url or not settings.ldap_base_dn:
            raise ValueError("a directory needs LDAP_URL and LDAP_BASE_DN")
        self.url = settings.ldap_url
        self.bind_dn = settings.ldap_bind_dn
        self.password = settings.ldap_bind_password
        self.base_dn = settings.ldap_base_dn
        self.filter = settings.ldap_filter if settings.ldap_filter.startswith("(") else f"({settings.ldap_filter})"
        self.timeout = settings.ldap_timeout_seconds
        self.attributes = {**DEFAULT_ATTRIBUTES, **settings.ldap_attributes}
        claims: dict[str, tuple[str, ...]] = {field: (attribute,) for field, attribute in self.attributes.items()}
        if "name" not in settings.ldap_attributes:
            claims["name"] = ("displayName", "cn")
        self.mapping = ClaimMapping(claims, settings.admin_roles)
        self._wanted = sorted({a for names in claims.values() for a in names})

    def find(self, login_or_email: str) -> Identity | None:
        """The person whose login or email is exactly this (case-insensitive), or ``None``."""
        key = escape_filter_chars(login_or_email.strip())
        people = self._search(f"(&{self.filter}(|({self.attributes['login']}={key})({self.attributes['email']}={key})))", 2)
        return people[0] if len(people) == 1 else None

    def search(self, text: str, limit: int = MAX_RESULTS) -> list[Identity]:
        """People whose login, email or name contains ``text`` (at least two characters)."""
        text = text.strip()
        if len(text) < 2:
            return []
        key = escape_filter_chars(text)
        names = [self.attributes["login"], self.attributes["email"], *self.mapping.claims["name"]]
        alternatives = "".join(f"({name}=*{key}*)" for name in names)
        return self._search(f"(&{self.filter}(|{alternatives}))", limit)

    def _search(self, query: str, limit: int) -> list[Identity]:
        server = ldap3.Server(self.url, connect_timeout=self.timeout, get_info=ldap3.NONE)
        try:
            with ldap3.Connection(server, user=self.bind_dn, password=self.password, auto_bind=True, read_only=True,
                                  # ldap3 packs this into SO_RCVTIMEO: whole seconds only
                                  receive_timeout=max(1, round(self.timeout)), raise_exceptions=True) as conn:
                conn.search(self.base_dn, query, ldap3.SUBTREE, attributes=self._wanted, size_limit=limit,
                            time_limit=max(1, int(self.timeout)))
                entries = list(conn.response or [])
        except LDAPException as exc:
            if type(exc).__name__ == "LDAPSizeLimitExceededResult":
                entries = []  # more than asked for: too vague to name one person
            else:
                log.warning("the directory cannot be reached", url=self.url, error=f"{type(exc).__name__}: {exc}")
                raise DirectoryUnavailable("the university directory cannot be reached now; try again later") from None
        people = []
        for entry in entries:
            if entry.get("type") != "searchResEntry":
                continue
            try:
                people.append(self.mapping.identity(dict(entry.get("attributes") or {})))
            except Unauthenticated:
                continue  # an entry without a login or a valid email cannot be a Guichet user
        return people


_directories: dict[tuple[Any, ...], Directory] = {}
_lock = threading.Lock()


def directory(settings: Settings | None = None) -> Directory | None:
    """The configured directory (one per configuration), or ``None`` without ``LDAP_URL``."""
    settings = settings or Settings.from_env()
    if not settings.ldap_url or not settings.ldap_base_dn:
        return None
    key = (settings.ldap_url, settings.ldap_bind_dn, settings.ldap_bind_password, settings.ldap_base_dn,
           settings.ldap_filter, tuple(sorted(settings.ldap_attributes.items())), settings.ldap_timeout_seconds)
    with _lock:
        if key not in _directories:
            _directories[key] = Directory(settings)
        return _directories[key]


def find_person(login_or_email: str, settings: Settings | None = None) -> Identity | None:
    """The person the directory knows by this login or email; ``None`` when not found or
    when there is no directory; ``DirectoryUnavailable`` when it does not answer."""
    found = directory(settings)
    return found.find(login_or_email) if found is not None else None


def search_people(text: str, settings: Settings | None = None, limit: int = MAX_RESULTS) -> list[Identity]:
    """The portal's user search: people whose login, email or name contains ``text``."""
    found = directory(settings)
    return found.search(text, limit) if found is not None else []
