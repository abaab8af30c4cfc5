"""The reports on the fixed event history (``tests/data/reporting/history.json``), the
events kept and folded the way the service's consumer does, in PostgreSQL; every
figure below was computed by hand (see ``tests/unit/reporting/test_history.py`` for
each ticket's facts). Ticket A is filed on 30 April, F in April and stays open, B, C
and D in May, E on 31 August and refused on 1 September."""

from __future__ import annotations

from typing import Any

import pytest

from services.reporting import storage
from services.reporting.http import ReportingBackend
from services.reporting.schemas import ReportQuery
from services.reporting.service import CONSUMER
from shared.auth import Identity
from shared.calendar import WorkingCalendar
from shared.config import Settings
from shared.web import HttpProblem
from tests.unit.reporting.history import load, messages

REPORTING_TABLES = ("reporting.escalations, reporting.status_periods, reporting.tickets, reporting.ticket_events,"
                    " reporting.team_managers, reporting.teams, reporting.categories, reporting.catalogue_revision,"
                    " reporting.processed_events")
SNAPSHOT = {
    "global_position": 1,
    "teams": [
        {"id": "dnum-ent", "department_id": "dnum-ent", "label_fr": "DNUM - ENT", "per_establishment": False,
         "managers": [{"id": "marc", "name": "Marc Petit"}, {"id": "mona", "name": "Mona Lisa"}]},
        {"id": "referents-ent:0540001A", "department_id": "referents-ent", "label_fr": "Référents ENT (0540001A)",
         "per_establishment": True, "managers": [{"id": "rene", "name": "René"}]},
        {"id": "support-ent", "department_id": "support-ent", "label_fr": "Support ENT", "per_establishment": False,
         "managers": [{"id": "sam", "name": "Sam"}]},
        {"id": "scolarite", "department_id": "scolarite", "label_fr": "Scolarité", "per_establishment": False,
         "managers": [{"id": "mallory", "name": "Mallory"}]},
    ],
    "categories": [{"id": "wifi", "label_fr": "Wi-Fi"}, {"id": "impression", "label_fr": "Impression"}],
}
ADMIN = Identity("root", "root@univ.example", roles=("admin",))


def who(login: str) -> Identity:
    return Identity(login, f"{login}@univ.example")


def feed(pool: Any, calendar: WorkingCalendar, items: list[dict[str, Any]]) -> None:
    """What ``ReportingService.on_ticket_event`` does with each message."""
    for message in items:
        with pool.connection() as conn, conn.transaction():
            if storage.first_time(conn, CONSUMER, message["event_id"]):
                storage.refold(conn, storage.keep_event(conn, message), calendar)


@pytest.fixture
def reporting_db(pool):
    with pool.connection() as conn:
        conn.execute(f"TRUNCATE {REPORTING_TABLES}")
        storage.apply_snapshot(conn, SNAPSHOT)
    return pool


@pytest.fixture
def backend(reporting_db) -> ReportingBackend:
    backend = ReportingBackend(reporting_db, Settings.from_env({"GUICHET_JWT_SECRET": "x" * 32}), WorkingCalendar())
    feed(reporting_db, backend.calendar, messages())
    return backend


def query(**values: Any) -> dict[str, Any]:
    return ReportQuery().load({k.rstrip("_"): v for k, v in values.items()})


