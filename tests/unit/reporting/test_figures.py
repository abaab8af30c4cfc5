"""The reports' arithmetic: periods, percentiles, subject terms, CSV flattening."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from services.reporting.figures import flatten, period_of, top_terms, trend, words

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(("kind", "day", "first", "last"), [
    ("day", date(2026, 5, 14), date(2026, 5, 14), date(2026, 5, 14)),
    ("week", date(2026, 5, 14), date(2026, 5, 11), date(2026, 5, 17)),
    ("month", date(2026, 2, 10), date(2026, 2, 1), date(2026, 2, 28)),
    ("month", date(2026, 12, 31), date(2026, 12, 1), date(2026, 12, 31)),
    ("academic-year", date(2026, 8, 31), date(2025, 9, 1), date(2026, 8, 31)),
    ("academic-year", date(2026, 9, 1), date(2026, 9, 1), date(2027, 8, 31)),
])
def test_periods(kind: str, day: date, first: date, last: date) -> None:
    period = period_of(kind, day, PARIS)
    assert (period.first, period.last) == (first, last)
    assert period.start.isoformat() == f"{first.isoformat()}T00:00:00+0{1 if first.month in (1, 2, 11, 12) else 2}:00"


def test_the_previous_period() -> None:
    assert period_of("month", date(2026, 3, 15), PARIS).previous().first == date(2026, 2, 1)
    previous = period_of("academic-year", date(2026, 9, 1), PARIS).previous()
    assert (previous.first, previous.last) == (date(2025, 9, 1), date(2026, 8, 31))


def test_trend() -> None:
    assert trend(3, 2) == 0.5
    assert trend(0, 4) == -1.0
    assert trend(3, 0) is None


def test_subject_words_leave_out_stop_words_and_elisions() -> None:
    assert words("L'imprimante du bâtiment B ne répond plus") == ["imprimante", "bâtiment", "répond"]
    assert words("Problème de connexion à l'ENT, merci !") == ["connexion", "ent"]


def test_terms_are_counted_by_stem_once_per_ticket() -> None:
    terms = top_terms(["Imprimante en panne", "Les imprimantes en panne, panne", "Wifi lent", "imprimante bloquée"])
    assert terms[:2] == [{"term": "imprimante", "stem": "imprim", "tickets": 3},
                         {"term": "panne", "stem": "pann", "tickets": 2}]
    assert {t["term"] for t in terms[2:]} == {"wifi", "lent", "bloquée"}
    assert top_terms([]) == []
    assert len(top_terms(["un deux trois quatre cinq six"], limit=2)) == 2


def test_flatten_keeps_the_order_and_every_leaf() -> None:
    assert flatten({"a": 1, "b": {"c": None, "d": {"e": 2}}}) == [("a", 1), ("b.c", None), ("b.d.e", 2)]
