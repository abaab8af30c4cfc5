"""The catalogue as the HTTP API reads and changes it.

Reading: the category tree in the caller's language, filtered by words of its labels
(accents and case ignored), and departments as admins edit them.

Changing: each change is a pure function from the current catalogue to the would-be
one; ``CatalogueEditor.change`` applies it in one transaction, under one lock (so two
admins' changes are decided one after the other, each on the other's result), refuses
it if it would add a problem (``Catalogue.problems``), stores it and announces the new
snapshot to the other services in the same transaction.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import psycopg

from services.routing import storage
from services.routing.catalogue import Catalogue, Category, Department, Faq, Manager
from shared.db import Connection

LANGUAGES = ("fr", "en")


class NotFound(Exception):
    """No such category or department (HTTP 404)."""


class Conflict(Exception):
    """The change is not possible as things are (HTTP 409)."""


class InvalidChange(Exception):
    """The change would make the catalogue unusable; ``errors`` says why, by field (HTTP 422)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("the change would leave the catalogue inconsistent: "
                         + "; ".join(m for messages in errors.values() for m in messages))
        self.errors = errors


# -- reading ------------------------------------------------------------------------------


def category_tree(catalogue: Catalogue, language: str, q: str | None = None) -> list[dict[str, Any]]:
    """The top-level categories with their sub-categories, in ``language``.

    With ``q``, only the categories whose label (as shown) holds every word of it, and
    the path down to each: their ancestors, without the ancestors' other children.
    """
    keep: set[str] | None = None
    words = fold(q or "").split()
    if words:
        keep = set()
        for category in catalogue.categories.values():
            label = fold(_label(category, language))
            if all(word in label for word in words):
                keep.update(_path(catalogue, category.id))
    children = _children(catalogue)
    return [_node(catalogue, c, language, children, keep) for c in children.get(None, []) if _kept(c, keep)]


def category_detail(catalogue: Catalogue, category_id: str, language: str) -> dict[str, Any]:
    """One category in ``language``, with its FAQ, sub-categories, policy and delay."""
    category = catalogue.categories.get(category_id)
    if category is None:
        raise NotFound(f"no category {category_id!r}")
    node = _node(catalogue, category, language, _children(catalogue), None)
    return {**node, "assignment_policy": category.assignment_policy,
            "closure_expiry_days": category.closure_expiry_days}


def category_form(category: Category) -> dict[str, Any]:
    """A category as stored, in both languages (what an admin sends back)."""
    return {
        "id": category.id,
        "label": {"fr": category.label_fr, "en": category.label_en},
        "parent_id": category.parent_id,
        "department_id": category.department_id,
        "faq": [{"id": f.id, "question": {"fr": f.question_fr, "en": f.question_en},
                 "answer": {"fr": f.answer_fr, "en": f.answer_en}} for f in category.faq],
        "assignment_policy": category.assignment_policy,
        "closure_expiry_days": category.closure_expiry_days,
    }


def department_view(department: Department) -> dict[str, Any]:
    return {
        "id": department.id,
        "label": {"fr": department.label_fr, "en": department.label_en},
        "per_establishment": department.per_establishment,
        "assignment_policy": department.assignment_policy,
        "closure_expiry_days": department.closure_expiry_days,
        "escalation_enabled": department.escalation_enabled,
        "managers": [
            {"user": m.user_id, "name": m.name, "email": m.email, "establishment": m.establishment or None,
             "available": m.available}
            for m in department.managers
        ],
    }


def managed_by(catalogue: Catalogue, user_id: str) -> list[Department]:
    """The departments ``user_id`` manages (in any of their establishment teams)."""
    return [d for d in catalogue.departments.values() if any(m.user_id == user_id for m in d.managers)]


def fold(text: str) -> str:
    """``text`` without accents or case, for matching (« Scolarité » ~ « scolarite »)."""
    text = text.replace("œ", "oe").replace("Œ", "OE").replace("æ", "ae").replace("Æ", "AE").replace("’", "'")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _label(category: Category, language: str) -> str:
    return (category.label_en if language == "en" else None) or category.label_fr


def _children(catalogue: Catalogue) -> dict[str | None, list[Category]]:
    children: dict[str | None, list[Category]] = {}
    for category in sorted(catalogue.categories.values(), key=lambda c: (c.position, c.id)):
        children.setdefault(category.parent_id, []).append(category)
    return children


def _path(catalogue: Catalogue, category_id: str) -> list[str]:
    """The category and its ancestors (stopping at a cycle, which a valid catalogue has not)."""
    path: list[str] = []
    current: str | None = category_id
    while current is not None and current in catalogue.categories and current not in path:
        path.append(current)
        current = catalogue.categories[current].parent_id
    return path


