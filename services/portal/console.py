"""The managers' console (``/console/...``): the queues of the departments a person
manages, the manager actions of a ticket, the escalations to the central support, and
each manager's availability.

The portal decides no access itself: the departments come from routing (a manager
reads their own, an admin all), the tickets from the tickets service's
``scope=department`` list, and the buttons of a ticket from its ``allowed_actions``.
What the services' APIs do not give (a count per tab, a sort other than the latest
activity, an "escalated" filter) the console makes from a few list calls; see
``queue_calls``.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import structlog
from werkzeug.wrappers import Response

from services.portal import words
from services.portal.app import PageError, Visit, page, redirect, safe_next
from services.portal.backend import Answer, NotFound
from services.portal.i18n import N_
from services.portal.pages import TEXT_MAX, PortalPages

log = structlog.stdlib.get_logger("guichet.portal.console")

PARIS = ZoneInfo("Europe/Paris")
OPEN = ("FREE", "IN_PROGRESS", "WAITING_FOR_INFO", "POSTPONED", "CLOSURE_REQUESTED")
ASSIGNED_OPEN = OPEN[1:]
COUNT_LIMIT = 100  # the tickets API's largest page: a tab's count shows "100+" beyond it
PAGE_SIZE = 20

# The queue's tabs: (label, the list call's scope, statuses, whether it is the
# escalated ones only). "Transmis" has no API filter: the portal keeps the open tickets
# whose ``escalation`` is "escalated".
TABS: dict[str, tuple[str, str, tuple[str, ...], bool]] = {
    "free": (N_("Libre"), "department", ("FREE",), False),
    "mine": (N_("Mes tickets"), "assigned", ASSIGNED_OPEN, False),
    "waiting": (N_("En attente d'information"), "department", ("WAITING_FOR_INFO",), False),
    "postponed": (N_("Reporté"), "department", ("POSTPONED",), False),
    "closure": (N_("Clôture demandée"), "department", ("CLOSURE_REQUESTED",), False),
    "escalated": (N_("Transmis"), "department", OPEN, True),
}
SORTS = {
    "activity": N_("Dernière activité"),
    "age": N_("Ancienneté"),
    "priority": N_("Priorité"),
}

# Manager actions posted to /console/tickets/<ticket>/<action>: the form's fields, the
# required ones, and the message once done.
ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "take": ((), (), N_("Vous avez pris en charge la demande.")),
    "take-over": ((), (), N_("Vous avez repris la demande.")),
    "assign": (("assignee",), ("assignee",), N_("La demande est attribuée.")),
    "release": ((), (), N_("La demande est libérée.")),
    "request-information": (("question",), ("question",),
                            N_("La question est envoyée au demandeur.")),
    "postpone": (("reason", "until"), ("reason",), N_("La demande est reportée.")),
    "resume": ((), (), N_("Le traitement de la demande reprend.")),
    "request-closure": (("resolution",), ("resolution",),
                        N_("La clôture est proposée au demandeur.")),
    "refuse": (("reason",), ("reason",), N_("La demande est refusée.")),
    "move": (("category_id",), ("category_id",), N_("La demande est déplacée.")),
    "remove-attachment": (("attachment_id", "comment"), ("attachment_id", "comment"),
                          N_("Le fichier est retiré.")),
    "escalate": (("reason",), ("reason",), N_("La demande est transmise au support.")),
    "return-to-referent": (("comment",), ("comment",), N_("La demande est retournée au référent.")),
}
# esup-helpdesk's combined actions: take, then the second one.
COMBINED = {
    "take-and-ask": ("request-information", N_("Vous avez pris en charge la demande et posé votre question.")),
    "take-and-close": ("request-closure", N_("Vous avez pris en charge la demande et proposé sa clôture.")),
}
REQUIRED = {
    "assignee": N_("Choisissez un gestionnaire."),
    "question": N_("Écrivez votre question au demandeur."),
    "reason": N_("Indiquez la raison."),
    "resolution": N_("Décrivez la solution apportée."),
    "category_id": N_("Choisissez une catégorie."),
    "attachment_id": N_("Choisissez le fichier."),
    "comment": N_("Expliquez pourquoi."),
}


def label_of(department: dict[str, Any], language: str) -> str:
    """A department's label in the page's language (routing gives both)."""
    label = department.get("label")
    if isinstance(label, dict):
        return str(label.get(language) or label.get("fr") or department.get("id"))
    return str(label or department.get("id"))


def waits_for_manager(ticket: dict[str, Any]) -> bool:
    """The marker of a row: the latest comment is the requester's (or an invitee's), on a
    ticket that is open and not waiting for them."""
    if ticket.get("status") not in ("FREE", "IN_PROGRESS", "POSTPONED"):
        return False
    comments = ticket.get("comments") or []
    public = [c for c in comments if c.get("visibility") == "public"]
    if not public:
        return False
    author = (public[-1].get("author") or {}).get("id")
    requester = (ticket.get("requester") or {}).get("id")
    invitees = {(u or {}).get("id") for u in ticket.get("invitees") or []}
    return author is not None and (author == requester or author in invitees)


def sort_tickets(items: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    """A page sorted as asked: the API pages by latest activity, so another order sorts
    the page shown (the oldest first, or the highest priority first)."""
    if sort == "age":
        return sorted(items, key=lambda t: str(t.get("created_at") or ""))
    if sort == "priority":
        return sorted(items, key=lambda t: (-int(t.get("priority") or 3), str(t.get("created_at") or "")))
    return items


def age(value: str | None, now: datetime | None = None) -> tuple[int, str]:
    """How long ago a ticket was filed, in whole days and as ISO for ``<time>``."""
    if not value:
        return 0, ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return 0, ""
    now = now or datetime.now(UTC)
    return max(0, (now - moment).days), value


def flatten(nodes: list[dict[str, Any]], depth: int = 0) -> list[tuple[dict[str, Any], int]]:
    """The category tree as a list with each node's depth, for the move picker."""
    flat: list[tuple[dict[str, Any], int]] = []
    for node in nodes:
        flat.append((node, depth))
        flat.extend(flatten(node.get("children") or [], depth + 1))
    return flat


