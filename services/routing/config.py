"""Loading a whole routing configuration (departments, managers, categories, FAQ) from a
YAML file, as a deployment keeps it in version control.

Validated before anything is written, every error saying where it is; then applied in
one transaction, replacing what was there, so loading the same file twice changes
nothing and a bad file changes nothing.

```yaml
departments:
  - id: dnum-ent
    label: {fr: "DNUM - ENT", en: "IT department - ENT"}
    assignment_policy: least_loaded      # none | round_robin | least_loaded
    closure_expiry_days: 14
    managers:
      - {user: mleroy, name: Marc Leroy, email: marc.leroy@univ.example}
  - id: referents-ent
    label: {fr: "Référents ENT"}
    per_establishment: true
    escalation_enabled: true
    managers:
      - {user: pdurand, name: Paul Durand, email: p.durand@ac.example, establishment: 0540001A}
categories:
  - id: ent
    label: {fr: "ENT", en: "Digital workspace"}
    department: dnum-ent
    faq:
      - {id: ent-mdp, question: {fr: "J'ai perdu mon mot de passe"}, answer: {fr: "..."}}
  - id: ent-connexion
    parent: ent                          # no department: inherited from ent
    label: {fr: "Problème de connexion"}
```
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from services.routing.catalogue import POLICIES, TRIAGE, Catalogue, Category, Department, Faq, Manager

DEPARTMENT_KEYS = {"id", "label", "per_establishment", "assignment_policy", "closure_expiry_days",
                   "escalation_enabled", "managers"}
MANAGER_KEYS = {"user", "name", "email", "establishment", "available"}
CATEGORY_KEYS = {"id", "label", "parent", "department", "assignment_policy", "closure_expiry_days", "faq"}
FAQ_KEYS = {"id", "question", "answer"}
LANGUAGES = ("fr", "en")


class ConfigError(Exception):
    """A configuration that cannot be loaded; ``problems`` says what and where."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without YAML 1.1's silent surprises in an ops file.

    - A key given twice in one mapping is an error (PyYAML keeps the last one silently,
      so a second ``categories:`` block would drop the first).
    - Only plain decimal numbers are integers: ``0540001`` (octal in YAML 1.1), ``1_000``
      or ``1:20`` (base 60) stay the text they are, as do floats and dates, since every
      number this file holds is a whole number of days and every id is a text.
    """


def _no_duplicate_keys(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, list | dict):
            continue  # unhashable: construct_mapping reports it
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark,
                f"found the key {key!r} twice (first on line {seen[key].start_mark.line + 1})", key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


def _decimal_or_text(loader: _Loader, node: yaml.ScalarNode) -> int | str:
    text = loader.construct_scalar(node)
    return int(text) if re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", text) else text


def _text_as_written(loader: _Loader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)
_Loader.add_constructor("tag:yaml.org,2002:int", _decimal_or_text)
_Loader.add_constructor("tag:yaml.org,2002:float", _text_as_written)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _text_as_written)


def read_config(path: Path) -> Catalogue:
    """The catalogue a YAML file describes, or ``ConfigError`` listing every problem."""
    try:
        document = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from None
    return parse_config(document, str(path))


def parse_config(document: Any, source: str = "configuration") -> Catalogue:
    """The catalogue a parsed YAML document describes, or ``ConfigError`` listing every
    problem found, each prefixed with where it is (``categories[3] (wifi): ...``).

    A ``triage`` department is added when the document has none: nothing is ever left
    unrouted.
    """
    problems: list[str] = []
    if not isinstance(document, dict):
        raise ConfigError(source, ["the file must be a mapping with 'departments' and 'categories'"])
    unknown = set(document) - {"departments", "categories"}
    if unknown:
        problems.append(f"unknown top-level keys: {', '.join(sorted(map(str, unknown)))}")

    departments: dict[str, Department] = {}
    first_seen: dict[str, str] = {}
    for index, raw in enumerate(_list(document.get("departments"), "departments", problems)):
        where = f"departments[{index}]"
        department = _department(raw, where, problems)
        if department is None:
            continue
        where = f"{where} ({department.id})"
        if department.id in departments:
            problems.append(
                f"{where}: duplicate department id {department.id!r} (first at {first_seen[department.id]})"
            )
            continue
        departments[department.id] = department
        first_seen[department.id] = where
    if TRIAGE not in departments:
        # Nothing is ever left unrouted: a triage team exists even if the file forgets it.
        departments[TRIAGE] = Department(TRIAGE, "Tri des demandes", "Triage")

    categories: dict[str, Category] = {}
    first_seen = {}
    faq_seen: dict[str, str] = {}
    for index, raw in enumerate(_list(document.get("categories"), "categories", problems)):
        where = f"categories[{index}]"
        category = _category(raw, where, index, problems, faq_seen)
        if category is None:
            continue
        where = f"{where} ({category.id})"
        if category.id in categories:
            problems.append(f"{where}: duplicate category id {category.id!r} (first at {first_seen[category.id]})")
            continue
        categories[category.id] = category
        first_seen[category.id] = where

    catalogue = Catalogue(departments, categories)
    problems += catalogue.problems()
    if problems:
        raise ConfigError(source, problems)
    return catalogue


def _list(value: Any, name: str, problems: list[str]) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{name} must be a list")
        return []
    return value


def _text(raw: dict[str, Any], key: str, where: str, problems: list[str], required: bool = True) -> str | None:
    value = raw.get(key)
    if value is None:
        if required:
            problems.append(f"{where}: {key} is required")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # an id written as a plain number, e.g. 2024
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: {key} must be a non-empty text")
        return None
    return value.strip()


def _labels(raw: dict[str, Any], key: str, where: str, problems: list[str]) -> tuple[str | None, str | None]:
    """A text in French, and maybe in English: ``key: "..."`` or ``key: {fr: ..., en: ...}``."""
    value = raw.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip(), None
    if not isinstance(value, dict) or not isinstance(value.get("fr"), str) or not value["fr"].strip():
        problems.append(f"{where}: {key} needs a French text ({key}: {{fr: ..., en: ...}})")
        return None, None
    unknown = set(value) - set(LANGUAGES)
    if unknown:
        problems.append(f"{where}: {key}: unknown languages {', '.join(sorted(map(str, unknown)))} (fr, en)")
    english = value.get("en")
    if english is not None and (not isinstance(english, str) or not english.strip()):
        problems.append(f"{where}: {key}: en must be a non-empty text")
        english = None
    return value["fr"].strip(), english.strip() if english else None


def _policy(raw: dict[str, Any], where: str, problems: list[str]) -> str | None:
    policy = raw.get("assignment_policy")
    if policy is not None and policy not in POLICIES:
        problems.append(f"{where}: unknown assignment policy {policy!r} (one of {', '.join(POLICIES)})")
        return None
    return policy


def _days(raw: dict[str, Any], where: str, problems: list[str]) -> int | None:
    days = raw.get("closure_expiry_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
        problems.append(f"{where}: closure_expiry_days must be a whole number of days, at least 1 (not {days!r})")
        return None
    return days


def _flag(raw: dict[str, Any], key: str, default: bool, where: str, problems: list[str]) -> bool:
    """A yes/no setting; a quoted "false" is refused rather than read as true."""
    value = raw.get(key, default)
    if not isinstance(value, bool):
        problems.append(f"{where}: {key} must be true or false (not {value!r})")
        return default
    return value


def _check_keys(raw: dict[str, Any], allowed: set[str], where: str, problems: list[str]) -> None:
    unknown = set(raw) - allowed
    if unknown:
        problems.append(f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))}")


def _department(raw: Any, where: str, problems: list[str]) -> Department | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    department_id = _text(raw, "id", where, problems)
    where = f"{where} ({department_id})" if department_id else where
    _check_keys(raw, DEPARTMENT_KEYS, where, problems)
    label_fr, label_en = _labels(raw, "label", where, problems)
    # Every field is checked even when an earlier one is wrong: all problems at once.
    per_establishment = _flag(raw, "per_establishment", False, where, problems)
    policy = _policy(raw, where, problems) or "none"
    days = _days(raw, where, problems)
    escalation_enabled = _flag(raw, "escalation_enabled", False, where, problems)
    managers = []
    for index, manager in enumerate(_list(raw.get("managers"), f"{where}: managers", problems)):
        at = f"{where}: managers[{index}]"
        if not isinstance(manager, dict):
            problems.append(f"{at}: must be a mapping")
            continue
        _check_keys(manager, MANAGER_KEYS, at, problems)
        user = _text(manager, "user", at, problems)
        name = _text(manager, "name", at, problems, required=False)
        email = _text(manager, "email", at, problems, required=False)
        establishment = _text(manager, "establishment", at, problems, required=False) or ""
        available = _flag(manager, "available", True, at, problems)
        if user:
            managers.append(Manager(user, name, email, establishment, available))
    if not department_id or not label_fr:
        return None
    return Department(
        department_id, label_fr, label_en, per_establishment, policy, days, escalation_enabled, tuple(managers)
    )


def _category(
    raw: Any, where: str, position: int, problems: list[str], faq_seen: dict[str, str]
) -> Category | None:
    """One category; ``faq_seen`` (FAQ id -> where it first was) finds FAQ ids used twice."""
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    category_id = _text(raw, "id", where, problems)
    where = f"{where} ({category_id})" if category_id else where
    _check_keys(raw, CATEGORY_KEYS, where, problems)
    label_fr, label_en = _labels(raw, "label", where, problems)
    parent = _text(raw, "parent", where, problems, required=False)
    department = _text(raw, "department", where, problems, required=False)
    policy = _policy(raw, where, problems)
    days = _days(raw, where, problems)
    faq = []
    for index, entry in enumerate(_list(raw.get("faq"), f"{where}: faq", problems)):
        at = f"{where}: faq[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{at}: must be a mapping")
            continue
        _check_keys(entry, FAQ_KEYS, at, problems)
        entry_id = _text(entry, "id", at, problems)
        question_fr, question_en = _labels(entry, "question", at, problems)
        answer_fr, answer_en = _labels(entry, "answer", at, problems)
        if entry_id in faq_seen:
            problems.append(f"{at}: duplicate faq id {entry_id!r} (first at {faq_seen[entry_id]})")
        elif entry_id:
            faq_seen[entry_id] = at
        if entry_id and question_fr and answer_fr:
            faq.append(Faq(entry_id, question_fr, answer_fr, question_en, answer_en))
    if not category_id or not label_fr:
        return None
    return Category(category_id, label_fr, label_en, parent, department, policy, days, position, tuple(faq))
