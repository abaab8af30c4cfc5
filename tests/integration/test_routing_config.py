"""``guichet config load FILE``: on the real PostgreSQL, through the command itself.

Idempotent (the same file twice leaves the same rows), all-or-nothing (a bad file
changes nothing and says every problem), replacing (a second file leaves nothing of the
first), and announced (each load queues one ``CatalogueChanged`` snapshot).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from shared import db
from tests.helpers import ROUTING_TABLES

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "config" / "example.yaml"
# table -> its primary key, to read its rows in a stable order
CATALOGUE_TABLES = {
    "departments": "id", "managers": "department_id, establishment, user_id", "categories": "id", "faq": "id",
}

SMALL = textwrap.dedent("""\
    departments:
      - id: dnum-ent
        label: {fr: "DNUM - ENT", en: "IT - ENT"}
        assignment_policy: least_loaded
        managers:
          - {user: mleroy, name: Marc Leroy, email: marc.leroy@univ.example}
          - {user: cfaure, name: Camille Faure, email: camille.faure@univ.example, available: false}
      - id: referents-ent
        label: {fr: "Référents ENT", en: "ENT referents"}
        per_establishment: true
        escalation_enabled: true
        managers:
          - {user: smartin, name: Sophie Martin, email: sophie.martin@lycee.example, establishment: 0540001A}
          - {user: amoreau, name: Aurélie Moreau, email: aurelie.moreau@lycee.example, establishment: 0880012B}
    categories:
      - id: ent
        label: {fr: "ENT", en: "Digital workspace"}
        department: dnum-ent
        faq:
          - id: faq-mdp
            question: {fr: "J'ai perdu mon mot de passe", en: "I lost my password"}
            answer: {fr: "Cliquez sur « Mot de passe oublié ».", en: "Click « Mot de passe oublié »."}
      - id: ent-connexion
        parent: ent
        label: {fr: "Problème de connexion", en: "Login problem"}
        closure_expiry_days: 7
      - id: wifi
        label: {fr: "Wi-Fi (eduroam)", en: "Wi-Fi (eduroam)"}
        department: referents-ent
    """)

BAD = textwrap.dedent("""\
    departments:
      - id: dnum-ent
        label: {fr: "DNUM - ENT"}
        assignment_policy: fastest
    categories:
      - id: ent-connexion
        parent: entt
        label: {fr: "Problème de connexion"}
      - id: wifi
        label: {fr: "Wi-Fi"}
        department: reseau
    """)


@pytest.fixture
def routing_db(database_url: str) -> str:
    """The test database, with empty routing tables."""
    with db.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {ROUTING_TABLES} RESTART IDENTITY")
    return database_url


def load(url: str, path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run ``guichet config load PATH`` against ``url``."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "config", "load", *options, str(path)],
        env={**os.environ, "DATABASE_URL": url}, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the catalogue tables, in a stable order."""
    with db.connect(url) as conn:
        return {
            table: conn.execute(f"SELECT * FROM routing.{table} ORDER BY {key}").fetchall()
            for table, key in CATALOGUE_TABLES.items()
        }


def outbox(url: str) -> list[dict[str, Any]]:
    with db.connect(url) as conn:
        return conn.execute("SELECT routing_key, payload FROM routing.outbox ORDER BY global_position").fetchall()


def test_loading_the_same_file_twice_leaves_the_same_rows(routing_db, tmp_path):
    path = write(tmp_path, "small.yaml", SMALL)
    first = load(routing_db, path)
    assert first.returncode == 0, first.stderr
    after_first = rows(routing_db)
    assert [d["id"] for d in after_first["departments"]] == ["dnum-ent", "referents-ent", "triage"]
    assert [(m["department_id"], m["establishment"], m["user_id"], m["available"])
            for m in after_first["managers"]] == [
        ("dnum-ent", "", "cfaure", False), ("dnum-ent", "", "mleroy", True),
        ("referents-ent", "0540001A", "smartin", True), ("referents-ent", "0880012B", "amoreau", True),
    ]
    connexion = next(c for c in after_first["categories"] if c["id"] == "ent-connexion")
    assert (connexion["parent_id"], connexion["department_id"], connexion["closure_expiry_days"]) == ("ent", None, 7)
    assert [(f["id"], f["category_id"], f["question_en"]) for f in after_first["faq"]] == [
        ("faq-mdp", "ent", "I lost my password")
    ]

    second = load(routing_db, path)
    assert second.returncode == 0, second.stderr
    assert rows(routing_db) == after_first


