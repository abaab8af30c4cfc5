"""The reports API end to end: the reporting service running for real (HTTP on a free
port, a throwaway vhost, the test database), fed the fixed event history
(``tests/data/reporting/history.json``) through the ``tickets.events`` exchange and
routing's teams through a ``CatalogueChanged`` event; real HTTP requests with signed
tokens."""

from __future__ import annotations

import csv
import io
from typing import Any

import kombu
import pytest
from nameko.standalone.events import event_dispatcher

from services.reporting.figures import flatten
from services.reporting.service import ReportingService
from shared.outbox import event_exchange
from tests.e2e.conftest import ALICE, MARC, ROOT, SECRET, Api, User
from tests.helpers import serve, wait_until
from tests.integration.test_reporting_figures import REPORTING_TABLES, SNAPSHOT
from tests.unit.reporting.history import messages

MALLORY = User("mallory", "mallory@univ.example", "Mallory", establishment=None)  # manages scolarite
RENE = User("rene", "rene@univ.example", "René")  # referent of 0540001A
MAY = {"period": "month", "date": "2026-05-10"}


@pytest.fixture
def reports(container_factory, broker_uri, database_url, pool, monkeypatch) -> Api:
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    with pool.connection() as conn:
        conn.execute(f"TRUNCATE {REPORTING_TABLES}")
    api = Api(serve(container_factory, ReportingService, "reporting", AMQP_URI=broker_uri, DATABASE_URL=database_url))
    event_dispatcher()("routing", "CatalogueChanged", SNAPSHOT)
    history = messages()
    with kombu.Connection(broker_uri) as conn:
        producer = conn.Producer()
        for message in history:
            producer.publish(message, exchange=event_exchange(), routing_key=message["event_type"], serializer="json")

    def fed() -> bool:
        with pool.connection() as conn:
            kept = conn.execute("SELECT count(*) AS n FROM reporting.ticket_events").fetchone()["n"]
            teams = conn.execute("SELECT count(*) AS n FROM reporting.teams").fetchone()["n"]
        return kept == len(history) and teams == len(SNAPSHOT["teams"])

    wait_until(fed, what="the history and the teams to be consumed")
    return api


def summary(api: Api, user: User | None, headers: dict[str, str] | None = None, **query: Any):
    return api.get("/api/v1/reports/summary", user, params=query, headers=headers)


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_the_summary_as_json(reports):
    response = summary(reports, ROOT, **MAY, group_by="department")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert [body["total"][k] for k in ("created", "resolved", "backlog_start", "backlog_end")] == [3, 4, 2, 1]
    assert body["total"]["first_response"]["median_working_hours"] == 7.0
    assert [g["key"] for g in body["groups"]] == ["dnum-ent", "referents-ent:0540001A", "support-ent"]


def test_csv_and_json_hold_the_same_figures(reports):
    as_json = summary(reports, ROOT, **MAY, group_by="manager").json()
    response = summary(reports, ROOT, {"Accept": "text/csv"}, **MAY, group_by="manager")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    header, *rows = read_csv(response.text)
    assert header == ["group", "label", "figure", "value"]
    expected = [["total", "total", name, "" if value is None else str(value)]
                for name, value in flatten(as_json["total"])]
    for group in as_json["groups"]:
        expected += [[group["key"] or "", group["label"], name, "" if value is None else str(value)]
                     for name, value in flatten(group["figures"])]
    assert rows == expected
    assert ["total", "total", "resolution.p90_hours", "242.7"] in rows
    # a download link says so in the query
    link = summary(reports, ROOT, **MAY, group_by="manager", format="csv")
    assert link.text == response.text


def test_recurring_problems_as_json_and_csv(reports):
    body = reports.get("/api/v1/reports/categories", ROOT, params=MAY).json()
    assert [(i["category_id"], i["created"], i["previous"]) for i in body["items"]] == [("wifi", 2, 2),
                                                                                         ("impression", 1, 0)]
    response = reports.get("/api/v1/reports/categories", ROOT, params=MAY, headers={"Accept": "text/csv"})
    header, *rows = read_csv(response.text)
    assert header == ["category_id", "label", "created", "previous", "trend", "terms"]
    assert rows[0][:5] == ["wifi", "Wi-Fi", "2", "2", "0.0"] and rows[0][5].startswith("wifi (2)")
    assert rows[1][:5] == ["impression", "Impression", "1", "0", ""]


def test_the_timeline_as_json_and_csv(reports):
    params = {"period": "academic-year", "date": "2026-05-10"}
    body = reports.get("/api/v1/reports/timeline", ROOT, params=params).json()
    response = reports.get("/api/v1/reports/timeline", ROOT, params=params, headers={"Accept": "text/csv"})
    header, *rows = read_csv(response.text)
    assert header == list(body["items"][0])
    assert rows == [["" if v is None else str(v) for v in item.values()] for item in body["items"]]
    assert rows[8][:4] == ["2026-05-01", "2026-05-31", "3", "4"]


def test_a_manager_of_another_department_gets_no_figures_for_this_one(reports):
    theirs = summary(reports, MALLORY, **MAY, department_id="dnum-ent", group_by="department").json()
    assert theirs["groups"] == []
    assert (theirs["total"]["created"], theirs["total"]["resolved"], theirs["total"]["backlog_start"]) == (0, 0, 0)
    categories = reports.get("/api/v1/reports/categories", MALLORY, params=MAY).json()
    assert categories["items"] == []
    # while the department's own manager sees them
    assert summary(reports, MARC, **MAY, department_id="dnum-ent").json()["total"]["created"] == 2
    # and a referent their establishment's
    assert summary(reports, RENE, **MAY).json()["total"]["resolved"] == 2


def test_requesters_and_strangers_get_no_statistics(reports):
    refused = summary(reports, ALICE, **MAY)
    assert refused.status_code == 403
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["status"] == 403
    assert summary(reports, None, **MAY).status_code == 401
    assert reports.get("/api/v1/reports/categories", ALICE, params=MAY).status_code == 403


@pytest.mark.parametrize("query", [
    {"period": "year"}, {"date": "2026-13-01"}, {"from": "2026-05-01"}, {"to": "2026-05-01"},
    {"from": "2026-05-10", "to": "2026-05-01"}, {"from": "2020-01-01", "to": "2026-01-01"},
    {"period": "academic-year", "date": "0001-03-01"}, {"period": "month", "date": "9999-12-31"},
    {"group_by": "requester"}, {"format": "xml"}, {"department_id": ""}, {"department_id": "x" * 201},
])
def test_garbage_queries_are_refused(reports, query):
    response = summary(reports, ROOT, **query)
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["errors"]


def test_probes_and_openapi(reports):
    assert reports.get("/healthz").status_code == 200
    assert reports.get("/readyz").json()["checks"] == {"database": "ok", "broker": "ok"}
    document = reports.get("/api/v1/openapi.json").json()
    assert {"/api/v1/reports/summary", "/api/v1/reports/categories"} <= set(document["paths"])
    assert "text/csv" in document["paths"]["/api/v1/reports/summary"]["get"]["responses"]["200"]["content"]
    assert "Figures" in document["components"]["schemas"]
    assert "/api/v1/reports/timeline" in document["paths"]


def test_the_api_keeps_to_its_document(reports):
    from tests.e2e.test_openapi_fuzz import run_schemathesis

    for user in (ROOT, ALICE):
        result = run_schemathesis(reports, user, max_examples=20)
        assert result.returncode == 0, result.stdout[-6000:]
        assert "generated" in result.stdout