def test_may_in_total(backend):
    report = backend.summary(ADMIN, query(period="month", date="2026-05-10"))
    assert report["period"] == {"kind": "month", "from": "2026-05-01", "to": "2026-05-31", "timezone": "Europe/Paris"}
    total = report["total"]
    assert (total["created"], total["resolved"], total["backlog_start"], total["backlog_end"]) == (3, 4, 2, 1)
    assert total["resolutions"] == {"approved": 2, "expired": 1, "closed_by_owner": 0, "cancelled": 1, "refused": 0}
    # first responses of A (90 h, 3 working), B (48, 7.5), C (23.5, 7)
    assert total["first_response"] == {"count": 3, "median_hours": 48.0, "p90_hours": 81.6,
                                       "median_working_hours": 7.0, "p90_working_hours": 7.4}
    # resolutions of A (137 h, 17 working), B (288, 52), C (49, 16), D (17, 0.5)
    assert total["resolution"] == {"count": 4, "median_hours": 93.0, "p90_hours": 242.7,
                                   "median_working_hours": 16.5, "p90_working_hours": 41.5}
    status = total["status_time"]
    assert status["FREE"] == {"count": 4, "median_hours": 18.0, "p90_hours": 68.0, "median_working_hours": 1.5,
                              "p90_working_hours": 3.4, "total_hours": 126.0, "total_working_hours": 7.5}
    assert status["IN_PROGRESS"] == {"count": 6, "median_hours": 2.25, "p90_hours": 25.75,
                                     "median_working_hours": 1.5, "p90_working_hours": 4.75,
                                     "total_hours": 58.0, "total_working_hours": 14.5}
    assert status["WAITING_FOR_INFO"] == {"count": 1, "median_hours": 24.0, "p90_hours": 24.0,
                                          "median_working_hours": 7.5, "p90_working_hours": 7.5,
                                          "total_hours": 24.0, "total_working_hours": 7.5}
    assert status["CLOSURE_REQUESTED"] == {"count": 4, "median_hours": 10.5, "p90_hours": 173.7,
                                           "median_working_hours": 3.0, "p90_working_hours": 32.35,
                                           "total_hours": 262.0, "total_working_hours": 51.5}
    assert status["POSTPONED"]["count"] == 0 and status["POSTPONED"]["median_hours"] is None
    assert (total["reopened"], total["reopen_rate"]) == (1, 0.25)
    assert total["escalation"] == {"escalated": 1, "rate": 0.3333, "median_hours": 4.0, "p90_hours": 4.0,
                                   "median_working_hours": 2.5, "p90_working_hours": 2.5}
    assert total["satisfaction"] == {"approvals": 2, "ratings": 2, "average": 4.5,
                                     "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1},
                                     "with_feedback": 2, "feedback_share": 1.0}
    assert report["groups"] == []


def test_may_by_department_as_they_were(backend):
    report = backend.summary(ADMIN, query(period="month", date="2026-05-10", group_by="department"))
    groups = {g["key"]: g for g in report["groups"]}
    assert set(groups) == {"dnum-ent", "referents-ent:0540001A", "support-ent"}
    dnum, referents, support = groups["dnum-ent"], groups["referents-ent:0540001A"], groups["support-ent"]
    assert (dnum["label"], referents["label"]) == ("DNUM - ENT", "Référents ENT (0540001A)")
    # C was filed with the referents, escalated, then answered and resolved by the support
    assert [(g["figures"]["created"], g["figures"]["resolved"]) for g in (dnum, referents, support)] == [
        (2, 3), (1, 0), (0, 1)]
    assert referents["figures"]["escalation"]["escalated"] == 1
    assert support["figures"]["first_response"]["count"] == 1
    assert (dnum["figures"]["backlog_start"], dnum["figures"]["backlog_end"]) == (2, 1)
    assert sum(g["figures"]["created"] for g in report["groups"]) == report["total"]["created"]


def test_by_manager_with_names(backend):
    report = backend.summary(ADMIN, query(period="month", date="2026-05-10", group_by="manager"))
    resolved = {g["key"]: (g["label"], g["figures"]["resolved"]) for g in report["groups"]}
    assert resolved["marc"] == ("Marc Petit", 1) and resolved["mona"] == ("Mona Lisa", 1)
    assert resolved["sam"] == ("Sam", 1) and resolved[None] == ("non attribué", 1)  # D: cancelled, unassigned


def test_the_academic_year_boundary(backend):
    before = backend.summary(ADMIN, query(period="academic-year", date="2026-08-31"))
    assert (before["period"]["from"], before["period"]["to"]) == ("2025-09-01", "2026-08-31")
    assert [before["total"][k] for k in ("created", "resolved", "backlog_start", "backlog_end")] == [6, 4, 0, 2]
    after = backend.summary(ADMIN, query(period="academic-year", date="2026-09-01"))
    assert [after["total"][k] for k in ("created", "resolved", "backlog_start", "backlog_end")] == [0, 1, 2, 1]
    assert after["total"]["resolutions"]["refused"] == 1
    assert after["total"]["resolution"]["median_working_hours"] == 1.5  # Monday 17:00 -> Tuesday 09:30


def test_dates_and_filters(backend):
    # 13 May (B) to 18 May (C), both included
    report = backend.summary(ADMIN, query(from_="2026-05-13", to="2026-05-18", category_id="wifi"))
    assert report["period"]["kind"] == "dates" and report["total"]["created"] == 1
    assert report["filters"] == {"category_id": "wifi"}
    assert backend.summary(ADMIN, query(period="day", date="2026-05-18"))["total"]["created"] == 1
    assert backend.summary(ADMIN, query(period="week", date="2026-05-13", establishment="0540002B"))["total"][
        "created"] == 1