def until_of(value: str) -> str | None:
    """A ``<input type=date>`` value as the API's recall moment: 8:00 Paris time that day."""
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        return None
    return datetime.combine(day, time(8, 0), tzinfo=PARIS).isoformat()


def teams(departments: list[dict[str, Any]], login: str, admin: bool) -> list[dict[str, Any]]:
    """The queues a person reaches: one per department, and for a department per
    establishment (the ENT referents) one per establishment, whose tickets carry the
    team's id ``department:UAI`` (routing's teams). A manager reaches their own teams;
    an admin every one."""
    found = []
    for department in departments:
        managers = department.get("managers") or []
        mine = any(m.get("user") == login for m in managers)
        if not department.get("per_establishment"):
            found.append({"id": department["id"], "department": department, "establishment": None, "mine": mine})
            continue
        establishments = sorted({str(m["establishment"]) for m in managers if m.get("establishment")
                                 and (admin or m.get("user") == login)})
        for uai in establishments:
            found.append({"id": f"{department['id']}:{uai}", "department": department, "establishment": uai,
                          "mine": any(m.get("user") == login and m.get("establishment") == uai for m in managers)})
    return found


def team_label(team: dict[str, Any], language: str) -> str:
    label = label_of(team["department"], language)
    return f"{label} – {team['establishment']}" if team.get("establishment") else label


