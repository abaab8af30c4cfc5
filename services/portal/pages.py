"""The requester's pages (``API.md``, Portal): "Mes demandes", "Créer un ticket" in two
steps, the ticket with its ACTIONS, the confirmation pages of the email links, the
news feed, the preferences, and sign-in / sign-out.

Each page asks the services (``backend``) as the signed-in person and renders what they
answer; no page changes anything on a GET, every POST checks the CSRF token first.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any
from urllib.parse import quote, urlencode

import structlog
from werkzeug.wrappers import Request, Response

from services.portal import sso, words
from services.portal.app import PageError, Portal, Visit, page, redirect, safe_next
from services.portal.backend import Answer, NotFound
from services.portal.i18n import N_
from shared.auth import Identity, portal_jwks

log = structlog.stdlib.get_logger("guichet.portal.pages")

SCOPES = ("mine", "invited", "watched")
SUBJECT_MAX = 200
TEXT_MAX = 20_000


def fold(text: str) -> str:
    """Text as the category filter compares it: no accents, no case, no punctuation
    ("Wi-Fi (eduroam)" -> "wifieduroam")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return re.sub(r"[\W_]+", "", "".join(c for c in decomposed if not unicodedata.combining(c))).casefold()


def filter_tree(nodes: list[dict[str, Any]], query: str) -> list[dict[str, Any]]:
    """The categories whose label matches ``query``, with the path to each (and all of a
    matching category's sub-categories)."""
    wanted = fold(query)
    if not wanted:
        return nodes
    kept = []
    for node in nodes:
        if wanted in fold(str(node.get("label", ""))):
            kept.append(node)
            continue
        children = filter_tree(node.get("children") or [], query)
        if children:
            kept.append({**node, "children": children})
    return kept


def find_path(nodes: list[dict[str, Any]], category_id: str) -> list[dict[str, Any]] | None:
    """The categories from the root down to ``category_id``."""
    for node in nodes:
        if node.get("id") == category_id:
            return [node]
        below = find_path(node.get("children") or [], category_id)
        if below:
            return [node, *below]
    return None


def _field_errors(visit: Visit, answer: Answer, fields: dict[str, str]) -> dict[str, str]:
    """A service's refusal as French messages next to the form's fields (``fields`` maps
    the API's field names to the form's)."""
    found: dict[str, str] = {}
    for name, messages in answer.errors.items():
        target = fields.get(name.split(".")[0], "_form")
        text = " ".join(messages)
        if "required" in text or "blank" in text or "Missing" in text:
            found[target] = visit.gettext("Ce champ est obligatoire.")
        elif "line" in text and target == "subject":
            found[target] = visit.gettext("Le sujet tient sur une seule ligne.")
        elif "Length" in text or "longer" in text or "characters" in text:
            found[target] = visit.gettext("Ce texte est trop long.")
        else:
            found[target] = visit.gettext("Valeur refusée : {detail}", detail=text)
    if not found:
        found["_form"] = _refusal(visit, answer)
    return found


def _refusal(visit: Visit, answer: Answer) -> str:
    if answer.status == 409:
        return visit.gettext("Cette action n'est plus possible dans l'état actuel de la demande ; la page a été"
                             " mise à jour.")
    if answer.status == 403:
        return visit.gettext("Vous ne pouvez pas faire cette action sur cette demande.")
    if answer.status == 413:
        return visit.gettext("Le fichier est trop volumineux.")
    if answer.status == 415:
        return visit.gettext("Ce type de fichier n'est pas accepté.")
    return visit.gettext("La demande a été refusée : {detail}", detail=answer.detail)


