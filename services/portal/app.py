"""The portal's machinery around its pages: the session cookie and its CSRF token, the
language, Jinja2 templates, security headers, and the error pages (404, 403, the
friendly 503 when a service is away), all in Nameko's HTTP entrypoint.

``PortalHandler`` wraps every request: it opens the visit (session, language) before
the page runs, and after it, sends the cookie again when it changed and adds the
headers every answer carries (``Content-Security-Policy`` with ``frame-ancestors``,
``X-Content-Type-Options``, ``Referrer-Policy``).
"""

from __future__ import annotations

import mimetypes
import os
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import structlog
from babel.support import Translations
from eventlet.event import Event
from jinja2 import Environment, FileSystemLoader, select_autoescape
from nameko import config
from nameko.extensions import DependencyProvider
from nameko.web.server import WsgiApp, parse_address
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from services.portal import i18n, richtext, sso, words
from services.portal.backend import Backend, BackendUnavailable, NotFound
from services.portal.session import COOKIE, Session, SessionCodec
from services.portal.settings import PortalSettings
from shared.auth import Identity
from shared.config import Settings
from shared.web import ApiHandler, ProblemWebServer

log = structlog.stdlib.get_logger("guichet.portal")

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
DEFAULT_ADDRESS = "0.0.0.0:8005"


class SignInRequired(Exception):
    """The page needs a signed-in person: off to ``/sign-in?next=...``."""


class CsrfRefused(Exception):
    """A POST without the session's CSRF token (403, nothing changed)."""


class PageError(Exception):
    """Answer with an error page: ``status`` and a message for the person."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Visit:
    """One request's session, language and translations."""

    request: Request
    session: Session
    language: str
    tr: Translations
    cookie_secure: bool
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def identity(self) -> Identity | None:
        return self.session.identity

    def person(self) -> Identity:
        """The signed-in person, else ``SignInRequired``."""
        identity = self.session.identity
        if identity is None:
            raise SignInRequired()
        return identity

    def gettext(self, text: str, **values: Any) -> str:
        translated = self.tr.gettext(text)
        return translated.format(**values) if values else translated

    def check_csrf(self) -> None:
        """Every POST carries the session's token in its form (or the ``X-CSRF-Token`` header)."""
        token = self.request.form.get("csrf_token") or self.request.headers.get("X-CSRF-Token")
        if not self.session.check_csrf(token):
            log.warning("csrf token refused", path=self.request.path)
            raise CsrfRefused()


def safe_next(target: str | None) -> str:
    """A relative path on this site, else ``/`` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def redirect(location: str, status: int = 303) -> Response:
    return Response("", status=status, headers={"Location": location})


class Portal:
    """Everything a page needs: settings, the backend, templates, the single sign-on."""

    def __init__(self, settings: PortalSettings, service_settings: Settings) -> None:
        self.settings = settings
        self.service_settings = service_settings
        self.backend = Backend(settings.backend_urls, service_settings, settings.backend_timeout)
        self.codec = SessionCodec(settings.session_secret, settings.session_idle_minutes, settings.session_hours)
        self.translations = i18n.load_translations()
        self.sso = sso.from_env()
        self.environments = {language: self._environment(tr) for language, tr in self.translations.items()}
        self.static_versions = {p.name: str(int(p.stat().st_mtime)) for p in STATIC.iterdir() if p.is_file()}
        ancestors = " ".join(("'self'", *settings.frame_ancestors))
        self.csp = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
            f" object-src 'none'; base-uri 'self'; frame-ancestors {ancestors}"
        )

    def _environment(self, tr: Translations) -> Environment:
        env = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(("html",)),
            extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True,
        )
        env.install_gettext_translations(tr, newstyle=True)  # type: ignore[attr-defined]
        env.filters["rich"] = richtext.render
        env.globals["static"] = lambda name: f"/static/{name}?v={self.static_versions.get(name, '0')}"
        env.globals["quote"] = lambda value: quote(str(value), safe="")
        env.globals["new_key"] = lambda: str(uuid.uuid4())
        return env

    # -- a request's life

    def begin(self, request: Request) -> Visit:
        session = self.codec.load(request.cookies.get(COOKIE))
        language = i18n.choose_language(session.language, request)
        return Visit(request, session, language, self.translations[language],
                     cookie_secure=not self.settings.development)

    def finish(self, visit: Visit, response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", self.csp)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        for name, value in visit.headers.items():
            headers[name] = value
        if response.mimetype == "text/html":
            headers.setdefault("Cache-Control", "no-store")
            headers.setdefault("Content-Language", visit.language)
            headers.add("Vary", "Cookie, Accept-Language")
        if visit.session.changed:
            response.set_cookie(
                COOKIE, self.codec.dump(visit.session), max_age=self.settings.session_hours * 3600,
                httponly=True, secure=visit.cookie_secure, samesite="Lax", path="/",
            )
        return response

    def render(self, visit: Visit, template: str, status: int = 200, **context: Any) -> Response:
        """A page of the layout, with the header's unread count for a signed-in person."""
        identity = visit.identity
        unread = context.pop("unread", None)
        if identity is not None and unread is None:
            unread = self.backend.unread(identity)
        # The header's link to the console, for managers and admins (not on an error
        # page: the service that failed may be routing itself).
        console_link = context.pop("console_link", None)
        if console_link is None:
            console_link = identity is not None and self.backend.manages(identity)
        page = self.environments[visit.language].get_template(template).render(
            visit=visit, person=visit.session.person, csrf_token=visit.session.csrf, language=visit.language,
            unread=unread or 0, flash=visit.session.take_flash(), words=words, tr=visit.tr,
            status_label=partial(words.status_label, visit.tr),
            priority_label=partial(words.priority_label, visit.tr),
            when=lambda value: words.when(visit.tr, value, visit.language),
            size=lambda value: words.size(value, visit.language),
            development=self.settings.development, current_path=visit.request.full_path.rstrip("?"),
            console_link=console_link,
            **context,
        )
        return Response(page, status=status, mimetype="text/html")

    def error_page(self, visit: Visit, status: int, message: str = "") -> Response:
        titles = {
            400: i18n.N_("Requête incorrecte"), 403: i18n.N_("Action refusée"),
            404: i18n.N_("Page introuvable"), 405: i18n.N_("Méthode non autorisée"),
            413: i18n.N_("Fichier trop volumineux"), 503: i18n.N_("Service momentanément indisponible"),
        }
        fallback = i18n.N_("Une erreur est survenue")
        title = visit.gettext(titles.get(status, fallback))
        try:
            response = self.render(visit, "error.html", status=status, title=title, message=message,
                                   error_status=status, unread=0, console_link=False)
        except Exception:  # noqa: BLE001 - the error page itself must not fail
            log.exception("error page failed")
            response = Response(title, status=status, mimetype="text/plain")
        if status == 503:
            response.headers["Retry-After"] = "30"
        return response

    def response_for(self, visit: Visit, exc: BaseException) -> Response:
        """The page for an exception a page raised."""
        if isinstance(exc, SignInRequired):
            return redirect("/sign-in?next=" + quote(safe_next(visit.request.full_path.rstrip("?")), safe="/"))
        if isinstance(exc, NotFound):
            return self.error_page(visit, 404, visit.gettext(
                "Cette demande n'existe pas, ou vous n'y avez pas accès."))
        if isinstance(exc, BackendUnavailable):
            log.warning("page unavailable", path=visit.request.path, service=exc.service)
            return self.error_page(visit, 503, visit.gettext(
                "Le service d'assistance ne répond pas pour le moment. Réessayez dans quelques minutes :"
                " votre saisie n'a pas été enregistrée."))
        if isinstance(exc, CsrfRefused):
            return self.error_page(visit, 403, visit.gettext(
                "Ce formulaire a expiré ou ne vient pas de ce site : rien n'a été modifié. Rechargez la page"
                " et recommencez."))
        if isinstance(exc, PageError):
            return self.error_page(visit, exc.status, exc.message)
        if isinstance(exc, HTTPException):
            return self.error_page(visit, exc.code or 400)
        log.error("unexpected error", path=visit.request.path, exc_info=exc)
        return self.error_page(visit, 500, visit.gettext("L'erreur a été enregistrée ; réessayez plus tard."))

    def static(self, name: str) -> Response:
        path = (STATIC / name).resolve()
        if path.parent != STATIC or not path.is_file():
            raise PageError(404)
        mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        response = Response(path.read_bytes(), mimetype=mimetype)
        # Links carry ?v=<mtime>, so a changed file is a new address.
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


