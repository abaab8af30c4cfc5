"""The YAML routing configuration: every problem reported with where it is, all at once;
the shipped example loads (``services.routing.config``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from services.routing.catalogue import TRIAGE
from services.routing.config import ConfigError, parse_config, read_config

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "config" / "example.yaml"


def valid() -> dict[str, Any]:
    """A small valid document each test breaks in one place."""
    return {
        "departments": [
            {"id": "dnum-ent", "label": {"fr": "DNUM - ENT", "en": "IT - ENT"}, "assignment_policy": "least_loaded",
             "managers": [{"user": "mleroy", "name": "Marc Leroy", "email": "marc.leroy@univ.example"}]},
            {"id": "referents-ent", "label": {"fr": "Référents ENT"}, "per_establishment": True,
             "escalation_enabled": True,
             "managers": [{"user": "smartin", "establishment": "0540001A"}]},
            {"id": "triage", "label": "Tri des demandes"},
        ],
        "categories": [
            {"id": "ent", "label": {"fr": "ENT", "en": "Digital workspace"}, "department": "dnum-ent",
             "faq": [{"id": "faq-mdp", "question": {"fr": "Mot de passe perdu ?", "en": "Lost password?"},
                      "answer": {"fr": "Cliquez sur « Mot de passe oublié ».", "en": "Click « Forgot password »."}}]},
            {"id": "ent-connexion", "label": {"fr": "Problème de connexion"}, "parent": "ent"},
            {"id": "wifi", "label": {"fr": "Wi-Fi (eduroam)"}, "department": "referents-ent",
             "closure_expiry_days": 7},
        ],
    }


def problems_of(document: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "test.yaml")
    assert caught.value.source == "test.yaml"
    assert str(caught.value).startswith("test.yaml: ")
    return caught.value.problems


def with_change(path: str, value: Any) -> dict[str, Any]:
    """``valid()`` with one value set, e.g. ``categories.1.parent``."""
    document = valid()
    *steps, last = path.split(".")
    target: Any = document
    for step in steps:
        target = target[int(step)] if isinstance(target, list) else target[step]
    target[int(last) if isinstance(target, list) else last] = value
    return document


def test_the_valid_document_parses():
    catalogue = parse_config(valid())
    assert sorted(catalogue.departments) == ["dnum-ent", "referents-ent", TRIAGE]
    assert list(catalogue.categories) == ["ent", "ent-connexion", "wifi"]
    ent = catalogue.categories["ent"]
    assert (ent.label_fr, ent.label_en, ent.position) == ("ENT", "Digital workspace", 0)
    assert ent.faq[0].question_en == "Lost password?"
    assert catalogue.categories["wifi"].position == 2
    referents = catalogue.departments["referents-ent"]
    assert referents.per_establishment and referents.escalation_enabled
    assert referents.managers[0].establishment == "0540001A"
    assert catalogue.departments[TRIAGE].label_fr == "Tri des demandes"
    assert catalogue.route("ent-connexion", None).team == "dnum-ent"


def test_triage_is_added_when_absent():
    document = valid()
    del document["departments"][2]
    triage = parse_config(document).departments[TRIAGE]
    assert (triage.label_fr, triage.label_en, triage.per_establishment, triage.managers) == (
        "Tri des demandes", "Triage", False, ())


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("categories.1.parent", "entt",
         "category ent-connexion: unknown parent 'entt'"),
        ("categories.0.department", "dnum",
         "category ent: unknown department 'dnum'"),
        ("categories.2.department", None,
         "category wifi: no department on it or any category above it"),
        ("departments.0.assignment_policy", "fastest",
         "departments[0] (dnum-ent): unknown assignment policy 'fastest' (one of none, round_robin, least_loaded)"),
        ("categories.2.assignment_policy", "random",
         "categories[2] (wifi): unknown assignment policy 'random' (one of none, round_robin, least_loaded)"),
        ("categories.2.closure_expiry_days", 0,
         "categories[2] (wifi): closure_expiry_days must be a whole number of days, at least 1 (not 0)"),
        ("categories.2.closure_expiry_days", "sept",
         "categories[2] (wifi): closure_expiry_days must be a whole number of days, at least 1 (not 'sept')"),
        ("departments.0.closure_expiry_days", 1.5,
         "departments[0] (dnum-ent): closure_expiry_days must be a whole number of days, at least 1 (not 1.5)"),
        ("departments.0.closure_expiry_days", True,
         "departments[0] (dnum-ent): closure_expiry_days must be a whole number of days, at least 1 (not True)"),
        ("categories.1.label", None,
         "categories[1] (ent-connexion): label needs a French text (label: {fr: ..., en: ...})"),
        ("categories.1.label", {"en": "Login problem"},
         "categories[1] (ent-connexion): label needs a French text (label: {fr: ..., en: ...})"),
        ("departments.0.label", {"fr": "  "},
         "departments[0] (dnum-ent): label needs a French text (label: {fr: ..., en: ...})"),
        ("categories.0.faq.0.answer", None,
         "categories[0] (ent): faq[0]: answer needs a French text (answer: {fr: ..., en: ...})"),
        ("categories.0.faq.0.question", {"fr": "?", "de": "Passwort?"},
         "categories[0] (ent): faq[0]: question: unknown languages de (fr, en)"),
        ("categories.0.label", {"fr": "ENT", "en": False},
         "categories[0] (ent): label: en must be a non-empty text"),
        ("categories.1.departement", "dnum-ent",
         "categories[1] (ent-connexion): unknown keys departement"),
        ("departments.0.manager", [],
         "departments[0] (dnum-ent): unknown keys manager"),
        ("departments.0.managers.0.mail", "x@univ.example",
         "departments[0] (dnum-ent): managers[0]: unknown keys mail"),
        ("categories.0.faq.0.reponse", "Oui",
         "categories[0] (ent): faq[0]: unknown keys reponse"),
        ("departments.1.managers.0.establishment", None,
         "department referents-ent: manager smartin needs an establishment (the department is per establishment)"),
        ("departments.0.managers.0.establishment", "0540001A",
         "department dnum-ent: manager mleroy has an establishment (0540001A) but the department is global"),
        ("departments.0.managers.0.user", None,
         "departments[0] (dnum-ent): managers[0]: user is required"),
        ("departments.0.managers.0.available", "false",
         "departments[0] (dnum-ent): managers[0]: available must be true or false (not 'false')"),
        ("departments.1.per_establishment", "yes",
         "departments[1] (referents-ent): per_establishment must be true or false (not 'yes')"),
        ("departments.1.escalation_enabled", 1,
         "departments[1] (referents-ent): escalation_enabled must be true or false (not 1)"),
        ("departments.2.per_establishment", True,
         "department triage: must be global (it takes what no other team can)"),
        ("departments.0.id", "dnum:ent",
         "department dnum:ent: an id must not contain ':'"),
        ("categories.0.id", "",
         "categories[0]: id must be a non-empty text"),
        ("categories.2", "wifi",
         "categories[2]: must be a mapping"),
        ("departments.0.managers", {"user": "mleroy"},
         "departments[0] (dnum-ent): managers must be a list"),
        ("categories", {"ent": {}},
         "categories must be a list"),
        ("regions", [],
         "unknown top-level keys: regions"),
    ],
)
def test_each_problem_is_reported_with_where_it_is(path, value, problem):
    assert problem in problems_of(with_change(path, value))


def test_a_cycle_is_reported_on_each_category_in_it():
    document = with_change("categories.0.parent", "ent-connexion")
    problems = problems_of(document)
    assert "category ent: its parents form a cycle (ent -> ent-connexion -> ent)" in problems
    assert "category ent-connexion: its parents form a cycle (ent-connexion -> ent -> ent-connexion)" in problems


def test_a_category_that_is_its_own_parent_is_a_cycle():
    assert problems_of(with_change("categories.2.parent", "wifi")) == [
        "category wifi: its parents form a cycle (wifi -> wifi)"
    ]


def test_no_department_anywhere_up_the_tree():
    document = with_change("categories.0.department", None)
    assert problems_of(document) == [
        "category ent: no department on it or any category above it",
        "category ent-connexion: no department on it or any category above it",
    ]


def test_duplicate_category_ids():
    document = valid()
    document["categories"].append({"id": "wifi", "label": "Wi-Fi encore", "department": "dnum-ent"})
    assert problems_of(document) == [
        "categories[3] (wifi): duplicate category id 'wifi' (first at categories[2] (wifi))"
    ]


def test_duplicate_department_ids():
    document = valid()
    document["departments"].append({"id": "dnum-ent", "label": "DNUM bis"})
    assert problems_of(document) == [
        "departments[3] (dnum-ent): duplicate department id 'dnum-ent' (first at departments[0] (dnum-ent))"
    ]


def test_duplicate_faq_ids_in_two_categories_or_in_one():
    document = valid()
    faq = document["categories"][0]["faq"][0]
    document["categories"][2]["faq"] = [copy.deepcopy(faq)]
    document["categories"][0]["faq"].append(copy.deepcopy(faq))
    assert problems_of(document) == [
        "categories[0] (ent): faq[1]: duplicate faq id 'faq-mdp' (first at categories[0] (ent): faq[0])",
        "categories[2] (wifi): faq[0]: duplicate faq id 'faq-mdp' (first at categories[0] (ent): faq[0])",
    ]


def test_a_manager_listed_twice():
    document = valid()
    document["departments"][0]["managers"].append({"user": "mleroy"})
    assert problems_of(document) == ["department dnum-ent: manager mleroy listed twice"]


@pytest.mark.parametrize("document", [None, [], "departments", 42])
def test_a_document_that_is_not_a_mapping(document):
    assert problems_of(document) == ["the file must be a mapping with 'departments' and 'categories'"]


def test_several_problems_are_reported_together():
    document = valid()
    document["departments"][0]["assignment_policy"] = "fastest"
    document["departments"][1]["label"] = None  # a department with no label still has its policy checked
    document["departments"][1]["assignment_policy"] = "random"
    document["categories"][1]["parent"] = "entt"
    document["categories"][2]["closure_expiry_days"] = -3
    document["categories"].append({"id": "ent", "label": "Doublon", "department": "dnum-ent", "colour": "red"})
    assert problems_of(document) == [
        "departments[0] (dnum-ent): unknown assignment policy 'fastest' (one of none, round_robin, least_loaded)",
        "departments[1] (referents-ent): label needs a French text (label: {fr: ..., en: ...})",
        "departments[1] (referents-ent): unknown assignment policy 'random' (one of none, round_robin, least_loaded)",
        "categories[2] (wifi): closure_expiry_days must be a whole number of days, at least 1 (not -3)",
        "categories[3] (ent): unknown keys colour",
        "categories[3] (ent): duplicate category id 'ent' (first at categories[0] (ent))",
        # the department with no label is left out, so wifi's department is unknown
        "category ent-connexion: unknown parent 'entt'",
        "category ent-connexion: no department on it or any category above it",
        "category wifi: unknown department 'referents-ent'",
    ]


# -- files ---------------------------------------------------------------------------------


def test_the_example_configuration_parses_with_no_problem():
    catalogue = read_config(EXAMPLE)
    assert catalogue.problems() == []
    assert {"dnum-ent", "referents-ent", "support-ent", TRIAGE} <= set(catalogue.departments)
    referents = catalogue.departments["referents-ent"]
    assert referents.per_establishment and referents.escalation_enabled
    assert {m.establishment for m in referents.managers} >= {"0540001A", "0880012B", "0570034C"}
    labels = {c.label_fr: c for c in catalogue.categories.values()}
    assert catalogue.route(labels["Problème de connexion"].id, "0540001A").team == "dnum-ent"
    assert catalogue.route(labels["Connexion impossible"].id, None).team == "dnum-ent"
    assert catalogue.departments["dnum-ent"].label_fr == "DNUM - ENT"
    assert catalogue.route("apogee", None).department_id == catalogue.route(
        labels["Support technique pour les applications de scolarité"].id, None).department_id
    for category in ("messagerie", "wifi", "impression", "app-agenda"):
        assert catalogue.route(category, "0880012B").team == "referents-ent:0880012B"
        assert catalogue.route(category, "0570034C").team == "referents-ent:0570034C"
        assert catalogue.route(category, "0999999Z").team == TRIAGE
    assert all(f.question_en and f.answer_en for c in catalogue.categories.values() for f in c.faq)
    assert all(c.label_en for c in catalogue.categories.values())


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_invalid_yaml_says_where(tmp_path):
    path = write(tmp_path, "departments:\n  - id: dnum-ent\n    label: [DNUM\ncategories: []\n")
    with pytest.raises(ConfigError) as caught:
        read_config(path)
    assert caught.value.source == str(path)
    [problem] = caught.value.problems
    assert problem.startswith("not valid YAML:") and "line 4" in problem


def test_a_missing_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        read_config(tmp_path / "absent.yaml")
    assert caught.value.problems[0].startswith("cannot read the file:")


@pytest.mark.parametrize("text", ["", "- departments\n", "just text\n"])
def test_a_file_that_is_not_a_mapping(tmp_path, text):
    with pytest.raises(ConfigError) as caught:
        read_config(write(tmp_path, text))
    assert caught.value.problems == ["the file must be a mapping with 'departments' and 'categories'"]


def test_a_key_given_twice_is_refused_rather_than_silently_dropped(tmp_path):
    # Bug fixed: PyYAML keeps the last of two equal keys, so a second `categories:` block
    # silently threw the first away.
    path = write(tmp_path, (
        "departments: [{id: dnum-ent, label: DNUM}]\n"
        "categories:\n  - {id: ent, label: ENT, department: dnum-ent}\n"
        "categories:\n  - {id: wifi, label: Wi-Fi, department: dnum-ent}\n"
    ))
    with pytest.raises(ConfigError) as caught:
        read_config(path)
    [problem] = caught.value.problems
    assert "found the key 'categories' twice (first on line 2)" in problem and "line 4" in problem


def test_numbers_that_yaml_1_1_would_mangle_stay_as_written(tmp_path):
    # Bug fixed: an unquoted login or UAI with a leading zero was read as octal
    # (0540001 -> 180225), 1_000 as 1000 and 10:30 as 630, then turned into that text.
    path = write(tmp_path, (
        "departments:\n"
        "  - id: referents-ent\n    label: Référents\n    per_establishment: true\n    managers:\n"
        "      - {user: 01234567, establishment: 0540001}\n"
        "      - {user: 1_000, establishment: 0880012B}\n"
        "      - {user: 10:30, establishment: 0570034C}\n"
        "      - {user: 2024, establishment: 0570034C}\n"
        "categories: [{id: 1.10, label: Version, department: referents-ent, closure_expiry_days: 7}]\n"
    ))
    catalogue = read_config(path)
    managers = [(m.user_id, m.establishment) for m in catalogue.departments["referents-ent"].managers]
    assert managers == [("01234567", "0540001"), ("1_000", "0880012B"), ("10:30", "0570034C"), ("2024", "0570034C")]
    assert catalogue.categories["1.10"].closure_expiry_days == 7


def test_a_zero_padded_expiry_is_refused_not_read_as_octal(tmp_path):
    path = write(tmp_path, "categories: [{id: ent, label: ENT, department: triage, closure_expiry_days: 010}]\n")
    with pytest.raises(ConfigError) as caught:
        read_config(path)
    assert caught.value.problems == [
        "categories[0] (ent): closure_expiry_days must be a whole number of days, at least 1 (not '010')"
    ]


def test_a_quoted_false_is_refused_rather_than_read_as_true(tmp_path):
    # Bug fixed: bool("false") is True, so a quoted "false" made a manager available
    # (and a department per establishment).
    path = write(tmp_path, (
        "departments: [{id: dnum-ent, label: DNUM, managers: [{user: mleroy, available: 'false'}]}]\n"
        "categories: [{id: ent, label: ENT, department: dnum-ent}]\n"
    ))
    with pytest.raises(ConfigError) as caught:
        read_config(path)
    assert caught.value.problems == [
        "departments[0] (dnum-ent): managers[0]: available must be true or false (not 'false')"
    ]