class PortalPages:
    """The HTTP entrypoints of the portal (mixed into ``PortalService``)."""

    portal: Portal

    # -- probes and files

    @page("GET", "/healthz")
    def healthz(self, visit: Visit) -> Response:
        return Response(json.dumps({"status": "ok"}), mimetype="application/json")

    @page("GET", "/readyz")
    def readyz(self, visit: Visit) -> Response:
        """Ready as soon as it serves pages: a service away shows its friendly 503 page,
        and taking the portal out of the Service for it would only make things worse.
        The body says which services answer, for operators."""
        checks = self.portal.backend.ready()
        status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
        return Response(json.dumps({"status": status, "checks": checks}), mimetype="application/json")

    @page("GET", "/.well-known/jwks.json")
    def jwks(self, visit: Visit) -> Response:
        """The public half of ``PORTAL_SIGNING_KEY``: the services check the tokens the
        portal mints for a signed-in person against it (``PORTAL_JWKS_URL``)."""
        document = portal_jwks(self.portal.service_settings)
        return Response(json.dumps(document), mimetype="application/jwk-set+json",
                        headers={"Cache-Control": "public, max-age=300"})

    @page("GET", "/static/<name>")
    def static_file(self, visit: Visit, name: str) -> Response:
        return self.portal.static(name)

    # -- Mes demandes

    @page("GET", "/")
    def home(self, visit: Visit) -> Response:
        identity = visit.person()
        args = visit.request.args
        scope = args.get("scope") if args.get("scope") in SCOPES else "mine"
        statuses = [s for s in args.getlist("status") if s in words.STATUSES]
        q = (args.get("q") or "").strip()[:200]
        cursor = args.get("cursor") or None
        params = [("scope", scope), ("limit", "20")] + [("status", s) for s in statuses]
        if q:
            params.append(("q", q))
        if cursor:
            params.append(("cursor", cursor))
        backend = self.portal.backend
        result, unread = backend.together(lambda: backend.tickets(identity, params), lambda: backend.unread(identity))
        base = [("scope", scope)] + [("status", s) for s in statuses] + ([("q", q)] if q else [])
        next_url = "/?" + urlencode([*base, ("cursor", result["next_cursor"])]) if result.get("next_cursor") else None
        first_url = "/?" + urlencode(base) if cursor else None
        return self.portal.render(visit, "home.html", tickets=result["items"], scope=scope, statuses=statuses, q=q,
                                  next_url=next_url, first_url=first_url, invalid=bool(result.get("invalid")),
                                  scopes=SCOPES, unread=unread)

    # -- Créer un ticket

    @page("GET", "/tickets/new")
    def new_ticket(self, visit: Visit) -> Response:
        identity = visit.person()
        tree = self.portal.backend.categories(identity, visit.language)
        category_id = visit.request.args.get("category")
        if category_id:
            path = find_path(tree, category_id)
            if path is None:
                raise PageError(404, visit.gettext("Cette catégorie n'existe pas."))
            return self._ticket_form(visit, path, {"priority": "3"}, {}, [])
        q = (visit.request.args.get("q") or "").strip()[:100]
        return self.portal.render(visit, "new_category.html", tree=filter_tree(tree, q), q=q)

    def _ticket_form(self, visit: Visit, path: list[dict[str, Any]], values: dict[str, Any],
                     errors: dict[str, str], uploads: list[dict[str, str]], status: int = 200) -> Response:
        # A sub-category shows its own FAQ, then its parents' (WORKFLOW.md).
        faq = [entry for node in reversed(path) for entry in node.get("faq") or []]
        return self.portal.render(visit, "new_form.html", status=status, path=path, category=path[-1], faq=faq,
                                  values=values, errors=errors, uploads=uploads,
                                  max_upload=words.size(self.portal.settings.max_upload_bytes, visit.language))

    def _upload_files(self, visit: Visit, identity: Identity, errors: dict[str, str]) -> list[dict[str, str]]:
        """The form's chosen files, sent to the attachments service; what it accepted."""
        accepted = []
        for stored in visit.request.files.getlist("files"):
            if not stored or not stored.filename:
                continue
            answer = self.portal.backend.upload(identity, stored.filename, stored.stream, stored.mimetype)
            if answer.ok:
                accepted.append({"id": str(answer.body["id"]), "filename": str(answer.body.get("filename")),
                                 "size": str(answer.body.get("size", ""))})
            else:
                errors["files"] = f"{stored.filename} : {_refusal(visit, answer)}"
        return accepted

    @staticmethod
    def _kept_uploads(form: Any) -> list[dict[str, str]]:
        """Files already transferred, carried by the form as hidden fields ``id|size|name``."""
        kept = []
        for value in form.getlist("uploaded"):
            parts = str(value).split("|", 2)
            if len(parts) == 3 and parts[0]:
                kept.append({"id": parts[0], "size": parts[1], "filename": parts[2]})
        return kept

    @page("POST", "/tickets/new")
    def create_ticket(self, visit: Visit) -> Response:
        identity = visit.person()
        visit.check_csrf()
        form = visit.request.form
        tree = self.portal.backend.categories(identity, visit.language)
        path = find_path(tree, form.get("category_id", ""))
        if path is None:
            raise PageError(400, visit.gettext("Choisissez d'abord une catégorie."))
        values = {k: form.get(k, "") for k in ("subject", "description", "phone", "priority", "idem")}
        errors: dict[str, str] = {}
        uploads = self._kept_uploads(form) + self._upload_files(visit, identity, errors)
        if form.get("op") == "upload":
            # "Transférer": the files join the form, the ticket is not filed yet.
            return self._ticket_form(visit, path, values, errors, uploads, status=422 if errors else 200)
        subject = values["subject"].strip()
        if not subject:
            errors["subject"] = visit.gettext("Indiquez le sujet de votre demande.")
        elif "\n" in subject or "\r" in subject:
            errors["subject"] = visit.gettext("Le sujet tient sur une seule ligne.")
        elif len(subject) > SUBJECT_MAX:
            errors["subject"] = visit.gettext("Le sujet ne doit pas dépasser {n} caractères.", n=SUBJECT_MAX)
        if not values["description"].strip():
            errors["description"] = visit.gettext("Décrivez votre problème.")
        elif len(values["description"]) > TEXT_MAX:
            errors["description"] = visit.gettext("La description est trop longue.")
        if len(values["phone"]) > 30:
            errors["phone"] = visit.gettext("Le numéro de téléphone est trop long.")
        priority = int(values["priority"]) if values["priority"] in {"1", "2", "3", "4", "5"} else 3
        if errors:
            return self._ticket_form(visit, path, values, errors, uploads, status=422)
        body = {"category_id": path[-1]["id"], "subject": subject, "description": values["description"],
                "priority": priority, "attachment_ids": [u["id"] for u in uploads]}
        if values["phone"].strip():
            body["phone"] = values["phone"].strip()
        answer = self.portal.backend.submit(identity, body, values["idem"] or None)
        if not answer.ok:
            values["idem"] = ""  # a refused body may not be repeated under its key
            errors = _field_errors(visit, answer, {"subject": "subject", "description": "description",
                                                   "phone": "phone", "priority": "priority",
                                                   "attachment_ids": "files", "category_id": "_form"})
            return self._ticket_form(visit, path, values, errors, uploads, status=422)
        ticket = answer.body
        return redirect(f"/tickets/{ticket['number']}/created")

    @page("GET", "/tickets/<ticket>/created")
    def ticket_created(self, visit: Visit, ticket: str) -> Response:
        identity = visit.person()
        found = self.portal.backend.ticket(identity, ticket)
        return self.portal.render(visit, "created.html", ticket=found)

    # -- the ticket

    def _ticket_page(self, visit: Visit, ticket_ref: str, *, errors: dict[str, dict[str, str]] | None = None,
                     values: dict[str, Any] | None = None, status: int = 200, open_action: str | None = None,
                     template: str = "ticket.html") -> Response:
        identity = visit.person()
        backend = self.portal.backend
        # The ticket, its history, the owner's latest tickets and the feed's count at once.
        ticket, history, mine, unread = backend.together(
            lambda: backend.ticket(identity, ticket_ref), lambda: backend.history(identity, ticket_ref),
            lambda: backend.tickets(identity, [("scope", "mine"), ("limit", "6")]), lambda: backend.unread(identity),
        )
        labels = {f"category:{ticket['category']['id']}": ticket["category"]["label"]}
        if ticket.get("department"):
            labels[f"department:{ticket['department']['id']}"] = ticket["department"]["label"]
        entries = [words.history_entry(visit.tr, event, visit.language, labels) for event in history]
        for entry, role in zip(entries, words.roles(history, ticket), strict=True):
            entry["role"] = visit.gettext(role) if role else None
        owner_tickets: list[dict[str, Any]] = []
        requester = ticket.get("requester") or {}
        if requester.get("id") == identity.login:
            owner_tickets = [t for t in mine["items"] if t["id"] != ticket["id"]][:5]
        watching = any((w or {}).get("id") == identity.login for w in ticket.get("watchers") or [])
        actions = set(ticket.get("allowed_actions") or [])
        return self.portal.render(
            visit, template, status=status, ticket=ticket, history=entries, owner_tickets=owner_tickets,
            actions=actions, errors=errors or {}, values=values or {}, **self.manager_context(visit, ticket, actions),
            watching=watching, open_action=open_action, is_requester=requester.get("id") == identity.login,
            unread=unread,
            pending_question=_latest(ticket, history, "pending_question", "WAITING_FOR_INFO", "InformationRequested",
                                     "question"),
            proposed_resolution=_latest(ticket, history, "proposed_resolution", "CLOSURE_REQUESTED",
                                        "ClosureRequested", "resolution"),
        )

    def manager_context(self, visit: Visit, ticket: dict[str, Any], actions: set[str]) -> dict[str, Any]:
        """What the ticket page's manager actions need (the console adds it)."""
        return {"managers": [], "categories": []}

    @page("GET", "/tickets/<ticket>")
    def ticket_page(self, visit: Visit, ticket: str) -> Response:
        return self._ticket_page(visit, ticket)

    @page("GET", "/tickets/<ticket>/answer")
    def answer_page(self, visit: Visit, ticket: str) -> Response:
        return self._ticket_page(visit, ticket, template="answer.html")

    @page("GET", "/tickets/<ticket>/approve-closure")
    def approve_page(self, visit: Visit, ticket: str) -> Response:
        return self._ticket_page(visit, ticket, template="approve.html")

    @page("GET", "/tickets/<ticket>/refuse-closure")
    def refuse_page(self, visit: Visit, ticket: str) -> Response:
        return self._ticket_page(visit, ticket, template="refuse.html")

    def _done(self, visit: Visit, ticket: dict[str, Any] | str, message: str) -> Response:
        visit.session.say("success", message)
        number = ticket["number"] if isinstance(ticket, dict) else ticket
        return redirect(f"/tickets/{quote(str(number), safe='')}")

    def _refused(self, visit: Visit, ticket: str, action: str, answer: Answer, fields: dict[str, str],
                 template: str = "ticket.html") -> Response:
        if answer.status == 404:
            raise NotFound()
        errors = _field_errors(visit, answer, fields)
        return self._ticket_page(visit, ticket, errors={action: errors}, values=dict(visit.request.form),
                                 status=409 if answer.status == 409 else 422, open_action=action, template=template)

    @page("POST", "/tickets/<ticket>/answer")
    def post_answer(self, visit: Visit, ticket: str) -> Response:
        return self._comment(visit, ticket, "answer", template="answer.html",
                             message=visit.gettext("Votre réponse a été transmise au gestionnaire."))

    @page("POST", "/tickets/<ticket>/comment")
    def post_comment(self, visit: Visit, ticket: str) -> Response:
        return self._comment(visit, ticket, "comment", message=visit.gettext("Votre commentaire a été ajouté."))

    def _comment(self, visit: Visit, ticket: str, action: str, message: str,
                 template: str = "ticket.html") -> Response:
        identity = visit.person()
        visit.check_csrf()
        form = visit.request.form
        body = form.get("body", "")
        errors: dict[str, str] = {}
        uploads = self._upload_files(visit, identity, errors)
        if not body.strip():
            errors["body"] = visit.gettext("Écrivez votre message.")
        elif len(body) > TEXT_MAX:
            errors["body"] = visit.gettext("Ce texte est trop long.")
        if errors:
            return self._ticket_page(visit, ticket, errors={action: errors}, values=dict(form), status=422,
                                     open_action=action, template=template)
        answer = self.portal.backend.comment(identity, ticket, {"body": body, "visibility": "public",
                                                                "attachment_ids": [u["id"] for u in uploads]},
                                             form.get("idem") or None)
        if not answer.ok:
            return self._refused(visit, ticket, action, answer, {"body": "body", "attachment_ids": "files"}, template)
        return self._done(visit, answer.body, message)

    @page("POST", "/tickets/<ticket>/approve-closure")
    def post_approve(self, visit: Visit, ticket: str) -> Response:
        identity = visit.person()
        visit.check_csrf()
        form = visit.request.form
        body: dict[str, Any] = {}
        if form.get("rating") in {"1", "2", "3", "4", "5"}:
            body["rating"] = int(form["rating"])
        feedback = form.get("feedback", "").strip()
        if len(feedback) > 5000:
            return self._ticket_page(visit, ticket, errors={"approve-closure": {
                "feedback": visit.gettext("Ce texte est trop long.")}}, values=dict(form), status=422,
                template="approve.html")
        if feedback:
            body["feedback"] = feedback
        answer = self.portal.backend.act(identity, ticket, "approve-closure", body, form.get("idem") or None)
        if not answer.ok:
            return self._refused(visit, ticket, "approve-closure", answer, {"rating": "rating",
                                                                             "feedback": "feedback"}, "approve.html")
        return self._done(visit, answer.body, visit.gettext("Merci : la clôture de la demande est approuvée."))

    @page("POST", "/tickets/<ticket>/refuse-closure")
    def post_refuse(self, visit: Visit, ticket: str) -> Response:
        identity = visit.person()
        visit.check_csrf()
        form = visit.request.form
        justification = form.get("justification", "").strip()
        if not justification:
            return self._ticket_page(visit, ticket, errors={"refuse-closure": {"justification": visit.gettext(
                "Expliquez pourquoi le problème n'est pas résolu : le gestionnaire en a besoin.")}},
                values=dict(form), status=422, template="refuse.html")
        answer = self.portal.backend.act(identity, ticket, "refuse-closure", {"justification": justification},
                                         form.get("idem") or None)
        if not answer.ok:
            return self._refused(visit, ticket, "refuse-closure", answer, {"justification": "justification"},
                                 "refuse.html")
        return self._done(visit, answer.body, visit.gettext("La clôture est refusée : la demande reste ouverte."))

    # Simple actions of the ACTIONS menu: (the form's fields -> the API body, message).
    SIMPLE = {
        "cancel": ({"reason": "reason"}, N_("La demande est annulée.")),
        "close": ({}, N_("La demande est clôturée.")),
        "reopen": ({"reason": "reason"}, N_("La demande est ré-ouverte.")),
        "change-subject": ({"subject": "subject"}, N_("Le sujet est modifié.")),
        "change-priority": ({"priority": "priority"}, N_("La priorité est modifiée.")),
    }

    @page("POST", "/tickets/<ticket>/actions/<action>")
    def post_action(self, visit: Visit, ticket: str, action: str) -> Response:
        identity = visit.person()
        visit.check_csrf()
        form = visit.request.form
        key = form.get("idem") or None
        backend = self.portal.backend
        if action in ("watch", "unwatch"):
            answer = backend.watch(identity, ticket, action == "watch", key)
            message = (visit.gettext("Vous surveillez cette demande : vous serez averti(e) par courriel.")
                       if action == "watch" else visit.gettext("Vous ne surveillez plus cette demande."))
            return self._done(visit, answer.body, message) if answer.ok else self._refused(
                visit, ticket, action, answer, {})
        if action == "invite":
            user = form.get("user", "").strip()
            if not user:
                return self._ticket_page(visit, ticket, errors={"invite": {"user": visit.gettext(
                    "Indiquez l'identifiant ou l'adresse de messagerie de la personne.")}}, values=dict(form),
                    status=422, open_action="invite")
            answer = backend.invite(identity, ticket, user, key)
            if not answer.ok:
                return self._refused(visit, ticket, "invite", answer, {"user": "user"})
            return self._done(visit, answer.body, visit.gettext("{user} est invité(e) sur la demande.", user=user))
        if action == "uninvite":
            answer = backend.uninvite(identity, ticket, form.get("user", ""))
            if not answer.ok:
                return self._refused(visit, ticket, "uninvite", answer, {})
            return self._done(visit, answer.body, visit.gettext("L'invitation est retirée."))
        if action not in self.SIMPLE:
            raise PageError(404)
        fields, message = self.SIMPLE[action]
        body: dict[str, Any] = {}
        for name, api_name in fields.items():
            value = form.get(name, "").strip()
            if action == "change-priority":
                if value not in {"1", "2", "3", "4", "5"}:
                    return self._ticket_page(visit, ticket, errors={action: {"priority": visit.gettext(
                        "Choisissez une priorité.")}}, values=dict(form), status=422, open_action=action)
                body[api_name] = int(value)
            elif action == "change-subject":
                if not value:
                    return self._ticket_page(visit, ticket, errors={action: {"subject": visit.gettext(
                        "Indiquez le sujet.")}}, values=dict(form), status=422, open_action=action)
                body[api_name] = value
            elif value:
                body[api_name] = value
        answer = backend.act(identity, ticket, action, body, key)
        if not answer.ok:
            return self._refused(visit, ticket, action, answer, {k: k for k in fields})
        return self._done(visit, answer.body, visit.gettext(message))

    @page("GET", "/tickets/<ticket>/files/<attachment>")
    def download(self, visit: Visit, ticket: str, attachment: str) -> Response:
        identity = visit.person()
        upstream = self.portal.backend.download(identity, attachment)
        headers = {"Content-Disposition": upstream.headers.get("Content-Disposition", "attachment"),
                   "Cache-Control": "private, no-store"}
        if upstream.headers.get("Content-Length"):
            headers["Content-Length"] = upstream.headers["Content-Length"]

        def body() -> Any:
            try:
                yield from upstream.iter_content(64 * 1024)
            finally:
                upstream.close()

        return Response(body(), status=200, headers=headers,
                        mimetype=upstream.headers.get("Content-Type", "application/octet-stream"),
                        direct_passthrough=True)

    # -- Fil de nouveautés

    @page("GET", "/feed")
    def feed(self, visit: Visit) -> Response:
        identity = visit.person()
        params = {"limit": "20"}
        if visit.request.args.get("cursor"):
            params["cursor"] = visit.request.args["cursor"]
        if visit.request.args.get("unread") == "true":
            params["unread"] = "true"
        result = self.portal.backend.feed(identity, params)
        next_url = None
        if result.get("next_cursor"):
            next_url = "/feed?" + urlencode({**{k: v for k, v in params.items() if k != "limit"},
                                             "cursor": result["next_cursor"]})
        return self.portal.render(visit, "feed.html", entries=result.get("items") or [], unread=result.get("unread", 0),
                                  next_url=next_url, only_unread=params.get("unread") == "true")

    @page("POST", "/feed/<entry>/read")
    def feed_read(self, visit: Visit, entry: str) -> Response:
        identity = visit.person()
        visit.check_csrf()
        answer = self.portal.backend.read(identity, entry)
        if not answer.ok and answer.status != 404:
            visit.session.say("error", _refusal(visit, answer))
        return redirect(safe_next(visit.request.form.get("next") or "/feed"))

    @page("POST", "/feed/read-all")
    def feed_read_all(self, visit: Visit) -> Response:
        identity = visit.person()
        visit.check_csrf()
        answer = self.portal.backend.read(identity, None)
        if answer.ok:
            visit.session.say("success", visit.gettext("Toutes les nouveautés sont marquées comme lues."))
        return redirect("/feed")

    # -- Préférences

    @page("GET", "/preferences")
    def preferences(self, visit: Visit) -> Response:
        identity = visit.person()
        prefs = self.portal.backend.preferences(identity)
        return self.portal.render(visit, "preferences.html", prefs=prefs)

    @page("POST", "/preferences")
    def save_preferences(self, visit: Visit) -> Response:
        identity = visit.person()
        visit.check_csrf()
        form = visit.request.form
        current = self.portal.backend.preferences(identity)
        body: dict[str, Any] = {"email": {kind: form.get(f"email.{kind}") == "on" for kind in current.get("email", {})}}
        if form.get("language") in ("fr", "en"):
            body["language"] = form["language"]
        answer = self.portal.backend.save_preferences(identity, body, form.get("idem") or None)
        if not answer.ok:
            visit.session.say("error", _refusal(visit, answer))
            return redirect("/preferences")
        visit.session.language = answer.body.get("language") or visit.session.language
        visit.session.changed = True
        tr = self.portal.translations[visit.session.language or "fr"]
        visit.session.say("success", tr.gettext("Vos préférences sont enregistrées."))
        return redirect("/preferences")

    # -- sign-in

    @page("GET", "/sign-in")
    def sign_in(self, visit: Visit) -> Response:
        target = safe_next(visit.request.args.get("next"))
        provider = self.portal.sso
        if provider is None:
            if self.portal.settings.development:
                return redirect("/dev/sign-in?" + urlencode({"next": target}))
            return self.portal.render(visit, "sign_in_unconfigured.html", status=503, unread=0)
        redirect_url, kept = provider.begin(_callback_url(visit.request))
        visit.session.sso = {"kept": kept, "next": target}
        visit.session.changed = True
        return redirect(redirect_url, 302)

    @page("GET", "/sign-in/callback")
    def sign_in_callback(self, visit: Visit) -> Response:
        provider = self.portal.sso
        pending = visit.session.sso or {}
        if provider is None or "kept" not in pending:
            raise PageError(400, visit.gettext("Aucune connexion n'est en cours : recommencez."))
        try:
            identity, kept_for_logout = provider.complete(dict(visit.request.args), _callback_url(visit.request),
                                                          pending["kept"])
        except sso.SignInFailed as exc:
            log.warning("sign-in failed", reason=str(exc))
            visit.session.sso = {}
            visit.session.changed = True
            return self.portal.render(visit, "error.html", status=403, unread=0, error_status=403,
                                      title=visit.gettext("Connexion impossible"),
                                      message=visit.gettext("Le service d'authentification n'a pas confirmé votre"
                                                            " identité. Recommencez la connexion."))
        self._start_session(visit, identity)
        visit.session.sso = {"logout": kept_for_logout}
        return redirect(safe_next(pending.get("next")))

    def _start_session(self, visit: Visit, identity: Identity) -> None:
        language = None
        try:
            language = self.portal.backend.preferences(identity).get("language")
        except Exception as exc:  # noqa: BLE001 - the language can wait; the sign-in cannot
            log.info("preferences unavailable at sign-in", error=type(exc).__name__)
        visit.session.sign_in(identity, language if language in ("fr", "en") else None)
        log.info("signed in", login=identity.login)

    @page("POST", "/sign-out")
    def sign_out(self, visit: Visit) -> Response:
        visit.check_csrf()
        kept = (visit.session.sso or {}).get("logout")
        visit.session.sign_out()
        provider = self.portal.sso
        if provider is not None and kept is not None:
            url = provider.logout_url(kept, _base_url(visit.request) + "/")
            if url:
                return redirect(url)
        return redirect("/")

    @page("GET", "/dev/sign-in")
    def dev_sign_in_form(self, visit: Visit) -> Response:
        if not self.portal.settings.development:
            raise PageError(404)
        return self.portal.render(visit, "dev_sign_in.html", next=safe_next(visit.request.args.get("next")),
                                  errors={}, values={}, unread=0)

    @page("POST", "/dev/sign-in")
    def dev_sign_in(self, visit: Visit) -> Response:
        if not self.portal.settings.development:
            raise PageError(404)
        visit.check_csrf()
        form = visit.request.form
        login = form.get("login", "").strip()
        target = safe_next(form.get("next"))
        if not re.fullmatch(r"[A-Za-z0-9._@-]{1,100}", login):
            return self.portal.render(visit, "dev_sign_in.html", status=422, next=target, values=dict(form), unread=0,
                                      errors={"login": visit.gettext(
                                          "Un identifiant : lettres, chiffres, point, tiret (100 au plus).")})
        email = form.get("email", "").strip() or f"{login}@univ.example"
        if "@" not in email:
            return self.portal.render(visit, "dev_sign_in.html", status=422, next=target, values=dict(form), unread=0,
                                      errors={"email": visit.gettext("Une adresse de messagerie valide.")})
        identity = Identity(login=login, email=email, name=form.get("name", "").strip()[:200] or None,
                            establishment=form.get("establishment", "").strip()[:20] or None,
                            roles=("admin",) if form.get("admin") else ())
        self._start_session(visit, identity)
        return redirect(target)


def _latest(ticket: dict[str, Any], history: list[dict[str, Any]], field: str, status: str, event_type: str,
            key: str) -> str | None:
    """The ticket's ``field`` (the pending question, the proposed resolution) when the
    tickets service gives it, else the latest such event's text while in ``status``."""
    if ticket.get(field):
        value = ticket[field]
        return value.get(key) if isinstance(value, dict) else str(value)
    if ticket.get("status") != status:
        return None
    for event in reversed(history):
        if event.get("type") == event_type:
            return (event.get("data") or {}).get(key)
    return None


def _base_url(request: Request) -> str:
    return request.host_url.rstrip("/")


def _callback_url(request: Request) -> str:
    return _base_url(request) + "/sign-in/callback"
