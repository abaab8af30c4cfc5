"""The console's administration pages (admins): the category tree (add, rename, move,
attach to a department, delete when no open ticket uses it) and each category's FAQ.

Routing decides: a non-admin's change is refused there (403), a category open tickets
use cannot be deleted (409, its message shown), a bad field comes back as the problem's
``errors`` and shows next to its field. Routing reads a category in one language at a
time, so the edit form reads it in French and in English (``_form_of``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import structlog
from werkzeug.wrappers import Response

from services.portal.app import PageError, Visit, page, redirect
from services.portal.backend import Answer, NotFound
from services.portal.console import ConsolePages, flatten, label_of
from services.portal.pages import _refusal

log = structlog.stdlib.get_logger("guichet.portal.console_admin")

ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# The API's field (first part of its dotted name) -> the form's field.
POLICIES = ("none", "round_robin", "least_loaded")
FIELDS = {"id": "id", "label": "label_fr", "parent_id": "parent_id", "department_id": "department_id",
          "faq": "faq_question"}


def _text(value: Any) -> str:
    return str(value or "").strip()


class ConsoleAdminPages(ConsolePages):
    """The administration entrypoints (mixed into ``PortalService``)."""

    def _admin(self, visit: Visit) -> Any:
        identity = visit.person()
        if not identity.is_admin:
            raise PageError(403, visit.gettext("L'administration est réservée aux administrateurs de l'assistance."))
        return identity

    def _categories_page(self, visit: Visit, *, values: dict[str, Any] | None = None,
                         errors: dict[str, str] | None = None, status: int = 200) -> Response:
        identity = self._admin(visit)
        backend = self.portal.backend
        tree, departments = backend.together(lambda: backend.categories(identity, "fr"),
                                             lambda: backend.departments(identity))
        return self.portal.render(visit, "console_categories.html", status=status, nav="console", tree=tree,
                                  flat=flatten(tree), departments=departments, values=values or {},
                                  errors=errors or {}, label_of=label_of)

    @page("GET", "/console/admin/categories")
    def console_categories(self, visit: Visit) -> Response:
        return self._categories_page(visit)

    def _category_body(self, visit: Visit, form: Any, current: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
        """The category as the API takes it, from the form (and the stored one's FAQ)."""
        errors: dict[str, str] = {}
        body: dict[str, Any] = {}
        if current is None:
            category_id = _text(form.get("id"))
            if not ID.fullmatch(category_id):
                errors["id"] = visit.gettext("Un identifiant : lettres, chiffres, « - », « _ » ou « . », sans espace.")
            body["id"] = category_id
        label_fr, label_en = _text(form.get("label_fr")), _text(form.get("label_en"))
        if not label_fr:
            errors["label_fr"] = visit.gettext("Indiquez le libellé en français.")
        body["label"] = {"fr": label_fr, **({"en": label_en} if label_en else {})}
        body["parent_id"] = _text(form.get("parent_id")) or None
        body["department_id"] = _text(form.get("department_id")) or None
        removed = set(form.getlist("remove_faq"))
        faq = [entry for entry in (current or {}).get("faq", []) if entry["id"] not in removed]
        question, answer = _text(form.get("faq_question")), _text(form.get("faq_answer"))
        if question or answer:
            if not question:
                errors["faq_question"] = visit.gettext("Indiquez la question.")
            if not answer:
                errors["faq_answer"] = visit.gettext("Indiquez la réponse.")
            taken = {entry["id"] for entry in faq}
            number = len(faq) + 1
            while f"{body.get('id') or (current or {}).get('id')}-faq-{number}" in taken:
                number += 1
            faq.append({"id": f"{body.get('id') or (current or {}).get('id')}-faq-{number}",
                        "question": {"fr": question}, "answer": {"fr": answer}})
        body["faq"] = faq
        if current is not None:
            for kept in ("assignment_policy", "closure_expiry_days"):
                body[kept] = current.get(kept)
        return body, errors

    def _api_errors(self, visit: Visit, answer: Answer) -> dict[str, str]:
        """The refusal's messages next to the form's fields (the API's own words)."""
        found: dict[str, str] = {}
        for name, messages in answer.errors.items():
            target = FIELDS.get(name.split(".")[0], "_form")
            found[target] = visit.gettext("Refusé : {detail}", detail=" ".join(map(str, messages)))
        if not found:
            found["_form"] = answer.detail and visit.gettext("Refusé : {detail}", detail=answer.detail) or \
                _refusal(visit, answer)
        return found

    @page("POST", "/console/admin/categories")
    def console_add_category(self, visit: Visit) -> Response:
        identity = self._admin(visit)
        visit.check_csrf()
        form = visit.request.form
        body, errors = self._category_body(visit, form, None)
        if errors:
            return self._categories_page(visit, values=dict(form), errors=errors, status=422)
        answer = self.portal.backend.save_category(identity, None, body, form.get("idem") or None)
        if not answer.ok:
            return self._categories_page(visit, values=dict(form), errors=self._api_errors(visit, answer), status=422)
        log.info("category added", category=body["id"], by=identity.login)
        visit.session.say("success", visit.gettext("La catégorie « {label} » est ajoutée.", label=body["label"]["fr"]))
        return redirect("/console/admin/categories")

    def _form_of(self, visit: Visit, category_id: str) -> dict[str, Any]:
        """The stored category in both languages, from its French and English readings."""
        identity = visit.person()
        backend = self.portal.backend
        fr, en = backend.together(lambda: backend.category(identity, category_id, "fr"),
                                  lambda: backend.category(identity, category_id, "en"))
        english = {entry["id"]: entry for entry in en.get("faq") or []}

        def both(french: str, other: str | None) -> dict[str, str]:
            # Routing answers the French text where there is no English one.
            return {"fr": french, **({"en": other} if other and other != french else {})}

        return {
            "id": fr["id"], "label": both(fr["label"], en.get("label")), "parent_id": fr.get("parent_id"),
            "department_id": fr.get("department_id"), "assignment_policy": fr.get("assignment_policy"),
            "closure_expiry_days": fr.get("closure_expiry_days"), "children": fr.get("children") or [],
            "faq": [{"id": f["id"], "question": both(f["question"], english.get(f["id"], {}).get("question")),
                     "answer": both(f["answer"], english.get(f["id"], {}).get("answer"))}
                    for f in fr.get("faq") or [] if not f.get("inherited_from")],
        }

    def _category_page(self, visit: Visit, category_id: str, *, values: dict[str, Any] | None = None,
                       errors: dict[str, str] | None = None, status: int = 200) -> Response:
        identity = self._admin(visit)
        backend = self.portal.backend
        current, tree, departments = backend.together(lambda: self._form_of(visit, category_id),
                                                      lambda: backend.categories(identity, "fr"),
                                                      lambda: backend.departments(identity))
        below = {node["id"] for node, _ in flatten(current["children"])} | {category_id}
        parents = [(node, depth) for node, depth in flatten(tree) if node["id"] not in below]
        if values is None:
            values = {"label_fr": current["label"]["fr"], "label_en": current["label"].get("en", ""),
                      "parent_id": current["parent_id"] or "", "department_id": current["department_id"] or ""}
        return self.portal.render(visit, "console_category.html", status=status, nav="console", category=current,
                                  parents=parents, departments=departments, values=values, errors=errors or {},
                                  label_of=label_of)

    @page("GET", "/console/admin/categories/<category>")
    def console_category(self, visit: Visit, category: str) -> Response:
        return self._category_page(visit, category)

    @page("POST", "/console/admin/categories/<category>")
    def console_save_category(self, visit: Visit, category: str) -> Response:
        identity = self._admin(visit)
        visit.check_csrf()
        form = visit.request.form
        current = self._form_of(visit, category)
        body, errors = self._category_body(visit, form, current)
        if errors:
            return self._category_page(visit, category, values=dict(form), errors=errors, status=422)
        answer = self.portal.backend.save_category(identity, category, body, form.get("idem") or None)
        if answer.status == 404:
            raise NotFound()
        if not answer.ok:
            return self._category_page(visit, category, values=dict(form), errors=self._api_errors(visit, answer),
                                       status=422)
        visit.session.say("success", visit.gettext("La catégorie « {label} » est enregistrée.",
                                                   label=body["label"]["fr"]))
        return redirect(f"/console/admin/categories/{quote(category, safe='')}")

    @page("POST", "/console/admin/categories/<category>/delete")
    def console_delete_category(self, visit: Visit, category: str) -> Response:
        identity = self._admin(visit)
        visit.check_csrf()
        answer = self.portal.backend.delete_category(identity, category)
        if answer.status == 404:
            raise NotFound()
        if not answer.ok:
            message = visit.gettext("La catégorie n'est pas supprimée : {detail}", detail=answer.detail)
            return self._category_page(visit, category, errors={"_delete": message},
                                       status=409 if answer.status == 409 else 422)
        visit.session.say("success", visit.gettext("La catégorie est supprimée."))
        return redirect("/console/admin/categories")

    # -- departments

    @page("GET", "/console/admin/departments")
    def console_departments(self, visit: Visit) -> Response:
        identity = self._admin(visit)
        departments = self.portal.backend.departments(identity)
        uai = (visit.request.args.get("uai") or "").strip().upper()
        if uai:
            return redirect(f"/console/admin/establishments/{quote(uai, safe='')}")
        return self.portal.render(visit, "console_departments.html", nav="console", departments=departments,
                                  label_of=label_of)

    def _department_page(self, visit: Visit, department_id: str, *, errors: dict[str, str] | None = None,
                         status: int = 200) -> Response:
        identity = self._admin(visit)
        department = self.portal.backend.department(identity, department_id)
        return self.portal.render(visit, "console_department.html", status=status, nav="console",
                                  department=department, policies=POLICIES, errors=errors or {}, label_of=label_of)

    @page("GET", "/console/admin/departments/<department>")
    def console_department(self, visit: Visit, department: str) -> Response:
        return self._department_page(visit, department)

    @page("POST", "/console/admin/departments/<department>")
    def console_save_department(self, visit: Visit, department: str) -> Response:
        identity = self._admin(visit)
        visit.check_csrf()
        form = visit.request.form
        current = self.portal.backend.department(identity, department)
        errors: dict[str, str] = {}
        label_fr, label_en = _text(form.get("label_fr")), _text(form.get("label_en"))
        if not label_fr:
            errors["label_fr"] = visit.gettext("Indiquez le libellé en français.")
        policy = form.get("assignment_policy")
        if policy not in POLICIES:
            errors["assignment_policy"] = visit.gettext("Choisissez une règle d'attribution.")
        days_text = _text(form.get("closure_expiry_days"))
        days = int(days_text) if days_text.isdigit() else None
        if days_text and (days is None or not 1 <= days <= 3650):
            errors["closure_expiry_days"] = visit.gettext("Un nombre de jours entre 1 et 3650.")
        removed = set(form.getlist("remove_manager"))
        available = set(form.getlist("available"))
        managers = []
        for index, m in enumerate(current.get("managers") or []):
            if str(index) in removed:
                continue
            managers.append({k: v for k, v in {**m, "available": str(index) in available}.items() if v is not None})
        new_user = _text(form.get("new_user"))
        if new_user:
            added = {"user": new_user, "available": True}
            for name in ("name", "email", "establishment"):
                if _text(form.get(f"new_{name}")):
                    added[name] = _text(form.get(f"new_{name}"))
            managers.append(added)
        if errors:
            return self._department_page(visit, department, errors=errors, status=422)
        body = {"label": {"fr": label_fr, **({"en": label_en} if label_en else {})},
                "per_establishment": current.get("per_establishment", False), "assignment_policy": policy,
                "closure_expiry_days": days, "escalation_enabled": form.get("escalation_enabled") == "on",
                "managers": managers}
        answer = self.portal.backend.save_department(identity, department, body, form.get("idem") or None)
        if answer.status == 404:
            raise NotFound()
        if not answer.ok:
            found = {}
            for name, messages in answer.errors.items():
                target = {"label": "label_fr", "managers": "new_user"}.get(name.split(".")[0], name.split(".")[0])
                found[target] = visit.gettext("Refusé : {detail}", detail=" ".join(map(str, messages)))
            found.setdefault("_form", visit.gettext("Refusé : {detail}", detail=answer.detail) if answer.detail
                             else _refusal(visit, answer))
            return self._department_page(visit, department, errors=found, status=422)
        visit.session.say("success", visit.gettext("Le service « {label} » est enregistré.", label=label_fr))
        return redirect(f"/console/admin/departments/{quote(department, safe='')}")

    # -- an establishment's escalation settings

    def _establishment_page(self, visit: Visit, uai: str, *, values: dict[str, Any] | None = None,
                            errors: dict[str, str] | None = None, status: int = 200) -> Response:
        identity = self._admin(visit)
        backend = self.portal.backend
        answer, departments = backend.together(lambda: backend.establishment(identity, uai),
                                               lambda: backend.departments(identity))
        if not answer.ok:
            raise PageError(404 if answer.status in (404, 422) else answer.status,
                            visit.gettext("Cet établissement est inconnu : {detail}", detail=answer.detail))
        settings = answer.body
        values = values or {"enabled": settings.get("enabled"), "support_department_id":
                            settings.get("support_department_id"),
                            "first_response_hours": settings.get("first_response_hours") or ""}
        return self.portal.render(visit, "console_establishment.html", status=status, nav="console", uai=uai,
                                  settings=settings, values=values, errors=errors or {},
                                  departments=[d for d in departments if not d.get("per_establishment")],
                                  label_of=label_of)

    @page("GET", "/console/admin/establishments/<uai>")
    def console_establishment(self, visit: Visit, uai: str) -> Response:
        return self._establishment_page(visit, uai)

    @page("POST", "/console/admin/establishments/<uai>")
    def console_save_establishment(self, visit: Visit, uai: str) -> Response:
        identity = self._admin(visit)
        visit.check_csrf()
        form = visit.request.form
        values = {"enabled": form.get("enabled") == "on", "support_department_id": _text(form.get("support_department_id")),
                  "first_response_hours": _text(form.get("first_response_hours"))}
        errors: dict[str, str] = {}
        hours = values["first_response_hours"]
        if hours and not hours.isdigit():
            errors["first_response_hours"] = visit.gettext("Un nombre d'heures.")
        if not values["support_department_id"]:
            errors["support_department_id"] = visit.gettext("Choisissez le support central.")
        if errors:
            return self._establishment_page(visit, uai, values=values, errors=errors, status=422)
        body = {"enabled": values["enabled"], "support_department_id": values["support_department_id"],
                "first_response_hours": int(hours) if hours else None}
        answer = self.portal.backend.save_establishment(identity, uai, body, form.get("idem") or None)
        if not answer.ok:
            found = {name.split(".")[0]: visit.gettext("Refusé : {detail}", detail=" ".join(map(str, messages)))
                     for name, messages in answer.errors.items()}
            found.setdefault("_form", visit.gettext("Refusé : {detail}", detail=answer.detail))
            return self._establishment_page(visit, uai, values=values, errors=found, status=422)
        visit.session.say("success", visit.gettext("Les réglages de l'établissement {uai} sont enregistrés.", uai=uai))
        return redirect(f"/console/admin/establishments/{quote(uai, safe='')}")
