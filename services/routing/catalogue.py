"""The category tree, departments and managers, and where a ticket goes (pure: no I/O).

A *team* is who handles a ticket: a global department (``dnum-ent``), or the referents
of one establishment in a per-establishment department (``referents-ent:0540001A``).
The team id is what tickets record as the ticket's department, so access rules and
notifications follow the team, not the whole department.
"""

from __future__ import annotations

from dataclasses import dataclass, field

POLICIES = ("none", "round_robin", "least_loaded")
TRIAGE = "triage"
DEFAULT_CLOSURE_EXPIRY_DAYS = 14


@dataclass(frozen=True)
class Manager:
    """A member of a department (a *gestionnaire*, or a local referent)."""

    user_id: str
    name: str | None = None
    email: str | None = None
    establishment: str = ""  # '' in a global department
    available: bool = True


@dataclass(frozen=True)
class Department:
    """A service handling tickets: one global team, or one team per establishment."""

    id: str
    label_fr: str
    label_en: str | None = None
    per_establishment: bool = False
    assignment_policy: str = "none"
    closure_expiry_days: int | None = None
    escalation_enabled: bool = False
    managers: tuple[Manager, ...] = ()


@dataclass(frozen=True)
class Faq:
    """A FAQ entry shown with its category ("Éléments de FAQs en liaison avec cette catégorie")."""

    id: str
    question_fr: str
    answer_fr: str
    question_en: str | None = None
    answer_en: str | None = None


@dataclass(frozen=True)
class Category:
    """A node of the category tree; ``None`` fields are inherited (department) or fall
    back to the department's settings (policy, closure expiry)."""

    id: str
    label_fr: str
    label_en: str | None = None
    parent_id: str | None = None
    department_id: str | None = None  # None: inherited from the parent
    assignment_policy: str | None = None
    closure_expiry_days: int | None = None
    position: int = 0
    faq: tuple[Faq, ...] = ()


@dataclass(frozen=True)
class Route:
    """Where a ticket goes, and why (for the logs)."""

    team: str
    department_id: str
    policy: str
    closure_expiry_days: int
    reason: str


def team_id(department: Department, establishment: str | None) -> str:
    """The team of ``department`` that handles requesters of ``establishment``."""
    return f"{department.id}:{establishment}" if department.per_establishment else department.id


