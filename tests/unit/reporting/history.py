"""The fixed event history of ``tests/data/reporting/history.json``, read as the
reporting service keeps events."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from services.reporting.facts import Event

HISTORY = Path(__file__).resolve().parents[2] / "data" / "reporting" / "history.json"


def load() -> dict[str, Any]:
    return json.loads(HISTORY.read_text(encoding="utf-8"))


def events_by_ticket() -> dict[str, list[Event]]:
    """Ticket letter (A..F) -> its events."""
    found: dict[str, list[Event]] = {}
    for e in load()["events"]:
        found.setdefault(e["ticket"], []).append(Event(
            e["stream_version"], e["event_type"], e["schema_version"], datetime.fromisoformat(e["occurred_at"]),
            e["actor"]["id"], e["actor"]["kind"], e["data"], e["actor"]["name"]))
    return found


def messages() -> list[dict[str, Any]]:
    """The history as messages on ``tickets.events`` (without the ticket summary, which
    the reporting service does not read)."""
    return [{"event_id": f"00000000-0000-4000-8000-{i:012d}", "event_type": e["event_type"],
             "schema_version": e["schema_version"], "stream_id": f"ticket-{e['ticket_id']}",
             "stream_version": e["stream_version"], "global_position": i, "occurred_at": e["occurred_at"],
             "actor": e["actor"], "correlation_id": None, "causation_id": None, "data": e["data"]}
            for i, e in enumerate(load()["events"], start=1)]