def test_who_sees_what(backend):
    may = {"period": "month", "date": "2026-05-10"}
    # marc manages dnum-ent: B and D filed there in May; not C
    assert backend.summary(who("marc"), query(**may))["total"]["created"] == 2
    # mallory manages another department: nothing of dnum-ent, even asking for it
    other = backend.summary(who("mallory"), query(**may, department_id="dnum-ent"))["total"]
    assert (other["created"], other["resolved"], other["backlog_end"]) == (0, 0, 0)
    # rene is the referent of 0540001A: that establishment's tickets, whichever department has them (A and C)
    rene = backend.summary(who("rene"), query(**may))["total"]
    assert (rene["created"], rene["resolved"]) == (1, 2)
    with pytest.raises(HttpProblem) as refused:
        backend.summary(who("alice"), query(**may))
    assert refused.value.status == 403


def test_recurring_problems(backend):
    report = backend.categories(ADMIN, {**query(period="month", date="2026-05-10"), "limit": 3})
    assert report["previous_period"]["from"] == "2026-04-01"
    wifi, impression = report["items"]
    assert (wifi["category_id"], wifi["label"], wifi["created"], wifi["previous"], wifi["trend"]) == (
        "wifi", "Wi-Fi", 2, 2, 0.0)
    assert wifi["terms"][0] == {"term": "wifi", "stem": "wif", "tickets": 2}
    assert len(wifi["terms"]) == 3
    assert (impression["created"], impression["previous"], impression["trend"]) == (1, 0, None)
    assert [t["term"] for t in impression["terms"]] == ["bâtiment", "imprimante", "répond"]
    # mallory sees no category of theirs
    assert backend.categories(who("mallory"), {**query(period="month", date="2026-05-10"), "limit": 3})["items"] == []


def test_a_redelivered_event_changes_nothing(backend, reporting_db):
    with reporting_db.connection() as conn:
        before = storage.snapshot_of_facts(conn)
    feed(reporting_db, backend.calendar, messages()[:10])
    with reporting_db.connection() as conn:
        assert storage.snapshot_of_facts(conn) == before


def test_events_in_any_order_give_the_same_facts(reporting_db, pool):
    calendar = WorkingCalendar()
    feed(pool, calendar, list(reversed(messages())))
    with pool.connection() as conn:
        reversed_order = storage.snapshot_of_facts(conn)
        conn.execute(f"TRUNCATE {REPORTING_TABLES}")
    feed(pool, calendar, messages())
    with pool.connection() as conn:
        assert storage.snapshot_of_facts(conn) == reversed_order
    assert len(reversed_order["tickets"]) == len(load()["tickets"])


def test_the_timeline_of_an_academic_year(backend):
    from services.reporting.schemas import TimelineQuery

    report = backend.timeline(ADMIN, TimelineQuery().load({"period": "academic-year", "date": "2026-05-10"}))
    assert report["step"] == "month"
    items = {i["from"]: i for i in report["items"]}
    assert len(items) == 12 and report["items"][0]["from"] == "2025-09-01" and report["items"][-1]["to"] == "2026-08-31"
    assert items["2025-09-01"]["created"] == 0 and items["2025-09-01"]["resolution_median_hours"] is None
    assert (items["2026-04-01"]["created"], items["2026-04-01"]["resolved"]) == (2, 0)  # F, A
    may = items["2026-05-01"]
    assert (may["created"], may["resolved"], may["first_responses"]) == (3, 4, 3)
    assert (may["first_response_median_hours"], may["first_response_median_working_hours"]) == (48.0, 7.0)
    assert (may["resolution_median_hours"], may["resolution_median_working_hours"]) == (93.0, 16.5)
    assert items["2026-08-01"]["created"] == 1  # E, filed on 31 August
    # weeks are cut to the period: May 2026 starts on a Friday
    weeks = backend.timeline(ADMIN, TimelineQuery().load({"period": "month", "date": "2026-05-10", "step": "week"}))
    assert [(w["from"], w["to"]) for w in weeks["items"]][:2] == [("2026-05-01", "2026-05-03"),
                                                                 ("2026-05-04", "2026-05-10")]
    assert sum(w["created"] for w in weeks["items"]) == 3
    days = backend.timeline(ADMIN, TimelineQuery().load({"period": "month", "date": "2026-05-10"}))
    assert days["step"] == "day" and len(days["items"]) == 31
    # mallory's timeline is empty of dnum-ent's tickets
    theirs = backend.timeline(who("mallory"), TimelineQuery().load({"period": "month", "date": "2026-05-10"}))
    assert sum(d["created"] + d["resolved"] for d in theirs["items"]) == 0
