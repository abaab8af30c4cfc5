"""The reports' arithmetic (pure: no Nameko, psycopg or HTTP): periods, medians and
90th percentiles, the figures of a group of facts, recurring subject terms, and the
flat CSV rows of a report.

Conventions (documented in the OpenAPI document too):

- A period is ``[from, to]`` in whole days of the helpdesk's time zone; an academic
  year runs from 1 September to 31 August; a week starts on Monday.
- Median and p90 interpolate linearly between the two nearest values (PostgreSQL's
  ``percentile_cont``, which the storage uses; numpy's default); ``None`` when there is
  no value.
- Hours are rounded to 0.01, rates to 0.0001.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import snowballstemmer

from shared.contract import NOT_FINAL

PERIODS = ("day", "week", "month", "academic-year")
GROUPS = ("department", "category", "establishment", "manager")
STEPS = ("day", "week", "month")
WAITING_STATUSES = tuple(s for s in ("FREE", "IN_PROGRESS", "WAITING_FOR_INFO", "POSTPONED", "CLOSURE_REQUESTED")
                         if s in NOT_FINAL)
RESOLUTIONS = ("approved", "expired", "closed_by_owner", "cancelled", "refused")
ACADEMIC_YEAR_START_MONTH = 9


# -- periods ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Whole days ``first`` to ``last`` (both included), in ``zone``."""

    kind: str
    first: date
    last: date
    zone: ZoneInfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), self.zone)

    @property
    def end(self) -> datetime:
        """The first instant after the period."""
        return datetime.combine(self.last + timedelta(days=1), time(), self.zone)

    def previous(self) -> Period:
        """The period just before, of the same kind (the same number of days for dates)."""
        day = self.first - timedelta(days=1)
        if self.kind in ("day", "week", "month", "academic-year"):
            return period_of(self.kind, day, self.zone)
        length = (self.last - self.first).days + 1
        return Period("dates", self.first - timedelta(days=length), day, self.zone)

    def view(self) -> dict[str, Any]:
        return {"kind": self.kind, "from": self.first.isoformat(), "to": self.last.isoformat(),
                "timezone": self.zone.key}


def default_step(period: Period) -> str:
    """Days for a month or less, weeks up to about half a year, months beyond."""
    days = (period.last - period.first).days + 1
    return "day" if days <= 31 else "week" if days <= 190 else "month"


def steps(period: Period, step: str) -> list[tuple[date, date]]:
    """The days, weeks (from Monday) or months that cover ``period``, each cut to it:
    ``(first day, last day)``."""
    found = []
    first = period_of(step, period.first, period.zone).first
    while first <= period.last:
        whole = period_of(step, first, period.zone)
        found.append((max(whole.first, period.first), min(whole.last, period.last)))
        first = whole.last + timedelta(days=1)
    return found