def test_a_bad_file_exits_non_zero_says_every_problem_and_changes_nothing(routing_db, tmp_path):
    assert load(routing_db, write(tmp_path, "small.yaml", SMALL)).returncode == 0
    before, queued = rows(routing_db), outbox(routing_db)

    result = load(routing_db, write(tmp_path, "bad.yaml", BAD))
    assert result.returncode != 0
    said = result.stdout + result.stderr
    for problem in (
        "departments[0] (dnum-ent): unknown assignment policy 'fastest'",
        "category ent-connexion: unknown parent 'entt'",
        "category ent-connexion: no department on it or any category above it",
        "category wifi: unknown department 'reseau'",
    ):
        assert problem in said
    assert "bad.yaml" in said
    assert rows(routing_db) == before
    assert outbox(routing_db) == queued


@pytest.mark.parametrize("text", ["departments: [\n", "- just\n- a list\n", ""])
def test_an_unreadable_file_changes_nothing(routing_db, tmp_path, text):
    assert load(routing_db, write(tmp_path, "small.yaml", SMALL)).returncode == 0
    before = rows(routing_db)
    result = load(routing_db, write(tmp_path, "broken.yaml", text))
    assert result.returncode != 0
    assert "configuration refused" in result.stdout + result.stderr
    assert rows(routing_db) == before


def test_a_missing_file_exits_non_zero(routing_db, tmp_path):
    result = load(routing_db, tmp_path / "absent.yaml")
    assert result.returncode != 0
    assert "cannot read the file" in result.stdout + result.stderr
    assert rows(routing_db) == {table: [] for table in CATALOGUE_TABLES}


