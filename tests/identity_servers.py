"""Real identity servers on localhost for the tests: an OpenID Connect provider
(``oidc-provider-mock``, a real Authlib authorization server: discovery, JWKS, login
form, code flow with PKCE, end session), a CAS 3.0 server (``django-cas-server`` in its
own Django process) and an LDAP directory (Debian's ``slapd``).

Each is a context manager, so the integration tests use them as pytest fixtures and a
browser test can start the same ones.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography.hazmat.primitives import serialization

os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # the provider speaks http on localhost


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, what: str = "server", process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not listen on port {port} within {timeout} s")


def _answer(start_response: Any, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _stop(process: subprocess.Popen) -> None:
    """Stop a server this module started, by its PID."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# -- OpenID Connect ------------------------------------------------------------------------


class OidcProvider:
    """``oidc-provider-mock``'s Flask app served on a free port, whose signing key can be
    rotated while it runs (the new key signs, the old one stays published until retired).

    ``users`` maps a ``sub`` to its claims; the login form takes any ``sub``.
    """

    def __init__(self, users: Mapping[str, Mapping[str, Any]] | None = None, *, require_pkce: bool = True) -> None:
        import oidc_provider_mock
        from authlib import jose
        from werkzeug.serving import make_server

        self._jose = jose
        # Public clients (no secret, PKCE only) as Keycloak allows them; the mock's grant
        # accepts only client secrets, and PKCE is checked by the wrapper below.
        from oidc_provider_mock import _app

        _app.AuthorizationCodeGrant.TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
        # Its ID tokens name their key (kid), as Keycloak's do, so a rotation is visible.
        if not getattr(_app.OpenIDCode, "_names_kid", False):
            get_jwt_config = _app.OpenIDCode.get_jwt_config

            def with_kid(code: Any, grant: Any, client: Any = None) -> dict[str, Any]:
                config = get_jwt_config(code, grant, client)
                return {**config, "kid": config["key"].get("kid")}

            _app.OpenIDCode.get_jwt_config = with_kid
            _app.OpenIDCode._names_kid = True
        self.app = oidc_provider_mock.app(
            user_claims=[oidc_provider_mock.User(sub=sub, claims=dict(claims)) for sub, claims in (users or {}).items()],
        )
        self.storage = self._storage()
        self.require_pkce = require_pkce
        self._challenges: dict[str, str | None] = {}
        self.published: list[Any] = []
        self.jwks_fetches = 0
        self.rotate()
        inner = self.app.wsgi_app

        def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
            path = environ.get("PATH_INFO")
            # The mock publishes only its current key; a real provider keeps the previous
            # one published during a rotation, so the JWKS is served from here.
            if path == "/jwks":
                self.jwks_fetches += 1
                return _answer(start_response, "200 OK", jose.KeySet(list(self.published)).as_json())
            # The mock does not check PKCE (RFC 7636): this wrapper does, as a real provider.
            if path == "/oauth2/authorize":
                query = parse_qs(environ.get("QUERY_STRING", ""))
                challenge, method = query.get("code_challenge", [None])[0], query.get("code_challenge_method", [None])[0]
                if self.require_pkce and (not challenge or method != "S256"):
                    return _answer(start_response, "400 Bad Request", '{"error": "invalid_request"}')

                def remember_code(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                    location = dict(headers).get("Location", "")
                    code = parse_qs(urlsplit(location).query).get("code", [None])[0]
                    if code:
                        self._challenges[code] = challenge
                    return start_response(status, headers, exc_info)

                return inner(environ, remember_code)
            if path == "/oauth2/token" and environ.get("REQUEST_METHOD") == "POST":
                body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                form = parse_qs(body.decode())
                code, verifier = form.get("code", [None])[0], form.get("code_verifier", [None])[0]
                challenge = self._challenges.pop(code, None) if code else None
                if challenge is not None or self.require_pkce:
                    expected = base64.urlsafe_b64encode(hashlib.sha256((verifier or "").encode()).digest()).rstrip(b"=")
                    if not verifier or challenge is None or expected.decode() != challenge:
                        return _answer(start_response, "400 Bad Request",
                                       '{"error": "invalid_grant", "error_description": "PKCE verification failed"}')
                environ["wsgi.input"] = io.BytesIO(body)
            return inner(environ, start_response)

        self.app.wsgi_app = wsgi
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.issuer = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def _storage(self) -> Any:
        # The mock keeps its storage in a closure of its before_request hook.
        for hook in self.app.before_request_funcs.get(None, []):
            for cell in hook.__closure__ or ():
                if type(cell.cell_contents).__name__ == "Storage":
                    return cell.cell_contents
        raise AssertionError("oidc-provider-mock changed: its storage was not found")

    def rotate(self, *, retire_old: bool = False) -> str:
        """Sign with a new key (a new ``kid``) from now on; the new kid."""
        kid = f"key-{uuid.uuid4().hex[:8]}"
        key = self._jose.JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": kid})
        if retire_old:
            self.published.clear()
        self.storage.jwk = key
        self.published.append(key)
        return kid

    @property
    def kid(self) -> str:
        return self.storage.jwk.kid

    def sign(self, claims: Mapping[str, Any], *, key: Any = None, header: Mapping[str, Any] | None = None) -> str:
        """A JWT signed by the provider's current key (or ``key``), as its token endpoint signs."""
        from authlib.jose import jwt

        key = key or self.storage.jwk
        return jwt.encode({"alg": "RS256", "kid": key.kid, **(header or {})}, dict(claims),
                          key.as_dict(is_private=True)).decode()

    def public_pem(self) -> bytes:
        """The current key's public half, PEM (what anyone can read from the JWKS)."""
        return self.storage.jwk.get_public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def __enter__(self) -> OidcProvider:
        self._thread.start()
        wait_for_port(self.port, what="the OIDC provider")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sign_in(self, authorization_url: str, sub: str) -> str:
        """Drive the provider's login form as a browser would: open the authorization URL,
        submit ``sub``; the redirect back to the client (its ``Location``)."""
        session = requests.Session()
        page = session.get(authorization_url, timeout=10, allow_redirects=False)
        assert page.status_code == 200, page.text
        assert 'name="sub"' in page.text  # the login form
        answer = session.post(authorization_url, data={"sub": sub}, timeout=10, allow_redirects=False)
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]


