"""The portal Nameko service: the people's web interface, server-rendered, a
backend-for-frontend (``API.md``, Portal). It owns no ticket data: every page asks the
other services over HTTP as the signed-in person (``services.portal.backend``).

Configuration (environment): ``PORTAL_HTTP_ADDRESS`` (default ``0.0.0.0:8005``),
``PORTAL_SESSION_SECRET`` (required outside development), ``PORTAL_SESSION_IDLE_MINUTES``
(120), ``PORTAL_SESSION_HOURS`` (12), ``PORTAL_FRAME_ANCESTORS`` (the ENT origins that may
frame the portal, space-separated), ``TICKETS_URL``, ``ROUTING_URL``, ``NOTIFIER_URL``,
``ATTACHMENTS_URL``, ``ESCALATION_URL`` (``http://localhost:8000`` ... ``8004``),
``PORTAL_BACKEND_TIMEOUT`` (s, 10), ``PORTAL_CONSOLE_POLL_SECONDS`` (15, how often a console
queue refreshes itself), ``GUICHET_ENV=development`` for ``/dev/sign-in``.
"""

from __future__ import annotations

from services.portal.app import Portal, PortalApp
from services.portal.console_admin import ConsoleAdminPages


class PortalService(ConsoleAdminPages):
    name = "portal"

    portal: Portal = PortalApp()