def test_a_second_file_replaces_the_first_entirely(routing_db, tmp_path):
    assert load(routing_db, EXAMPLE).returncode == 0
    assert len(rows(routing_db)["categories"]) > 10

    result = load(routing_db, write(tmp_path, "small.yaml", SMALL))
    assert result.returncode == 0, result.stderr
    after = rows(routing_db)
    assert [d["id"] for d in after["departments"]] == ["dnum-ent", "referents-ent", "triage"]
    assert sorted(c["id"] for c in after["categories"]) == ["ent", "ent-connexion", "wifi"]
    assert [f["id"] for f in after["faq"]] == ["faq-mdp"]
    assert sorted(m["user_id"] for m in after["managers"]) == ["amoreau", "cfaure", "mleroy", "smartin"]

    # ...and loading the second file on an empty database gives the very same rows.
    with db.connect(routing_db, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {ROUTING_TABLES} RESTART IDENTITY")
    assert load(routing_db, write(tmp_path, "small.yaml", SMALL)).returncode == 0
    assert rows(routing_db) == after


def test_each_load_queues_one_catalogue_snapshot(routing_db, tmp_path):
    path = write(tmp_path, "small.yaml", SMALL)
    assert load(routing_db, path).returncode == 0
    [event] = outbox(routing_db)
    assert event["routing_key"] == "CatalogueChanged"
    snapshot = event["payload"]
    teams = {t["id"]: t for t in snapshot["teams"]}
    assert sorted(teams) == ["dnum-ent", "referents-ent:0540001A", "referents-ent:0880012B", "triage"]
    assert teams["dnum-ent"]["department_id"] == "dnum-ent"
    assert teams["dnum-ent"]["label_fr"] == "DNUM - ENT"
    assert teams["dnum-ent"]["managers"] == [
        {"id": "mleroy", "name": "Marc Leroy", "email": "marc.leroy@univ.example", "available": True},
        {"id": "cfaure", "name": "Camille Faure", "email": "camille.faure@univ.example", "available": False},
    ]
    assert teams["referents-ent:0540001A"]["department_id"] == "referents-ent"
    assert [m["id"] for m in teams["referents-ent:0540001A"]["managers"]] == ["smartin"]
    assert [m["id"] for m in teams["referents-ent:0880012B"]["managers"]] == ["amoreau"]
    assert teams["triage"]["managers"] == []
    # each team says what its department allows; each category its effective department and
    # closure expiry delay (its own, else its parent's, else its department's, else 14 days)
    assert {k: teams["referents-ent:0540001A"][k] for k in ("per_establishment", "escalation_enabled",
                                                              "closure_expiry_days")} == {
        "per_establishment": True, "escalation_enabled": True, "closure_expiry_days": None}
    assert (teams["dnum-ent"]["per_establishment"], teams["dnum-ent"]["escalation_enabled"]) == (False, False)
    assert snapshot["categories"] == [
        {"id": "ent", "label_fr": "ENT", "label_en": "Digital workspace", "parent_id": None,
         "department_id": "dnum-ent", "closure_expiry_days": 14},
        {"id": "ent-connexion", "label_fr": "Problème de connexion", "label_en": "Login problem", "parent_id": "ent",
         "department_id": "dnum-ent", "closure_expiry_days": 7},
        {"id": "wifi", "label_fr": "Wi-Fi (eduroam)", "label_en": "Wi-Fi (eduroam)", "parent_id": None,
         "department_id": "referents-ent", "closure_expiry_days": 14},
    ]

    again = load(routing_db, path)  # the same file again: nothing changed, nothing to announce
    assert again.returncode == 0 and "configuration unchanged" in again.stdout + again.stderr
    assert load(routing_db, write(tmp_path, "bad.yaml", BAD)).returncode != 0  # a refused one: none
    assert [e["routing_key"] for e in outbox(routing_db)] == ["CatalogueChanged"]
    changed = SMALL.replace("available: false", "available: true")
    assert load(routing_db, write(tmp_path, "changed.yaml", changed)).returncode == 0  # a change: one more
    assert [e["routing_key"] for e in outbox(routing_db)] == ["CatalogueChanged", "CatalogueChanged"]
    teams = {t["id"]: t for t in outbox(routing_db)[1]["payload"]["teams"]}
    assert all(m["available"] for m in teams["dnum-ent"]["managers"])


def test_if_empty_loads_only_on_first_start(routing_db, tmp_path):
    """What ``make run`` does: the example on an empty catalogue, never over an admin's work."""
    first = load(routing_db, EXAMPLE, "--if-empty")
    assert first.returncode == 0 and "configuration loaded" in first.stdout + first.stderr, first.stderr
    loaded = rows(routing_db)
    second = load(routing_db, write(tmp_path, "small.yaml", SMALL), "--if-empty")
    assert second.returncode == 0 and "not loaded" in second.stdout + second.stderr
    assert rows(routing_db) == loaded


def test_the_example_configuration_loads(routing_db):
    result = load(routing_db, EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert "configuration loaded" in result.stdout + result.stderr
    stored = rows(routing_db)
    assert {"dnum-ent", "referents-ent", "support-ent", "triage"} <= {d["id"] for d in stored["departments"]}
    assert {m["establishment"] for m in stored["managers"] if m["department_id"] == "referents-ent"} >= {
        "0540001A", "0880012B", "0570034C"}
    teams = {t["id"] for t in outbox(routing_db)[0]["payload"]["teams"]}
    assert {"referents-ent:0540001A", "referents-ent:0880012B", "referents-ent:0570034C"} <= teams