def timeline(period: Period, step: str, found: Mapping[str, Mapping[date, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One item per step of ``period`` (every step, those without tickets too), from
    what the storage counted per step."""
    items = []
    for first, last in steps(period, step):
        key = period_of(step, first, period.zone).first
        created = found.get("created", {}).get(key) or {}
        responses = found.get("first_responses", {}).get(key) or {}
        resolved = found.get("resolved", {}).get(key) or {}
        items.append({
            "from": first.isoformat(), "to": last.isoformat(),
            "created": created.get("n", 0), "resolved": resolved.get("n", 0),
            "first_responses": responses.get("n", 0),
            "first_response_median_hours": _hours(responses.get("wall_p50")),
            "first_response_median_working_hours": _hours(responses.get("working_p50")),
            "resolution_median_hours": _hours(resolved.get("wall_p50")),
            "resolution_median_working_hours": _hours(resolved.get("working_p50")),
        })
    return items


def period_of(kind: str, day: date, zone: ZoneInfo) -> Period:
    """The ``kind`` period (``PERIODS``) that contains ``day``."""
    if kind == "day":
        return Period(kind, day, day, zone)
    if kind == "week":
        first = day - timedelta(days=day.weekday())
        return Period(kind, first, first + timedelta(days=6), zone)
    if kind == "month":
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return Period(kind, first, following - timedelta(days=1), zone)
    if kind == "academic-year":
        year = day.year if day.month >= ACADEMIC_YEAR_START_MONTH else day.year - 1
        return Period(kind, date(year, ACADEMIC_YEAR_START_MONTH, 1),
                      date(year + 1, ACADEMIC_YEAR_START_MONTH, 1) - timedelta(days=1), zone)
    raise ValueError(f"unknown period {kind!r}")


# -- statistics ------------------------------------------------------------------------------------------


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# -- a group's figures -------------------------------------------------------------------------------------


def _durations(row: dict[str, Any] | None, wall: str = "wall", working: str = "working") -> dict[str, Any]:
    row = row or {}
    return {
        "count": row.get("n", 0),
        "median_hours": _hours(row.get(f"{wall}_p50")),
        "p90_hours": _hours(row.get(f"{wall}_p90")),
        "median_working_hours": _hours(row.get(f"{working}_p50")),
        "p90_working_hours": _hours(row.get(f"{working}_p90")),
    }


def figures(found: Mapping[str, Any]) -> dict[str, Any]:
    """The summary figures of one group (see ``schemas.Figures`` for their meaning) from
    what the storage added up: ``{kind: aggregate row}``, ``periods`` per status, and the
    backlog counts. A kind with no row had no fact."""
    created, resolved = found.get("created") or {}, found.get("resolved") or {}
    approvals, periods = found.get("approvals") or {}, found.get("periods") or {}
    status_time = {}
    for status in WAITING_STATUSES:
        row = periods.get(status) or {}
        status_time[status] = {**_durations(row), "total_hours": _hours(row.get("total", 0.0)),
                               "total_working_hours": _hours(row.get("total_working", 0.0))}
    escalation = _durations(created, "escalation", "escalation_working")
    del escalation["count"]
    ratings, with_feedback = approvals.get("ratings", 0), approvals.get("with_feedback", 0)
    return {
        "created": created.get("n", 0),
        "resolved": resolved.get("n", 0),
        "backlog_start": found.get("backlog_start", 0),
        "backlog_end": found.get("backlog_end", 0),
        "resolutions": {kind: resolved.get(kind, 0) for kind in RESOLUTIONS},
        "first_response": _durations(found.get("first_responses")),
        "resolution": _durations(resolved),
        "status_time": status_time,
        "reopened": resolved.get("reopened", 0),
        "reopen_rate": _rate(resolved.get("reopened", 0), resolved.get("n", 0)),
        "escalation": {"escalated": created.get("escalated", 0),
                       "rate": _rate(created.get("escalated", 0), created.get("n", 0)), **escalation},
        "satisfaction": {
            "approvals": approvals.get("n", 0),
            "ratings": ratings,
            "average": round(approvals["average"], 2) if approvals.get("average") is not None else None,
            "distribution": {str(n): approvals.get(f"rated_{n}", 0) for n in range(1, 6)},
            "with_feedback": with_feedback,
            "feedback_share": _rate(with_feedback, approvals.get("n", 0)),
        },
    }


def trend(current: int, previous: int) -> float | None:
    """The change against the previous period as a ratio (0.5: half as many again);
    None when the previous period had none."""
    return round((current - previous) / previous, 4) if previous else None


# -- recurring subject terms ------------------------------------------------------------------------------------

# Common French words (and a few of the helpdesk's own) that say nothing of a problem.
STOP_WORDS = frozenset("""
a à afin ai aie aient aies ait alors as au aucun aucune aupres auprès aussi autre autres aux avais avait avant avec
avez avoir avons bien bon bonjour c ça car ce ceci cela celle celles celui cependant ces cet cette ceux chez ci comme
comment d dans de des deja déjà depuis dois doit donc dont du elle elles en encore entre es est et etaient étaient
etait était etc ete été etre être eu eux faire fait faut fois hors ici il ils j je jusqu l la le les leur leurs lui m
ma mais me meme même merci mes moi mon n ne ni non nos notre nous on ont ou où par parce pas peu peut peux plus pour
pourquoi probleme problème problemes problèmes puis qu quand que quel quelle quelles quels qui quoi s sa sans se ses
si sil son sont sous suis sur t ta te tes toi ton toujours tous tout toute toutes tres très tu un une vos votre vous
y svp sv plait plaît demande aide besoin
""".split())
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", re.UNICODE)
_stemmer = snowballstemmer.stemmer("french")


def _plain(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")


def words(subject: str) -> list[str]:
    """A subject's words, lower case, elisions cut (``l'imprimante`` -> ``imprimante``),
    stop words and one-letter words left out."""
    found = []
    for token in _WORD.findall(subject.lower()):
        token = re.split(r"['’]", token)[-1]
        for part in token.split("-"):
            if len(part) > 1 and part not in STOP_WORDS and _plain(part) not in STOP_WORDS:
                found.append(part)
    return found


def top_terms(subjects: Iterable[str], limit: int = 10) -> list[dict[str, Any]]:
    """The most frequent terms of ``subjects``: words counted by their French stem, at
    most once per subject, each shown in its most frequent form; ties by term."""
    per_stem: Counter[str] = Counter()
    forms: dict[str, Counter[str]] = {}
    for subject in subjects:
        seen: set[str] = set()
        for word in words(subject):
            stem = _stemmer.stemWord(_plain(word))
            forms.setdefault(stem, Counter())[word] += 1
            if stem not in seen:
                seen.add(stem)
                per_stem[stem] += 1
    ranked = sorted(per_stem.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [{"term": forms[stem].most_common(1)[0][0], "stem": stem, "tickets": count} for stem, count in ranked]


# -- CSV ----------------------------------------------------------------------------------------------------------------


def flatten(value: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` as ``[("a.b", 1)]``, in order."""
    flat: list[tuple[str, Any]] = []
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, Mapping):
            flat.extend(flatten(item, name))
        else:
            flat.append((name, item))
    return flat