class PortalApp(DependencyProvider):
    """The ``Portal`` of the container, built once; workers get it."""

    def __init__(self) -> None:
        self.portal: Portal | None = None

    def setup(self) -> None:
        try:
            settings = PortalSettings.from_env()
        except Exception as exc:
            log.error(str(exc))
            raise
        self.portal = Portal(settings, Settings.from_env())
        log.info("portal ready", development=settings.development, sso=getattr(self.portal.sso, "name", None),
                 backends=settings.backend_urls)

    def stop(self) -> None:
        if self.portal is not None:
            self.portal.backend.close()

    kill = stop

    def get_dependency(self, worker_ctx: Any) -> Portal | None:
        return self.portal


def _portal_of(container: Any) -> Portal:
    [provider] = [d for d in container.dependencies if isinstance(d, PortalApp)]
    assert provider.portal is not None
    return provider.portal


class PortalWsgiApp(WsgiApp):
    """Unknown paths and wrong methods answer an HTML page, not problem+json."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            response = provider.handle_request(request)
        except HTTPException as exc:
            portal = _portal_of(self.server.container)
            visit = portal.begin(request)
            response = portal.finish(visit, portal.error_page(visit, exc.code or 404))
        return response(environ, start_response)


class PortalWebServer(ProblemWebServer):
    @property
    def bind_addr(self) -> Any:
        # The portal's own default port (8005); shared.web's table predates the portal.
        addresses = config.get("HTTP_ADDRESSES") or {}
        return parse_address(addresses.get("portal") or os.environ.get("PORTAL_HTTP_ADDRESS", DEFAULT_ADDRESS))

    def get_wsgi_app(self) -> WsgiApp:
        return PortalWsgiApp(self)


class PortalHandler(ApiHandler):
    """Nameko's HTTP entrypoint around a page: the visit before, headers and cookie after,
    and every exception answered as a page."""

    server = PortalWebServer()
    errors = ((SignInRequired, 303), (CsrfRefused, 403), (PageError, 400), (NotFound, 404),
              (BackendUnavailable, 503))

    def get_entrypoint_parameters(self, request: Request) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (request.environ["guichet.visit"],), request.path_values

    def handle_request(self, request: Request) -> Response:
        request.shallow = False
        portal = _portal_of(self.container)
        visit = portal.begin(request)
        request.environ["guichet.visit"] = visit
        # Forms with files: a few files of the attachments service's size each.
        request.max_content_length = portal.settings.max_upload_bytes * 5 + 1024 * 1024
        try:
            args, kwargs = self.get_entrypoint_parameters(request)
            event = Event()
            self.container.spawn_worker(self, args, kwargs, context_data={},
                                        handle_result=partial(self.handle_result, event))
            response = self.response_from_result(event.wait())
        except Exception as exc:  # noqa: BLE001 - every failure becomes a page
            response = portal.response_for(visit, exc)
        return portal.finish(visit, response)


page = PortalHandler.decorator