def _faq_with_ancestors(catalogue: Catalogue, category: Category) -> list[tuple[str, Faq]]:
    """The category's FAQ entries, then its parent's, and so on up the tree, each with
    the id of the category it belongs to."""
    entries: list[tuple[str, Faq]] = []
    seen: set[str] = set()
    for owner in _path(catalogue, category.id):
        for entry in catalogue.categories[owner].faq:
            if entry.id not in seen:
                seen.add(entry.id)
                entries.append((owner, entry))
    return entries


def _kept(category: Category, keep: set[str] | None) -> bool:
    return keep is None or category.id in keep


def _node(catalogue: Catalogue, category: Category, language: str,
          children: dict[str | None, list[Category]], keep: set[str] | None,
          seen: frozenset[str] = frozenset()) -> dict[str, Any]:
    seen = seen | {category.id}
    return {
        "id": category.id,
        "label": _label(category, language),
        "parent_id": category.parent_id,
        "department_id": category.department_id,
        "children": [
            _node(catalogue, child, language, children, keep, seen)
            for child in children.get(category.id, []) if _kept(child, keep) and child.id not in seen
        ],
        # A sub-category shows its parent's FAQ after its own (each entry once).
        "faq": [
            {"id": f.id,
             "question": (f.question_en if language == "en" else None) or f.question_fr,
             "answer": (f.answer_en if language == "en" else None) or f.answer_fr,
             **({"inherited_from": owner} if owner != category.id else {})}
            for owner, f in _faq_with_ancestors(catalogue, category)
        ],
    }


# -- changing: pure functions from the catalogue to the would-be one ----------------------


def category_from(body: dict[str, Any], position: int) -> Category:
    """A category from a validated body (``schemas.CategoryFields``)."""
    return Category(
        id=body["id"], label_fr=body["label"]["fr"], label_en=body["label"]["en"],
        parent_id=body["parent_id"], department_id=body["department_id"],
        assignment_policy=body["assignment_policy"], closure_expiry_days=body["closure_expiry_days"],
        position=position,
        faq=tuple(Faq(f["id"], f["question"]["fr"], f["answer"]["fr"], f["question"]["en"], f["answer"]["en"])
                  for f in body["faq"]),
    )


def department_from(body: dict[str, Any]) -> Department:
    """A department from a validated body (``schemas.DepartmentFields``)."""
    errors: dict[str, list[str]] = {}
    for index, m in enumerate(body["managers"]):
        if m["establishment"] and not body["per_establishment"]:
            errors[f"managers.{index}.establishment"] = [
                "only managers of a per-establishment department have an establishment"]
    if errors:
        raise InvalidChange(errors)
    return Department(
        id=body["id"], label_fr=body["label"]["fr"], label_en=body["label"]["en"],
        per_establishment=body["per_establishment"], assignment_policy=body["assignment_policy"],
        closure_expiry_days=body["closure_expiry_days"], escalation_enabled=body["escalation_enabled"],
        # in the order they are stored and read back
        managers=tuple(sorted(
            (Manager(m["user"], m["name"], m["email"], m["establishment"] or "", m["available"])
             for m in body["managers"]),
            key=lambda m: (m.establishment, m.user_id),
        )),
    )


def add_category(catalogue: Catalogue, body: dict[str, Any]) -> Catalogue:
    if body["id"] in catalogue.categories:
        raise Conflict(f"a category {body['id']!r} already exists")
    return _with_category(catalogue, category_from(body, _last_position(catalogue)))


def update_category(catalogue: Catalogue, category_id: str, body: dict[str, Any]) -> Catalogue:
    current = catalogue.categories.get(category_id)
    if current is None:
        raise NotFound(f"no category {category_id!r}")
    if body["id"] not in (None, category_id):
        raise InvalidChange({"id": ["must be the id in the path: a category cannot be renamed"]})
    position = current.position
    if body["parent_id"] != current.parent_id:
        position = _last_position(catalogue)  # moved: last among its new siblings
    return _with_category(catalogue, category_from({**body, "id": category_id}, position))


def no_open_tickets(category_id: str) -> Callable[[Connection], None]:
    """A guard refusing to delete a category that open tickets use (they would show its
    raw id): move or close them first."""

    def guard(conn: Connection) -> None:
        count = storage.open_tickets_in(conn, category_id)
        if count:
            raise Conflict(f"category {category_id!r} is used by {count} open ticket(s):"
                           " move them to another category or close them first")

    return guard


