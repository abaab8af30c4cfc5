"""The working-hours calendar (``shared.calendar``): opening hours, weekends, French
public holidays, time zones and daylight saving, deadlines in working hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.calendar import CalendarError, WorkingCalendar, parse_working_hours

PARIS = ZoneInfo("Europe/Paris")
CAL = WorkingCalendar()  # 08:30-12:00, 13:30-17:30: 7.5 hours a day


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def hours(start: datetime, end: datetime, cal: WorkingCalendar = CAL) -> float:
    return cal.working_hours(start, end)


def test_within_one_slot_and_across_lunch() -> None:
    assert hours(paris(2026, 6, 2, 9), paris(2026, 6, 2, 11)) == 2.0
    # 11:00-12:00 then 13:30-14:00: the lunch break does not count.
    assert hours(paris(2026, 6, 2, 11), paris(2026, 6, 2, 14)) == 1.5
    # before opening and after closing count nothing
    assert hours(paris(2026, 6, 2, 6), paris(2026, 6, 2, 8, 30)) == 0.0
    assert hours(paris(2026, 6, 2, 17, 30), paris(2026, 6, 2, 23)) == 0.0
    assert hours(paris(2026, 6, 2, 0), paris(2026, 6, 3, 0)) == 7.5


def test_a_weekend_and_labour_day() -> None:
    # Thursday 30 April 16:00 -> Monday 4 May 10:00: 1.5 h on Thursday, Friday 1 May
    # is a public holiday, the weekend counts nothing, 1.5 h on Monday.
    start, end = paris(2026, 4, 30, 16), paris(2026, 5, 4, 10)
    assert hours(start, end) == 3.0
    assert (end - start).total_seconds() / 3600 == 90.0
    assert CAL.is_holiday(date(2026, 5, 1))
    assert not CAL.is_working_day(date(2026, 5, 2))


def test_ascension_thursday() -> None:
    # Ascension 2026 is Thursday 14 May: Wednesday 13:30-17:30, then Friday 08:30-09:00.
    assert CAL.is_holiday(date(2026, 5, 14))
    assert hours(paris(2026, 5, 13, 12), paris(2026, 5, 15, 9)) == 4.5


def test_a_whole_year() -> None:
    # 2026: 261 weekdays, 9 public holidays on weekdays (1 Jan, Easter Monday, 1 May,
    # 8 May, Ascension, Whit Monday, 14 July, 11 November, Christmas): 252 days x 7.5 h.
    assert hours(paris(2025, 12, 31, 18), paris(2027, 1, 1)) == 1890.0


def test_daylight_saving_change() -> None:
    # Summer time starts on Sunday 29 March 2026: 63 wall-clock hours, 1 working hour.
    start, end = paris(2026, 3, 27, 17), paris(2026, 3, 30, 9)
    assert hours(start, end) == 1.0
    assert (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() / 3600 == 63.0


def test_instants_in_other_zones_are_the_same_instants() -> None:
    start = paris(2026, 6, 2, 9).astimezone(UTC)
    assert hours(start, start + timedelta(hours=2)) == 2.0


def test_end_before_start_is_zero() -> None:
    assert hours(paris(2026, 6, 3), paris(2026, 6, 2)) == 0.0


def test_configured_by_the_environment() -> None:
    cal = WorkingCalendar.from_env({"WORKING_HOURS": "09:00-17:00"})
    assert hours(paris(2026, 6, 2), paris(2026, 6, 3), cal) == 8.0
    moselle = WorkingCalendar.from_env({"WORKING_HOLIDAYS_SUBDIVISION": "57"})
    assert moselle.is_holiday(date(2026, 4, 3)) and not CAL.is_holiday(date(2026, 4, 3))  # Good Friday
    assert WorkingCalendar.from_env({}).slots == CAL.slots


@pytest.mark.parametrize("text", ["", "9-17", "08:30", "12:00-10:00", "08:00-12:00,11:00-14:00", "25:00-26:00"])
def test_unreadable_working_hours_are_refused(text: str) -> None:
    with pytest.raises(CalendarError):
        parse_working_hours(text)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(CalendarError):
        WorkingCalendar.from_env({"WORKING_TIMEZONE": "Mars/Olympus"})


def test_deadline_in_working_hours() -> None:
    # 3 working hours from Thursday 30 April 16:00 end on Monday 4 May at 10:00.
    assert CAL.add_working_hours(paris(2026, 4, 30, 16), 3) == paris(2026, 5, 4, 10).astimezone(UTC)
    # From a Saturday, the clock starts at Monday's opening.
    assert CAL.add_working_hours(paris(2026, 6, 6, 10), 0) == paris(2026, 6, 8, 8, 30).astimezone(UTC)
    assert CAL.add_working_hours(paris(2026, 6, 6, 10), 4) == paris(2026, 6, 8, 14).astimezone(UTC)
    with pytest.raises(ValueError):
        CAL.add_working_hours(paris(2026, 6, 6), -1)


moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC))


@settings(max_examples=200, deadline=None)
@given(moments, moments, moments)
def test_working_time_adds_up(a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted((a, b, c))
    assert CAL.working_seconds(a, c) == pytest.approx(CAL.working_seconds(a, b) + CAL.working_seconds(b, c))


@settings(max_examples=200, deadline=None)
@given(moments, st.floats(min_value=0, max_value=2000, allow_nan=False))
def test_deadline_is_the_inverse_of_working_time(start: datetime, working_hours: float) -> None:
    deadline = CAL.add_working_hours(start, working_hours)
    assert CAL.working_hours(start, deadline) == pytest.approx(working_hours, abs=1e-6)


def test_matches_a_day_by_day_count() -> None:
    # The arithmetic shortcut for whole days agrees with counting day by day.
    start, end = paris(2026, 12, 20, 10), paris(2027, 3, 3, 15)
    day, expected = start.date() + timedelta(days=1), 0
    while day < end.date():
        expected += 7.5 if CAL.is_working_day(day) else 0
        day += timedelta(days=1)
    # first day: Sunday 20 December (nothing); last day: Wednesday 3 March 08:30-12:00, 13:30-15:00
    assert hours(start, end) == expected + 5.0
