"""The helpdesk's working-hours calendar: which hours count as working time.

Working time is the opening hours (``WORKING_HOURS``, e.g. ``08:30-12:00,13:30-17:30``)
of the working weekdays (Monday to Friday), minus French public holidays (the
``holidays`` package; ``WORKING_HOLIDAYS_SUBDIVISION`` adds a subdivision's own, e.g.
``57`` for Moselle's Good Friday and 26 December), in the helpdesk's time zone
(``WORKING_TIMEZONE``, ``Europe/Paris`` by default).

Pure: no I/O but the ``holidays`` tables. Reporting counts first-response and
resolution times in working hours with it; escalation's first-response deadlines are
meant to use ``add_working_hours``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, cached_property
from zoneinfo import ZoneInfo

import holidays

DEFAULT_WORKING_HOURS = "08:30-12:00,13:30-17:30"
DEFAULT_TIMEZONE = "Europe/Paris"
WEEKDAYS = frozenset(range(5))  # Monday .. Friday


class CalendarError(ValueError):
    """A working-hours setting that cannot be read."""


def parse_working_hours(text: str) -> tuple[tuple[time, time], ...]:
    """``"08:30-12:00,13:30-17:30"`` as ordered, non-overlapping (start, end) pairs."""
    slots: list[tuple[time, time]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        start_text, sep, end_text = part.partition("-")
        try:
            if not sep:
                raise ValueError
            start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
        except ValueError:
            raise CalendarError(f"working hours {part!r}: expected HH:MM-HH:MM") from None
        if start >= end:
            raise CalendarError(f"working hours {part!r}: the start must come before the end")
        if slots and start < slots[-1][1]:
            raise CalendarError(f"working hours {part!r}: slots must be in order and must not overlap")
        slots.append((start, end))
    if not slots:
        raise CalendarError("working hours: at least one slot HH:MM-HH:MM is needed")
    return tuple(slots)


@cache
def _holidays_of(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """The public holidays of one year (cached: the package computes them per year)."""
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


@dataclass(frozen=True)
class WorkingCalendar:
    """Opening hours on working days, French public holidays excluded."""

    slots: tuple[tuple[time, time], ...] = field(default_factory=lambda: parse_working_hours(DEFAULT_WORKING_HOURS))
    timezone: str = DEFAULT_TIMEZONE
    weekdays: frozenset[int] = WEEKDAYS
    country: str = "FR"
    subdivision: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkingCalendar:
        """The calendar configured by ``WORKING_HOURS``, ``WORKING_TIMEZONE`` and
        ``WORKING_HOLIDAYS_SUBDIVISION``, with the defaults above."""
        env = os.environ if env is None else env
        zone = env.get("WORKING_TIMEZONE") or DEFAULT_TIMEZONE
        try:
            ZoneInfo(zone)
        except (KeyError, ValueError):
            raise CalendarError(f"WORKING_TIMEZONE {zone!r}: unknown time zone") from None
        return cls(
            slots=parse_working_hours(env.get("WORKING_HOURS") or DEFAULT_WORKING_HOURS),
            timezone=zone,
            subdivision=env.get("WORKING_HOLIDAYS_SUBDIVISION") or None,
        )

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def seconds_per_day(self) -> int:
        return sum(_seconds(end) - _seconds(start) for start, end in self.slots)

    def is_holiday(self, day: date) -> bool:
        return day in _holidays_of(self.country, self.subdivision, day.year)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.weekdays and not self.is_holiday(day)

    def _holiday_working_days(self, first: date, last: date) -> int:
        """How many public holidays fall on a working weekday from ``first`` to ``last``."""
        return sum(1 for year in range(first.year, last.year + 1)
                   for day in _holidays_of(self.country, self.subdivision, year)
                   if first <= day <= last and day.weekday() in self.weekdays)

    def _working_days_between(self, first: date, last: date) -> int:
        """How many working days from ``first`` to ``last``, both included (0 if empty)."""
        if last < first:
            return 0
        days = (last - first).days + 1
        weeks, rest = divmod(days, 7)
        count = weeks * len(self.weekdays)
        count += sum(1 for i in range(rest) if (first.weekday() + i) % 7 in self.weekdays)
        return count - self._holiday_working_days(first, last)

    @cached_property
    def _openings(self) -> dict[date, tuple[tuple[datetime, datetime], ...]]:
        return {}

    def openings(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The opening slots of ``day`` as UTC instants (none on a day off); cached,
        as reports compute thousands of durations over the same days."""
        found = self._openings.get(day)
        if found is None:
            found = tuple(
                (datetime.combine(day, start, self.zone).astimezone(UTC),
                 datetime.combine(day, end, self.zone).astimezone(UTC))
                for start, end in self.slots
            ) if self.is_working_day(day) else ()
            self._openings[day] = found
        return found

    def _day_seconds(self, day: date, start: datetime | None, end: datetime | None) -> float:
        """Working seconds of ``day`` between ``start`` and ``end`` (UTC instants; None:
        the whole day)."""
        total = 0.0
        for opens, closes in self.openings(day):
            lo = max(opens, start) if start is not None else opens
            hi = min(closes, end) if end is not None else closes
            if hi > lo:
                total += (hi - lo).total_seconds()
        return total

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Working seconds from ``start`` to ``end`` (aware datetimes); 0 if ``end`` is
        not after ``start``."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if end <= start:
            return 0.0
        first, last = start.astimezone(self.zone).date(), end.astimezone(self.zone).date()
        if first == last:
            return self._day_seconds(first, start, end)
        total = self._day_seconds(first, start, None) + self._day_seconds(last, None, end)
        # Whole days in between count their full opening hours (arithmetic, not a loop,
        # so a year-long ticket costs no more than a day-long one).
        total += self._working_days_between(first + timedelta(days=1), last - timedelta(days=1)) * self.seconds_per_day
        return total

    def working_hours(self, start: datetime, end: datetime) -> float:
        """``working_seconds`` in hours."""
        return self.working_seconds(start, end) / 3600

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The instant when ``hours`` of working time have passed since ``start`` (an
        aware datetime; the answer is in UTC). A deadline that lands exactly on a
        closing time is that closing time."""
        if hours < 0:
            raise ValueError("hours must not be negative")
        remaining = hours * 3600
        moment = start.astimezone(UTC)
        day = moment.astimezone(self.zone).date()
        # A calendar with no working day at all would loop forever: refuse it.
        if not self.weekdays or self.seconds_per_day == 0:
            raise CalendarError("the calendar has no working time")
        while True:
            for opens, closes in self.openings(day):
                lo = max(opens, moment)
                if closes <= lo:
                    continue
                available = (closes - lo).total_seconds()
                if remaining <= available:
                    return lo + timedelta(seconds=remaining)
                remaining -= available
            day += timedelta(days=1)