def remove_category(catalogue: Catalogue, category_id: str) -> Catalogue:
    if category_id not in catalogue.categories:
        raise NotFound(f"no category {category_id!r}")
    children = sorted(c.id for c in catalogue.categories.values() if c.parent_id == category_id)
    if children:
        raise Conflict(f"category {category_id!r} has sub-categories ({', '.join(children)}):"
                       " delete or move them first")
    return replace(catalogue, categories={k: v for k, v in catalogue.categories.items() if k != category_id})


def add_department(catalogue: Catalogue, body: dict[str, Any]) -> Catalogue:
    if body["id"] in catalogue.departments:
        raise Conflict(f"a department {body['id']!r} already exists")
    return _with_department(catalogue, department_from(body))


def update_department(catalogue: Catalogue, department_id: str, body: dict[str, Any]) -> Catalogue:
    if department_id not in catalogue.departments:
        raise NotFound(f"no department {department_id!r}")
    if body["id"] not in (None, department_id):
        raise InvalidChange({"id": ["must be the id in the path: a department cannot be renamed"]})
    return _with_department(catalogue, department_from({**body, "id": department_id}))


def set_availability(catalogue: Catalogue, department_id: str, user_id: str, available: bool) -> Catalogue:
    """``user_id`` available or not in every team of the department they belong to."""
    department = catalogue.departments.get(department_id)
    if department is None or not any(m.user_id == user_id for m in department.managers):
        raise NotFound(f"you do not manage a department {department_id!r}")
    managers = tuple(replace(m, available=available) if m.user_id == user_id else m for m in department.managers)
    return _with_department(catalogue, replace(department, managers=managers))


def _last_position(catalogue: Catalogue) -> int:
    return max((c.position for c in catalogue.categories.values()), default=-1) + 1


def _with_category(catalogue: Catalogue, category: Category) -> Catalogue:
    taken = {f.id: c.id for c in catalogue.categories.values() if c.id != category.id for f in c.faq}
    errors: dict[str, list[str]] = {}
    seen: set[str] = set()
    for index, entry in enumerate(category.faq):
        if entry.id in seen:
            errors.setdefault(f"faq.{index}.id", []).append(f"faq id {entry.id!r} is listed twice")
        elif entry.id in taken:
            errors.setdefault(f"faq.{index}.id", []).append(
                f"faq id {entry.id!r} is already used in category {taken[entry.id]!r}")
        seen.add(entry.id)
    if errors:
        raise InvalidChange(errors)
    return replace(catalogue, categories={**catalogue.categories, category.id: category})


def _with_department(catalogue: Catalogue, department: Department) -> Catalogue:
    return replace(catalogue, departments={**catalogue.departments, department.id: department})


# Which field of the request a problem of ``Catalogue.problems()`` is about.
_PROBLEM_FIELDS = (
    (re.compile(r"unknown parent|cycle"), "parent_id"),
    (re.compile(r"unknown department|no department"), "department_id"),
    (re.compile(r"assignment policy"), "assignment_policy"),
    (re.compile(r"manager"), "managers"),
    (re.compile(r"must be global"), "per_establishment"),
)


def check(before: Catalogue, after: Catalogue) -> None:
    """Refuse ``after`` if it has a problem ``before`` had not (one already there, say
    from a hand-edited database, must not block every other change)."""
    known = set(before.problems())
    new = [p for p in after.problems() if p not in known]
    if not new:
        return
    errors: dict[str, list[str]] = {}
    for problem in new:
        field = next((f for pattern, f in _PROBLEM_FIELDS if pattern.search(problem)), "_catalogue")
        errors.setdefault(field, []).append(problem)
    raise InvalidChange(errors)


# -- applying -----------------------------------------------------------------------------


class CatalogueEditor:
    """Reads the stored catalogue, and changes it one transaction at a time."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def read(self) -> Catalogue:
        with self.pool.connection() as conn:
            return storage.load_catalogue(conn)

    def change(self, edit: Callable[[Catalogue], Catalogue],
               guard: Callable[[Connection], None] | None = None) -> Catalogue:
        """Apply ``edit`` to the current catalogue, check, store and announce the result,
        all in one transaction; the catalogue afterwards (unchanged: nothing written).
        ``guard``, if given, may refuse the change from what the database holds."""
        try:
            with self.pool.connection() as conn, conn.transaction():
                storage.lock_catalogue(conn)
                if guard is not None:
                    guard(conn)
                before = storage.load_catalogue(conn)
                after = edit(before)
                check(before, after)
                if after != before:
                    storage.replace_catalogue(conn, after)  # announces, in this transaction
                return after
        except (psycopg.errors.IntegrityError, psycopg.errors.SerializationFailure,
                psycopg.errors.DeadlockDetected) as exc:
            # Only when something else (a configuration load) rewrote the catalogue at
            # the same moment: nothing was written.
            raise Conflict(f"the catalogue changed at the same time; try again ({type(exc).__name__})") from None