@contextmanager
def oidc_provider(users: Mapping[str, Mapping[str, Any]] | None = None) -> Iterator[OidcProvider]:
    """``OidcProvider`` as a context manager (for fixtures)."""
    with OidcProvider(users) as provider:
        yield provider


# -- CAS 3.0 -------------------------------------------------------------------------------

CAS_SETTINGS = """
SECRET_KEY = {secret!r}
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "urls"
INSTALLED_APPS = [
    "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
    "django.contrib.sessions", "django.contrib.messages", "django.contrib.staticfiles",
    "cas_server",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{{
    "BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
    "OPTIONS": {{"context_processors": [
        "django.template.context_processors.request", "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]}},
}}]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
STATIC_URL = "/static/"
USE_TZ = True
CAS_AUTH_CLASS = "cas_server.auth.TestAuthUser"
CAS_TEST_USER = {login!r}
CAS_TEST_PASSWORD = {password!r}
CAS_TEST_ATTRIBUTES = {attributes!r}
CAS_NEW_VERSION_HTML_WARNING = False
CAS_NEW_VERSION_EMAIL_WARNING = False
CAS_SHOW_POWERED = False
"""

CAS_URLS = """
from django.urls import include, path
urlpatterns = [path("cas/", include(("cas_server.urls", "cas_server"), namespace="cas_server"))]
"""


