"""The reports HTTP API (``API.md``, "Reports").

Each handler authenticates the caller (``shared.auth``), works out whose figures they
may see from the service's copy of routing's teams (admins: everything; a manager: the
teams they manage; an establishment's ENT referent: that establishment's tickets), reads
the query with ``services.reporting.schemas``, selects the facts through
``services.reporting.storage`` and adds them up with ``services.reporting.figures``.
A caller who manages nothing gets 403. Answers hold counts, durations, ratings and
aggregated subject words: never a requester's name or a ticket's text.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from nameko import config
from werkzeug.wrappers import Request, Response

from services.reporting import figures, schemas, storage
from services.reporting.openapi import openapi_document
from shared.auth import Identity, TokenVerifier
from shared.calendar import WorkingCalendar
from shared.config import Settings
from shared.web import ApiHandler, HttpProblem, ServiceProbes, json_response, load_query, readiness

http = ApiHandler.decorator

CSV = "text/csv"


class ReportingBackend:
    """What the reporting service's workers get: the pool, identity and the calendar."""

    def __init__(self, pool: Any, settings: Settings | None = None, calendar: WorkingCalendar | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.pool = pool
        self.verifier = TokenVerifier(self.settings)
        self.calendar = calendar or WorkingCalendar.from_env()

    def identity(self, request: Request) -> Identity:
        return self.verifier.verify(request.headers.get("Authorization"))

    def ready(self) -> dict[str, str]:
        return readiness(self.pool, config.get("AMQP_URI") or self.settings.amqp_uri)

    def scope(self, identity: Identity, catalogue: storage.Catalogue) -> storage.Scope:
        """Whose figures ``identity`` may see; 403 for someone who manages nothing."""
        if identity.is_admin:
            return storage.Scope(everything=True)
        scope = storage.Scope(teams=frozenset(catalogue.managed_teams(identity.login)),
                              establishments=frozenset(catalogue.referent_establishments(identity.login)))
        if scope.empty:
            raise HttpProblem(403, "statistics are for managers, ENT referents and admins")
        return scope

    def period(self, query: dict[str, Any]) -> figures.Period:
        """The period the query asks for, in the calendar's time zone."""
        zone = self.calendar.zone
        if query["from_"] is not None:
            return figures.Period("dates", query["from_"], query["to"], zone)
        day = query["date"] or datetime.now(zone).date()
        return figures.period_of(query["period"], day, zone)

    # -- reports

    def summary(self, identity: Identity, query: dict[str, Any]) -> dict[str, Any]:
        """The figures of the period, in total and per group (``schemas.Summary``)."""
        period, group_by = self.period(query), query["group_by"]
        filters = _filters(query)
        with self.pool.connection() as conn:
            catalogue = storage.load_catalogue(conn)
            scope = self.scope(identity, catalogue)
            found = storage.aggregates(conn, period.start, period.end, scope, filters, group_by)
        total = found.pop(storage.TOTAL, {})
        groups = [
            {"key": key, "label": _label(catalogue, group_by, key), "figures": figures.figures(found[key])}
            for key in sorted(found, key=lambda k: (k is None, k or ""))
        ] if group_by else []
        return {"period": period.view(), "filters": _filters_view(filters), "group_by": group_by,
                "total": figures.figures(total), "groups": groups}

    def categories(self, identity: Identity, query: dict[str, Any]) -> dict[str, Any]:
        """Categories by volume against the previous period, with their most frequent
        subject terms (``schemas.Categories``)."""
        period = self.period(query)
        previous = period.previous()
        filters = _filters(query)
        with self.pool.connection() as conn:
            catalogue = storage.load_catalogue(conn)
            scope = self.scope(identity, catalogue)
            now = storage.created_rows(conn, period.start, period.end, scope, filters, "category")
            before = storage.created_rows(conn, previous.start, previous.end, scope, filters, "category")
        counted_before: dict[str | None, int] = {}
        for r in before:
            counted_before[r["group_key"]] = counted_before.get(r["group_key"], 0) + 1
        items = []
        for key in {r["group_key"] for r in now} | set(counted_before):
            subjects = [r["subject"] for r in now if r["group_key"] == key]
            items.append({
                "category_id": key, "label": _label(catalogue, "category", key), "created": len(subjects),
                "previous": counted_before.get(key, 0), "trend": figures.trend(len(subjects), counted_before.get(key, 0)),
                "terms": figures.top_terms(subjects, query["limit"]),
            })
        items.sort(key=lambda i: (-i["created"], -i["previous"], i["category_id"] or ""))  # type: ignore[operator]
        return {"period": period.view(), "previous_period": previous.view(), "filters": _filters_view(filters),
                "items": items}

    def timeline(self, identity: Identity, query: dict[str, Any]) -> dict[str, Any]:
        """Every step of the period with its counts and median times (``schemas.Timeline``)."""
        period = self.period(query)
        step = query["step"] or figures.default_step(period)
        filters = _filters(query)
        with self.pool.connection() as conn:
            scope = self.scope(identity, storage.load_catalogue(conn))
            found = storage.timeline(conn, period.start, period.end, step, period.zone.key, scope, filters)
        return {"period": period.view(), "step": step, "filters": _filters_view(filters),
                "items": figures.timeline(period, step, found)}


def _filters(query: dict[str, Any]) -> dict[str, str | None]:
    return {"department": query["department_id"], "category": query["category_id"],
            "establishment": query["establishment"], "manager": query["manager"]}


def _filters_view(filters: dict[str, str | None]) -> dict[str, str]:
    names = {"department": "department_id", "category": "category_id"}
    return {names.get(k, k): v for k, v in filters.items() if v is not None}


def _label(catalogue: storage.Catalogue, group_by: str | None, key: str | None) -> str:
    """A group's name for people: the department's or category's French label, the
    manager's name, the UAI; for no key, what its absence means."""
    if key is None:
        return {"department": "non orienté", "manager": "non attribué"}.get(group_by or "", "non renseigné")
    if group_by == "department":
        return (catalogue.teams.get(key) or {}).get("label_fr") or key
    if group_by == "category":
        return (catalogue.categories.get(key) or {}).get("label_fr") or key
    if group_by == "manager":
        return catalogue.manager_name(key) or key
    return key


# -- answers: JSON or CSV ------------------------------------------------------------------------------------------


def wants_csv(request: Request, query: dict[str, Any]) -> bool:
    if query.get("format"):
        return bool(query["format"] == "csv")
    return request.accept_mimetypes.best_match(["application/json", CSV]) == CSV


def csv_response(header: list[str], rows: list[list[Any]], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return Response(out.getvalue(), mimetype=CSV, content_type=f"{CSV}; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Vary": "Accept"})


def summary_csv(report: dict[str, Any]) -> Response:
    """One row per figure and group (``total`` first): the JSON's figures, flattened."""
    period = report["period"]
    rows = [["total", "total", name, value] for name, value in figures.flatten(report["total"])]
    for group in report["groups"]:
        rows += [[group["key"], group["label"], name, value] for name, value in figures.flatten(group["figures"])]
    return csv_response(["group", "label", "figure", "value"], rows,
                        f"guichet-summary-{period['from']}-{period['to']}.csv")


def categories_csv(report: dict[str, Any]) -> Response:
    period = report["period"]
    rows = [[i["category_id"], i["label"], i["created"], i["previous"], i["trend"],
             "; ".join(f"{t['term']} ({t['tickets']})" for t in i["terms"])] for i in report["items"]]
    return csv_response(["category_id", "label", "created", "previous", "trend", "terms"], rows,
                        f"guichet-categories-{period['from']}-{period['to']}.csv")


def timeline_csv(report: dict[str, Any]) -> Response:
    period = report["period"]
    header = list(report["items"][0]) if report["items"] else ["from", "to"]
    return csv_response(header, [list(item.values()) for item in report["items"]],
                        f"guichet-timeline-{period['from']}-{period['to']}.csv")


def _query(request: Request, schema: schemas.ReportQuery) -> dict[str, Any]:
    values = {key: request.args.get(key) for key in request.args}
    return load_query(schema, values)


class ReportingHttp(ServiceProbes):
    """HTTP entrypoints of the reporting service (mixed into ``ReportingService``)."""

    backend: ReportingBackend

    openapi_document = staticmethod(openapi_document)

    @http("GET", "/api/v1/reports/summary")
    def summary(self, request: Request) -> Response:
        identity = self.backend.identity(request)
        query = _query(request, schemas.ReportQuery())
        report = self.backend.summary(identity, query)
        return summary_csv(report) if wants_csv(request, query) else json_response(report, headers={"Vary": "Accept"})

    @http("GET", "/api/v1/reports/categories")
    def categories(self, request: Request) -> Response:
        identity = self.backend.identity(request)
        query = _query(request, schemas.CategoriesQuery())
        report = self.backend.categories(identity, query)
        return categories_csv(report) if wants_csv(request, query) else json_response(report, headers={"Vary": "Accept"})

    @http("GET", "/api/v1/reports/timeline")
    def timeline(self, request: Request) -> Response:
        identity = self.backend.identity(request)
        query = _query(request, schemas.TimelineQuery())
        report = self.backend.timeline(identity, query)
        return timeline_csv(report) if wants_csv(request, query) else json_response(report, headers={"Vary": "Accept"})