@dataclass(frozen=True)
class Catalogue:
    """Departments and categories by id; ``problems()`` says whether it is usable."""

    departments: dict[str, Department] = field(default_factory=dict)
    categories: dict[str, Category] = field(default_factory=dict)

    # -- checks

    def problems(self) -> list[str]:
        """Everything that makes this catalogue unusable, each saying where."""
        found: list[str] = []
        for department in self.departments.values():
            if ":" in department.id:
                # Team ids are "department:UAI"; a colon in the id would make them ambiguous.
                found.append(f"department {department.id}: an id must not contain ':'")
            if department.id == TRIAGE and department.per_establishment:
                found.append(f"department {TRIAGE}: must be global (it takes what no other team can)")
            if department.assignment_policy not in POLICIES:
                found.append(f"department {department.id}: unknown assignment policy {department.assignment_policy!r}")
            seen: set[tuple[str, str]] = set()
            for manager in department.managers:
                key = (manager.establishment, manager.user_id)
                if key in seen:
                    found.append(f"department {department.id}: manager {manager.user_id} listed twice")
                seen.add(key)
                if department.per_establishment and not manager.establishment:
                    found.append(
                        f"department {department.id}: manager {manager.user_id} needs an establishment"
                        " (the department is per establishment)"
                    )
                if not department.per_establishment and manager.establishment:
                    found.append(
                        f"department {department.id}: manager {manager.user_id} has an establishment"
                        f" ({manager.establishment}) but the department is global"
                    )
        for category in self.categories.values():
            where = f"category {category.id}"
            if category.parent_id is not None and category.parent_id not in self.categories:
                found.append(f"{where}: unknown parent {category.parent_id!r}")
            if category.department_id is not None and category.department_id not in self.departments:
                found.append(f"{where}: unknown department {category.department_id!r}")
            if category.assignment_policy is not None and category.assignment_policy not in POLICIES:
                found.append(f"{where}: unknown assignment policy {category.assignment_policy!r}")
            chain = self._ancestry(category.id)
            if chain is None:
                found.append(f"{where}: its parents form a cycle ({' -> '.join(self._cycle_path(category.id))})")
            elif not any(self.categories[c].department_id for c in chain if c in self.categories):
                found.append(f"{where}: no department on it or any category above it")
        return found

    def _ancestry(self, category_id: str) -> list[str] | None:
        """The category and its parents, nearest first; None on a cycle."""
        chain: list[str] = []
        current: str | None = category_id
        while current is not None and current in self.categories:
            if current in chain:
                return None
            chain.append(current)
            current = self.categories[current].parent_id
        return chain

    def _cycle_path(self, category_id: str) -> list[str]:
        """The ids met going up from ``category_id`` until one repeats (for messages)."""
        path: list[str] = []
        current: str | None = category_id
        while current is not None and current in self.categories and current not in path:
            path.append(current)
            current = self.categories[current].parent_id
        return path + ([current] if current is not None else [])

    def _deciding_chain(self, category_id: str) -> list[Category] | None:
        """The category and its parents up to the one that names the department, nearest
        first; None for an unknown category or a cycle.

        Policy and closure expiry overrides are looked for along this chain only: a
        parent's override is about the parent's department, not another one a
        sub-category sends its tickets to.
        """
        chain = self._ancestry(category_id) if category_id in self.categories else None
        if not chain:
            return None
        deciding: list[Category] = []
        for current in chain:
            deciding.append(self.categories[current])
            if self.categories[current].department_id:
                break
        return deciding

    # -- routing

    def route(self, category_id: str, establishment: str | None) -> Route:
        """The team for a ticket of this category filed by someone of this establishment."""
        if category_id not in self.categories:
            return self._triage(f"unknown category {category_id!r}")
        nearest = self._deciding_chain(category_id)
        if not nearest:
            return self._triage(f"category {category_id!r}: its parents form a cycle")
        department = self.departments.get(next((c.department_id for c in nearest if c.department_id), ""))
        if department is None:
            return self._triage(f"category {category_id!r} has no department")
        policy = next((c.assignment_policy for c in nearest if c.assignment_policy), department.assignment_policy)
        expiry = next(
            (c.closure_expiry_days for c in nearest if c.closure_expiry_days),
            department.closure_expiry_days or DEFAULT_CLOSURE_EXPIRY_DAYS,
        )
        if department.per_establishment:
            if not establishment or not any(m.establishment == establishment for m in department.managers):
                return self._triage(f"{department.id} has no referents for establishment {establishment!r}")
            reason = f"category {category_id} -> {department.id}, referents of {establishment}"
        else:
            reason = f"category {category_id} -> {department.id}"
        return Route(team_id(department, establishment), department.id, policy, expiry, reason)

    def _triage(self, why: str) -> Route:
        """The route to the triage team, with its policy (none if it is not configured)."""
        triage = self.departments.get(TRIAGE)
        policy = triage.assignment_policy if triage else "none"
        expiry = (triage.closure_expiry_days if triage else None) or DEFAULT_CLOSURE_EXPIRY_DAYS
        return Route(TRIAGE, TRIAGE, policy, expiry, f"triage: {why}")

    def team_managers(self, team: str) -> list[Manager]:
        """The managers of a team (as ``teams()`` lists them); [] for an unknown team."""
        department_id, _, establishment = team.partition(":")
        department = self.departments.get(department_id)
        if department is None:
            return []
        if not department.per_establishment:
            return list(department.managers) if not establishment else []
        if not establishment:
            return []
        return [m for m in department.managers if m.establishment == establishment]

    def teams(self) -> dict[str, tuple[Department, list[Manager]]]:
        """Every team with its managers: what the other services need to know."""
        teams: dict[str, tuple[Department, list[Manager]]] = {}
        for department in self.departments.values():
            if not department.per_establishment:
                teams[department.id] = (department, list(department.managers))
                continue
            for establishment in sorted({m.establishment for m in department.managers}):
                teams[team_id(department, establishment)] = (
                    department, [m for m in department.managers if m.establishment == establishment]
                )
        return teams


def choose_assignee(
    policy: str, managers: list[Manager], last_user_id: str | None, loads: dict[str, int]
) -> tuple[Manager | None, str]:
    """Pick the manager a policy gives the ticket to, and say why."""
    available = sorted((m for m in managers if m.available), key=lambda m: m.user_id)
    if policy == "none":
        return None, "policy none: the ticket stays free"
    if not available:
        return None, f"policy {policy}: no available manager, the ticket stays free"
    if policy == "round_robin":
        after = [m for m in available if last_user_id is not None and m.user_id > last_user_id]
        chosen = (after or available)[0]
        return chosen, f"round_robin: next after {last_user_id or 'nobody'} among {len(available)} available"
    if policy == "least_loaded":
        chosen = min(available, key=lambda m: (loads.get(m.user_id, 0), m.user_id))
        return chosen, f"least_loaded: {loads.get(chosen.user_id, 0)} open tickets, the fewest of {len(available)}"
    return None, f"unknown policy {policy!r}: the ticket stays free"
