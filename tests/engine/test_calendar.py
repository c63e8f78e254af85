"""Business days, due-date rolls, history windows and send windows."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.calendar import (
    BusinessCalendar,
    SendWindows,
    add_months,
    local_datetime,
)
from engine.scope import Duration
from tests.engine import builders

ROOT = Path(__file__).resolve().parents[2]
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
D = dt.date.fromisoformat


@pytest.fixture(scope="module")
def brazil() -> BusinessCalendar:
    # Carnival 2025 is a bank holiday, not a national one: the policy adds it.
    extra = ("2025-03-03", "2025-03-04")
    return BusinessCalendar(builders.calendar("BR", extra=extra), language="pt_BR")


def test_national_holidays_come_from_the_holidays_package(
    brazil: BusinessCalendar,
) -> None:
    assert brazil.holiday_name(D("2024-11-15")) == "Proclamação da República"
    assert brazil.holiday_name(D("2025-04-21")) == "Tiradentes"
    assert brazil.holiday_name(D("2024-11-14")) is None


def test_extra_holidays_close_the_day(brazil: BusinessCalendar) -> None:
    assert brazil.holiday_name(D("2025-03-03")) == "extra holiday"
    assert not brazil.is_business_day(D("2025-03-04"))
    assert brazil.is_business_day(D("2025-03-05"))


def test_subdivision_adds_its_own_holidays() -> None:
    national = BusinessCalendar(builders.calendar("BR"), language="pt_BR")
    sao_paulo = BusinessCalendar(
        builders.calendar("BR", subdivision="SP"), language="pt_BR"
    )
    # 9 July, the Constitutionalist Revolution, is a São Paulo state holiday.
    assert national.holiday_name(D("2024-07-09")) is None
    assert sao_paulo.holiday_name(D("2024-07-09")) is not None


def test_no_country_means_only_weekends_and_extra_days() -> None:
    plain = BusinessCalendar(builders.calendar(None, extra=("2024-11-14",)))
    assert plain.is_business_day(D("2024-11-15"))
    assert not plain.is_business_day(D("2024-11-14"))
    assert not plain.is_business_day(D("2024-11-16"))


def test_holiday_names_do_not_depend_on_the_process_locale() -> None:
    code = (
        "from engine.calendar import BusinessCalendar\n"
        "from tests.engine import builders\n"
        "import datetime as dt\n"
        "c = BusinessCalendar(builders.calendar('BR'), language='pt_BR')\n"
        "print(c.holiday_name(dt.date(2024, 11, 15)))\n"
    )
    names = set()
    for lang in ("C", "en_US.UTF-8", "pt_BR.UTF-8"):
        env = {**os.environ, "LANG": lang, "LC_ALL": lang}
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            encoding="utf-8",
            cwd=ROOT,
        )
        names.add(result.stdout.strip())
    assert names == {"Proclamação da República"}


def test_unsupported_language_falls_back_to_the_country_default() -> None:
    calendar = BusinessCalendar(builders.calendar("BR"), language="de_DE")
    assert calendar.holiday_name(D("2024-11-15")) == "Proclamação da República"


@pytest.mark.parametrize(
    ("due", "rule", "effective"),
    [
        # Friday 15 Nov 2024 is Republic Day: the boleto is on time on Monday.
        ("2024-11-15", "next_business_day", "2024-11-18"),
        ("2024-11-15", "previous_business_day", "2024-11-14"),
        ("2024-11-15", "none", "2024-11-15"),
        # Tiradentes 2025 is a Monday.
        ("2025-04-21", "next_business_day", "2025-04-22"),
        # A Sunday.
        ("2024-11-17", "next_business_day", "2024-11-18"),
        ("2024-11-17", "previous_business_day", "2024-11-14"),
        # An ordinary Wednesday stays.
        ("2024-11-13", "next_business_day", "2024-11-13"),
        # Carnival Monday and Tuesday (extra holidays) after a weekend.
        ("2025-03-01", "next_business_day", "2025-03-05"),
    ],
)
def test_due_date_roll(due: str, rule: str, effective: str) -> None:
    calendar = BusinessCalendar(
        builders.calendar("BR", extra=("2025-03-03", "2025-03-04"), roll=rule),
        language="pt_BR",
    )
    assert calendar.roll(D(due)) == D(effective)


@pytest.mark.parametrize(
    ("start", "count", "expected"),
    [
        ("2024-11-13", 2, "2024-11-18"),  # Wed + 2: Thu, (Fri holiday) Mon
        ("2024-11-18", -1, "2024-11-14"),  # Mon - 1 skips the weekend and 15th
        ("2024-11-18", -2, "2024-11-13"),
        ("2024-11-16", 0, "2024-11-16"),  # zero stays, even on a Saturday
        ("2024-11-16", 1, "2024-11-18"),
        ("2024-11-16", -1, "2024-11-14"),
        ("2024-12-31", 1, "2025-01-02"),  # across the year and New Year's Day
    ],
)
def test_add_business_days(
    brazil: BusinessCalendar, start: str, count: int, expected: str
) -> None:
    assert brazil.add_business_days(D(start), count) == D(expected)


def test_shift_counts_calendar_days_unless_business(brazil: BusinessCalendar) -> None:
    assert brazil.shift(D("2024-11-18"), -3, business=False) == D("2024-11-15")
    # 20 Nov is Black Awareness Day (national since 2024): +2 business is 21 Nov.
    assert brazil.shift(D("2024-11-18"), 2, business=True) == D("2024-11-21")


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        ("2024-08-31", -6, "2024-02-29"),
        ("2023-08-31", -6, "2023-02-28"),
        ("2024-01-31", 1, "2024-02-29"),
        ("2024-03-31", -1, "2024-02-29"),
        ("2024-12-15", 1, "2025-01-15"),
        ("2025-01-15", -1, "2024-12-15"),
        ("2024-05-10", -12, "2023-05-10"),
    ],
)
def test_add_months_clamps_to_the_month_end(
    day: str, months: int, expected: str
) -> None:
    assert add_months(D(day), months) == D(expected)


@pytest.mark.parametrize(
    ("window", "start"),
    [
        (Duration(6, "months"), "2024-02-29"),
        (Duration(1, "years"), "2023-08-31"),
        (Duration(2, "weeks"), "2024-08-17"),
        (Duration(10, "days"), "2024-08-21"),
        (Duration(2, "business_days"), "2024-08-29"),
    ],
)
def test_history_window_start(
    brazil: BusinessCalendar, window: Duration, start: str
) -> None:
    assert brazil.window_start(D("2024-08-31"), window) == D(start)


# -- local times across DST -------------------------------------------------


def test_a_six_oclock_window_stays_at_six_across_the_2018_dst_change() -> None:
    # DST started in São Paulo on 2018-11-04: -03:00 before, -02:00 after.
    before = local_datetime(D("2018-11-01"), dt.time(6), SAO_PAULO)
    after = local_datetime(D("2018-11-05"), dt.time(6), SAO_PAULO)
    assert before.isoformat() == "2018-11-01T06:00:00-03:00"
    assert after.isoformat() == "2018-11-05T06:00:00-02:00"
    # Four calendar days apart, but 95 hours, not 96.
    elapsed = after.astimezone(dt.UTC) - before.astimezone(dt.UTC)
    assert elapsed == dt.timedelta(hours=95)


def test_a_time_inside_the_spring_forward_gap_moves_forward() -> None:
    # 00:00 to 00:59 did not exist on 2018-11-04 in São Paulo.
    midnight = local_datetime(D("2018-11-04"), dt.time(0), SAO_PAULO)
    half_past = local_datetime(D("2018-11-04"), dt.time(0, 30), SAO_PAULO)
    assert midnight.isoformat() == "2018-11-04T01:00:00-02:00"
    assert half_past.isoformat() == "2018-11-04T01:30:00-02:00"


def test_an_ambiguous_time_is_its_first_occurrence() -> None:
    # DST ended on 2018-02-18 at 00:00: 23:00-23:59 of the 17th came twice.
    first = local_datetime(D("2018-02-17"), dt.time(23, 30), SAO_PAULO)
    assert first.isoformat() == "2018-02-17T23:30:00-02:00"


# -- send windows -----------------------------------------------------------


@pytest.fixture(scope="module")
def windows(brazil: BusinessCalendar) -> SendWindows:
    table = {
        "comercial": builders.window("comercial"),
        "split": builders.window("split", weekdays=("08:00-12:00", "14:00-18:00")),
        "always": builders.window(
            "always",
            weekdays="07:00-21:00",
            saturday="07:00-21:00",
            sunday="07:00-21:00",
            open_on_holidays=True,
        ),
    }
    return SendWindows(table, SAO_PAULO, brazil)


def test_openings_in_local_time_across_dst(windows: SendWindows) -> None:
    comercial = windows.windows["comercial"]
    [before] = windows.openings(comercial, D("2018-11-01"))
    [after] = windows.openings(comercial, D("2018-11-05"))
    assert before.start.isoformat() == "2018-11-01T08:00:00-03:00"
    assert after.start.isoformat() == "2018-11-05T08:00:00-02:00"
    assert after.end.isoformat() == "2018-11-05T20:00:00-02:00"


def test_window_closed_on_sunday_and_holidays(windows: SendWindows) -> None:
    comercial = windows.windows["comercial"]
    assert windows.openings(comercial, D("2024-11-17")) == []
    assert windows.openings(comercial, D("2024-11-15")) == []
    reason = windows.closed_reason(comercial, D("2024-11-15"))
    assert reason is not None and "Proclamação da República" in reason
    sunday = windows.closed_reason(comercial, D("2024-11-17"))
    assert sunday is not None and "Sunday" in sunday
    saturday = windows.openings(comercial, D("2024-11-16"))
    assert [o.start.hour for o in saturday] == [9]


def test_window_open_on_holidays_when_the_policy_says_so(windows: SendWindows) -> None:
    always = windows.windows["always"]
    [opening] = windows.openings(always, D("2024-11-15"))
    assert opening.start.hour == 7


def test_send_at_narrows_the_start(windows: SendWindows) -> None:
    split = windows.windows["split"]
    narrowed = windows.openings(split, D("2024-11-13"), not_before=dt.time(10))
    assert [(o.start.hour, o.end.hour) for o in narrowed] == [(10, 12), (14, 18)]
    late = windows.openings(split, D("2024-11-13"), not_before=dt.time(13))
    assert [(o.start.hour, o.end.hour) for o in late] == [(14, 18)]
    assert windows.openings(split, D("2024-11-13"), not_before=dt.time(19)) == []


def test_current_or_later_today(windows: SendWindows) -> None:
    split = windows.windows["split"]
    at = dt.datetime(2024, 11, 13, 13, 0, tzinfo=SAO_PAULO)
    opening = windows.current_or_later_today(split, at)
    assert opening is not None and opening.start.hour == 14
    inside = dt.datetime(2024, 11, 13, 9, 30, tzinfo=SAO_PAULO)
    current = windows.current_or_later_today(split, inside)
    # The stretch open now keeps its own start: the id-bearing plan does not
    # depend on the minute the planner ran.
    assert current is not None and current.start.hour == 8
    evening = dt.datetime(2024, 11, 13, 19, 0, tzinfo=SAO_PAULO)
    assert windows.current_or_later_today(split, evening) is None


def test_next_window_skips_holiday_and_weekend(windows: SendWindows) -> None:
    comercial = windows.windows["comercial"]
    # Thursday 14 Nov 2024 at 21:00: Friday is a holiday, Saturday opens 09:00.
    at = dt.datetime(2024, 11, 14, 21, 0, tzinfo=SAO_PAULO)
    opening = windows.next_after_today(comercial, at)
    assert opening is not None
    assert opening.start.isoformat() == "2024-11-16T09:00:00-03:00"
    # Saturday evening: Sunday is closed, Monday 08:00.
    saturday = dt.datetime(2024, 11, 16, 15, 0, tzinfo=SAO_PAULO)
    monday = windows.next_after_today(comercial, saturday)
    assert (
        monday is not None and monday.start.isoformat() == "2024-11-18T08:00:00-03:00"
    )


def test_a_window_that_never_opens_has_no_next_opening(
    brazil: BusinessCalendar,
) -> None:
    never = builders.window("never", weekdays=(), saturday=None)
    windows = SendWindows({"never": never}, SAO_PAULO, brazil)
    at = dt.datetime(2024, 11, 14, 9, 0, tzinfo=SAO_PAULO)
    assert windows.next_after_today(never, at) is None


def test_describe_window(windows: SendWindows) -> None:
    text = windows.describe(windows.windows["comercial"])
    assert text.startswith("comercial (mon 08:00-20:00;")
    assert "sat 09:00-14:00" in text and "holidays closed" in text


# -- properties -------------------------------------------------------------

DAYS = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2040, 12, 31))
COUNTS = st.integers(min_value=-40, max_value=40)


@settings(max_examples=200, deadline=None)
@given(day=DAYS, count=COUNTS)
def test_business_offsets_never_land_on_a_closed_day(
    brazil: BusinessCalendar, day: dt.date, count: int
) -> None:
    result = brazil.add_business_days(day, count)
    if count != 0:
        assert brazil.is_business_day(result)
    else:
        assert result == day


@settings(max_examples=200, deadline=None)
@given(day=DAYS, count=COUNTS)
def test_business_offsets_are_monotonic_in_the_count(
    brazil: BusinessCalendar, day: dt.date, count: int
) -> None:
    assert brazil.add_business_days(day, count) < brazil.add_business_days(
        day, count + 1
    )


@settings(max_examples=200, deadline=None)
@given(first=DAYS, second=DAYS, count=COUNTS)
def test_business_offsets_are_monotonic_in_the_day(
    brazil: BusinessCalendar, first: dt.date, second: dt.date, count: int
) -> None:
    early, late = sorted((first, second))
    assert brazil.add_business_days(early, count) <= brazil.add_business_days(
        late, count
    )


@settings(max_examples=200, deadline=None)
@given(day=DAYS)
def test_a_rolled_due_date_is_a_business_day(
    brazil: BusinessCalendar, day: dt.date
) -> None:
    rolled = brazil.roll(day)
    assert brazil.is_business_day(rolled)
    assert rolled >= day
    assert (rolled - day).days < 10


@settings(max_examples=100, deadline=None)
@given(day=DAYS, hour=st.integers(0, 23), minute=st.integers(0, 59))
def test_local_datetime_keeps_the_wall_clock_outside_gaps(
    day: dt.date, hour: int, minute: int
) -> None:
    instant = local_datetime(day, dt.time(hour, minute), SAO_PAULO)
    assert instant.date() == day
    shown = (instant.hour, instant.minute)
    # Only inside a spring-forward gap (one hour) may the clock move forward.
    assert shown == (hour, minute) or shown == (hour + 1, minute)