class ConsolePages(PortalPages):
    """The console's HTTP entrypoints (mixed into ``PortalService``)."""

    # -- the console's home: the departments, the escalations, availability

    def _departments(self, visit: Visit) -> list[dict[str, Any]]:
        identity = visit.person()
        departments = self.portal.backend.departments(identity)
        if not departments and not identity.is_admin:
            raise PageError(403, visit.gettext("La console est réservée aux gestionnaires d'un service."))
        return departments

    @page("GET", "/console")
    def console_home(self, visit: Visit) -> Response:
        identity = visit.person()
        found = teams(self._departments(visit), identity.login, identity.is_admin)
        mine = [t for t in found if t["mine"]]
        if len(mine) == 1 and not identity.is_admin:
            return redirect(f"/console/departments/{quote(mine[0]['id'], safe='')}")
        return self.portal.render(visit, "console_home.html", nav="console", teams=found,
                                  team_label=lambda team: team_label(team, visit.language))

    # -- a department's queue

    def _queue(self, visit: Visit, department_id: str) -> dict[str, Any]:
        identity = visit.person()
        backend = self.portal.backend
        reachable = teams(self._departments(visit), identity.login, identity.is_admin)
        team = next((t for t in reachable if t["id"] == department_id), None)
        if team is None:
            raise NotFound()
        department = team["department"]
        args = visit.request.args
        tab = args.get("tab") if args.get("tab") in TABS else "free"
        sort = args.get("sort") if args.get("sort") in SORTS else "activity"
        q = (args.get("q") or "").strip()[:200]
        cursor = args.get("cursor") or None

        def params(name: str, limit: int, with_query: bool) -> list[tuple[str, str]]:
            _, scope, statuses, escalated = TABS[name]
            found = [("scope", scope), ("limit", str(limit)), *(("status", s) for s in statuses)]
            # An escalated ticket is in the support's department: the referents find it
            # by their own scope, not by the department filter.
            if not escalated:
                found.append(("department_id", department_id))
            if with_query and q:
                found.append(("q", q))
            if with_query and cursor:
                found.append(("cursor", cursor))
            return found

        def keep(name: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if not TABS[name][3]:
                return items
            return [t for t in items if t.get("escalation") == "escalated"
                    and ((t.get("department") or {}).get("id") == department_id
                         or department.get("escalation_enabled"))]

        calls = [lambda name=name: backend.tickets(identity, params(name, COUNT_LIMIT, False)) for name in TABS]
        calls.append(lambda: backend.tickets(identity, params(tab, PAGE_SIZE, True)))
        *counted, shown = backend.together(*calls)
        counts = {}
        for name, result in zip(TABS, counted, strict=True):
            kept = keep(name, result["items"])
            counts[name] = f"{len(kept)}+" if result.get("next_cursor") and not TABS[name][3] else str(len(kept))
        items = sort_tickets(keep(tab, shown["items"]), sort)
        base = [("tab", tab), ("sort", sort)] + ([("q", q)] if q else [])
        path = f"/console/departments/{quote(department_id, safe='')}"
        next_url = f"{path}?{urlencode([*base, ('cursor', shown['next_cursor'])])}" if shown.get("next_cursor") else None
        first_url = f"{path}?{urlencode(base)}" if cursor else None
        here = [*base, *([("cursor", cursor)] if cursor else [])]
        now = datetime.now(UTC)
        rows = [{"ticket": t, "waits": waits_for_manager(t), "age": age(t.get("created_at"), now)} for t in items]
        me = next((m for m in department.get("managers") or [] if m.get("user") == identity.login), None)
        availability_url = f"/console/departments/{quote(department['id'], safe='')}/availability"
        return {
            "department": department, "department_label": team_label(team, visit.language), "tab": tab,
            "sort": sort, "q": q, "tabs": TABS, "sorts": SORTS, "counts": counts, "rows": rows,
            "next_url": next_url, "first_url": first_url, "path": path,
            "partial_url": f"{path}/queue?{urlencode(here)}",
            "tab_url": lambda name: f"{path}?" + urlencode([("tab", name), ("sort", sort), *([("q", q)] if q else [])]),
            "invalid": bool(shown.get("invalid")), "me": me, "availability_url": availability_url,
            "poll": self.portal.settings.console_poll_seconds,
        }

    @page("GET", "/console/departments/<department>")
    def console_queue(self, visit: Visit, department: str) -> Response:
        context = self._queue(visit, department)
        return self.portal.render(visit, "console_queue.html", nav="console", **context)

    @page("GET", "/console/departments/<department>/queue")
    def console_queue_partial(self, visit: Visit, department: str) -> Response:
        """The tabs and rows alone, for htmx's polling (no layout, no header)."""
        context = self._queue(visit, department)
        html = self.portal.environments[visit.language].get_template("console_queue_results.html").render(
            visit=visit, tr=visit.tr, language=visit.language, words=words,
            status_label=lambda s: words.status_label(visit.tr, s),
            priority_label=lambda p: words.priority_label(visit.tr, p),
            when=lambda value: words.when(visit.tr, value, visit.language), **context)
        return Response(html, mimetype="text/html")

    @page("POST", "/console/departments/<department>/availability")
    def console_availability(self, visit: Visit, department: str) -> Response:
        identity = visit.person()
        visit.check_csrf()
        available = visit.request.form.get("available") == "true"
        answer = self.portal.backend.set_availability(identity, department, available,
                                                      visit.request.form.get("idem") or None)
        if answer.status == 404:
            raise NotFound()
        if not answer.ok:
            visit.session.say("error", visit.gettext("La disponibilité n'a pas pu être enregistrée : {detail}",
                                                     detail=answer.detail))
        elif available:
            visit.session.say("success", visit.gettext("Vous êtes disponible : de nouvelles demandes peuvent vous"
                                                       " être attribuées."))
        else:
            visit.session.say("success", visit.gettext("Vous êtes indisponible : aucune nouvelle demande ne vous"
                                                       " sera attribuée automatiquement."))
        back = safe_next(visit.request.form.get("next") or f"/console/departments/{quote(department, safe='')}")
        return redirect(back)

    # -- escalations

    @page("GET", "/console/escalations")
    def console_escalations(self, visit: Visit) -> Response:
        identity = visit.person()
        status = visit.request.args.get("status")
        params = {"limit": "100", **({"status": status} if status in ("escalated", "refused", "returned") else {})}
        items = self.portal.backend.escalations(identity, params)
        return self.portal.render(visit, "console_escalations.html", nav="console", escalations=items,
                                  status=status)

    # -- the manager actions of a ticket

    @page("GET", "/console/tickets/<ticket>/take-over")
    def console_take_over_page(self, visit: Visit, ticket: str) -> Response:
        """Taking a ticket someone else holds is explicit: this page asks first."""
        return self._ticket_page(visit, ticket, template="console_take_over.html")

    @page("POST", "/console/tickets/<ticket>/internal-comment")
    def console_internal_comment(self, visit: Visit, ticket: str) -> Response:
        identity = visit.person()
        visit.check_csrf()
        form = visit.request.form
        body = form.get("body", "")
        error = None
        if not body.strip():
            error = visit.gettext("Écrivez votre commentaire interne.")
        elif len(body) > TEXT_MAX:
            error = visit.gettext("Ce texte est trop long.")
        if error:
            return self._ticket_page(visit, ticket, errors={"internal": {"body": error}}, values=dict(form),
                                     status=422, open_action="internal")
        answer = self.portal.backend.comment(identity, ticket, {"body": body, "visibility": "internal"},
                                             form.get("idem") or None)
        if not answer.ok:
            return self._refused(visit, ticket, "internal", answer, {"body": "body"})
        return self._done(visit, answer.body, visit.gettext("Votre commentaire interne est ajouté (invisible pour"
                                                            " le demandeur)."))

    def _action_body(self, visit: Visit, action: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The API body of ``action`` from the form, or the form's errors."""
        form = visit.request.form
        fields, required, _ = ACTIONS[action]
        body: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name in fields:
            value = form.get(name, "").strip()
            if not value:
                if name in required:
                    errors[name] = visit.gettext(REQUIRED[name])
                continue
            if len(value) > TEXT_MAX:
                errors[name] = visit.gettext("Ce texte est trop long.")
            elif name == "until":
                until = until_of(value)
                if until is None:
                    errors[name] = visit.gettext("Indiquez une date (jour, mois, année).")
                else:
                    body[name] = until
            else:
                body[name] = value
        return body, errors

    @page("POST", "/console/tickets/<ticket>/<action>")
    def console_action(self, visit: Visit, ticket: str, action: str) -> Response:
        identity = visit.person()
        visit.check_csrf()
        form = visit.request.form
        key = form.get("idem") or None
        backend = self.portal.backend
        if action in COMBINED:
            second, message = COMBINED[action]
            body, errors = self._action_body(visit, second)
            if errors:
                return self._ticket_page(visit, ticket, errors={action: errors}, values=dict(form), status=422,
                                         open_action=action)
            taken = backend.act(identity, ticket, "take", {}, f"{key}-take" if key else None)
            if not taken.ok:
                return self._take_refused(visit, ticket, action, taken)
            answer = backend.act(identity, ticket, second, body, f"{key}-{second}" if key else None)
            if not answer.ok:
                # Taken, but the second step was refused: say so on the ticket.
                return self._refused(visit, ticket, action, answer, {k: k for k in ACTIONS[second][0]})
            return self._done(visit, answer.body, visit.gettext(message))
        if action not in ACTIONS:
            raise PageError(404)
        body, errors = self._action_body(visit, action)
        if errors:
            return self._ticket_page(visit, ticket, errors={action: errors}, values=dict(form), status=422,
                                     open_action=action)
        answer = backend.act(identity, ticket, action, body, key)
        if not answer.ok:
            if action == "take":
                return self._take_refused(visit, ticket, action, answer)
            return self._refused(visit, ticket, action, answer, {k: k for k in ACTIONS[action][0]})
        if action == "return-to-referent":
            # Back with the referents, the ticket is out of the support's sight.
            visit.session.say("success", visit.gettext(ACTIONS[action][2]))
            return redirect("/console/escalations")
        return self._done(visit, answer.body, visit.gettext(ACTIONS[action][2]))

    def _take_refused(self, visit: Visit, ticket: str, action: str, answer: Answer) -> Response:
        """Two managers took the ticket at once: the second learns who was first."""
        if answer.status == 404:
            raise NotFound()
        if answer.status != 409:
            return self._refused(visit, ticket, action, answer, {})
        current = self.portal.backend.ticket(visit.person(), ticket)
        holder = current.get("assignee") or {}
        if holder:
            message = visit.gettext("{name} a pris en charge cette demande juste avant vous : rien n'a été modifié.",
                                    name=holder.get("name") or holder.get("id"))
        else:
            message = visit.gettext("Cette demande ne peut plus être prise en charge : rien n'a été modifié.")
        return self._ticket_page(visit, ticket, errors={action: {"_form": message}}, status=409, open_action=action)

    def manager_context(self, visit: Visit, ticket: dict[str, Any], actions: set[str]) -> dict[str, Any]:
        """What the ticket page's manager actions need: the department's managers (with
        their availability and open tickets) for "assign", the category tree for "move"."""
        identity = visit.person()
        backend = self.portal.backend
        context: dict[str, Any] = {"managers": [], "categories": []}
        department = ticket.get("department") or {}
        calls = []
        if "assign" in actions and department.get("id"):
            # A team of a department per establishment is "department:UAI".
            base = str(department["id"]).split(":", 1)[0]
            calls.append(("department", lambda: backend.department(identity, base)))
            calls.append(("load", lambda: backend.tickets(identity, [
                ("scope", "department"), ("department_id", department["id"]), ("limit", str(COUNT_LIMIT)),
                *(("status", s) for s in ASSIGNED_OPEN)])))
        if "move" in actions:
            calls.append(("categories", lambda: backend.categories(identity, visit.language)))
        if not calls:
            return context
        try:
            results = dict(zip([name for name, _ in calls], backend.together(*(c for _, c in calls)), strict=True))
        except NotFound:
            return context
        if "department" in results:
            load: dict[str, int] = {}
            for t in results["load"]["items"]:
                holder = (t.get("assignee") or {}).get("id")
                if holder:
                    load[holder] = load.get(holder, 0) + 1
            establishment = ticket.get("establishment")
            context["managers"] = [
                {**m, "open": load.get(m.get("user"), 0)} for m in results["department"].get("managers") or []
                # A per-establishment team: the ticket's establishment's referents.
                if not m.get("establishment") or not establishment or m.get("establishment") == establishment
            ]
        if "categories" in results:
            context["categories"] = flatten(results["categories"])
        return context