class CasServer:
    """``django-cas-server`` in its own process from a temporary Django project, with one
    person (``login`` / ``password``) whose CAS attributes are ``attributes``; any service
    URL is allowed. ``url`` is the CAS base (``.../cas``)."""

    def __init__(self, login: str, password: str, attributes: Mapping[str, Any]) -> None:
        self.login, self.password, self.attributes = login, password, dict(attributes)
        self.dir = Path(tempfile.mkdtemp(prefix="guichet-cas-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/cas"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> CasServer:
        (self.dir / "cas_settings.py").write_text(CAS_SETTINGS.format(
            secret=secrets.token_hex(16), db=str(self.dir / "cas.sqlite3"), login=self.login,
            password=self.password, attributes=self.attributes))
        (self.dir / "urls.py").write_text(CAS_URLS)
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "cas_settings", "PYTHONPATH": str(self.dir)}
        run = [sys.executable, "-m", "django"]
        subprocess.run([*run, "migrate", "--noinput", "-v", "0"], cwd=self.dir, env=env, check=True, timeout=180,
                       capture_output=True)
        # Threaded: a browser keeps its connection to the login page open while the service
        # validates the ticket. Every service URL may use this server (a pattern, as a real CAS registers services).
        subprocess.run([*run, "shell", "-c", textwrap.dedent("""
            from cas_server.models import ServicePattern, ReplaceAttributName
            pattern = ServicePattern.objects.create(pos=1, name="all", pattern="^https?://.*", single_log_out=False)
            ReplaceAttributName.objects.create(name="*", service_pattern=pattern)
        """)], cwd=self.dir, env=env, check=True, timeout=120, capture_output=True)
        self.log = open(self.dir / "server.log", "wb")  # noqa: SIM115 - closed in __exit__
        self.process = subprocess.Popen([*run, "runserver", "--noreload", f"127.0.0.1:{self.port}"],
                                        cwd=self.dir, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout=60, what="the CAS server", process=self.process)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            _stop(self.process)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def sign_in(self, login_url: str, *, login: str | None = None, password: str | None = None) -> str:
        """Fill in the CAS login form as a browser would; the redirect back to the service."""
        import re

        session = requests.Session()
        page = session.get(login_url, timeout=20)
        assert page.status_code == 200, page.text
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text))
        fields.update(username=login or self.login, password=password or self.password)
        answer = session.post(page.url, data=fields, timeout=20, allow_redirects=False)
        assert answer.status_code == 302, answer.text[:2000]
        return answer.headers["Location"]


# -- LDAP ----------------------------------------------------------------------------------

SLAPD_CONF = """
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
include {dir}/supann.schema
moduleload back_mdb
pidfile {dir}/slapd.pid
database mdb
maxsize 10485760
suffix "{base}"
rootdn "cn=admin,{base}"
rootpw {password}
directory {dir}/data
"""

# The two attributes of SupAnn / eduPerson the mapping reads, in a minimal auxiliary class
# (the full schemas are not packaged by Debian).
SUPANN_SCHEMA = """
attributetype ( 1.3.6.1.4.1.5923.1.1.1.1 NAME 'eduPersonAffiliation'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.4.1.7135.1.2.1.14 NAME 'supannEtablissement'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 1.3.6.1.4.1.7135.1.2.2.1 NAME 'supannPerson' AUXILIARY
    MAY ( eduPersonAffiliation $ supannEtablissement ) )
"""


class Slapd:
    """Debian's ``slapd`` on a free port with its own configuration and database in a
    temporary directory, loaded with ``people`` (dicts of LDAP attributes, ``uid``
    required), stopped by PID."""

    BASE = "dc=univ,dc=example"

    def __init__(self, people: Sequence[Mapping[str, Any]]) -> None:
        self.people = list(people)
        self.dir = Path(tempfile.mkdtemp(prefix="guichet-slapd-"))
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.bind_dn = f"cn=admin,{self.BASE}"
        self.password = secrets.token_hex(8)
        self.base_dn = f"ou=people,{self.BASE}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        slapd = shutil.which("slapd") or "/usr/sbin/slapd"
        self.process = subprocess.Popen([slapd, "-d", "0", "-f", str(self.dir / "slapd.conf"), "-h", self.url],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, what="slapd", process=self.process)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None

    def __enter__(self) -> Slapd:
        (self.dir / "data").mkdir()
        (self.dir / "supann.schema").write_text(SUPANN_SCHEMA)
        (self.dir / "slapd.conf").write_text(SLAPD_CONF.format(dir=self.dir, base=self.BASE, password=self.password))
        self.start()
        import ldap3

        with ldap3.Connection(ldap3.Server(self.url), self.bind_dn, self.password, auto_bind=True) as conn:
            conn.add(self.BASE, ["dcObject", "organization"], {"o": "Université exemple", "dc": "univ"})
            conn.add(self.base_dn, ["organizationalUnit"], {"ou": "people"})
            for person in self.people:
                attributes = {k: v for k, v in person.items()}
                attributes.setdefault("sn", str(person.get("cn", person["uid"])).split()[-1])
                attributes.setdefault("cn", person["uid"])
                assert conn.add(f"uid={person['uid']},{self.base_dn}",
                                ["inetOrgPerson", "supannPerson"], attributes), conn.result
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """The variables that point Guichet at this directory."""
        return {"LDAP_URL": self.url, "LDAP_BIND_DN": self.bind_dn, "LDAP_BIND_PASSWORD": self.password,
                "LDAP_BASE_DN": self.base_dn}
