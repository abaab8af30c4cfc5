"""The OpenAPI document of the reports HTTP API, generated from the same marshmallow
schemas that validate queries."""

from __future__ import annotations

from functools import cache
from typing import Any

from services.reporting import schemas
from shared.openapi import BEARER, base_spec, problems
from shared.openapi import json_content as _json

CSV_NOTE = ("JSON by default; CSV (the same figures, one row each) with `Accept: text/csv` or `format=csv`."
            " Admins see every figure, a manager their departments', an ENT referent their establishment's;"
            " anyone else gets 403. A filter outside what the caller may see gives zeros, not an error.")


def _csv_and(schema: str) -> dict[str, Any]:
    return {**_json(schema), "text/csv": {"schema": {"type": "string"}}}


@cache
def openapi_document() -> dict[str, Any]:
    spec = base_spec(
        "reporting",
        "Statistics projected from the ticket events: volumes, backlog, first-response and resolution times"
        " (wall-clock and working hours), time in each status, reopenings, escalations, satisfaction and"
        " recurring problems. Errors are application/problem+json (RFC 9457).",
        (schemas.Summary, schemas.Categories, schemas.Timeline, schemas.Problem),
    )
    spec.path("/api/v1/reports/summary", operations={"get": {
        "summary": "the figures of a period, in total and per group",
        "description": CSV_NOTE + " Times are from the ticket's creation; medians and p90 interpolate linearly.",
        "security": BEARER,
        "parameters": [{"in": "query", "schema": schemas.ReportQuery}],
        "responses": {"200": {"description": "the figures", "content": _csv_and("Summary")},
                      **problems(401, 403, 422)},
    }})
    spec.path("/api/v1/reports/categories", operations={"get": {
        "summary": "recurring problems: categories by volume, their trend and their most frequent subject terms",
        "description": CSV_NOTE + " Terms are counted by French stem, stop words left out, once per ticket.",
        "security": BEARER,
        "parameters": [{"in": "query", "schema": schemas.CategoriesQuery}],
        "responses": {"200": {"description": "categories, most tickets first", "content": _csv_and("Categories")},
                      **problems(401, 403, 422)},
    }})
    spec.path("/api/v1/reports/timeline", operations={"get": {
        "summary": "per day, week or month of a period: created, resolved, median first-response and resolution times",
        "description": CSV_NOTE + " Every step is listed, those without tickets too (to draw a chart).",
        "security": BEARER,
        "parameters": [{"in": "query", "schema": schemas.TimelineQuery}],
        "responses": {"200": {"description": "the steps, in order", "content": _csv_and("Timeline")},
                      **problems(401, 403, 422)},
    }})
    return spec.to_dict()
