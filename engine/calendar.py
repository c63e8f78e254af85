"""Business days, due-date rolls and send windows in the ruleset's time zone.

Everything here works on calendar dates and wall-clock times, never on
multiples of 24 hours: "D+2 business" is two open days after the rolled due
date, and a window that opens at 08:00 opens at 08:00 local time on both
sides of a daylight-saving change.

Wall-clock times that do not exist or exist twice on a DST change day are
resolved with one fixed rule (see `local_datetime`):

- a time inside the gap of a spring-forward change is shifted forward by the
  length of the gap (00:30 on 2018-11-04 in São Paulo, a day that started at
  01:00, is 01:30 -02:00);
- a time that occurs twice on a fall-back day is its first occurrence.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import holidays

from dsl.model import WEEKDAYS, Calendar, TimeRange, Window
from engine.scope import Duration

logger = logging.getLogger(__name__)

ONE_DAY = dt.timedelta(days=1)

# How far ahead to look for the next open window. A weekly window opens
# within a week; holidays can close a few more days, never a whole year.
SEARCH_DAYS = 366

WEEKDAY_NAMES = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)


def local_datetime(day: dt.date, time: dt.time, zone: ZoneInfo) -> dt.datetime:
    """The instant a wall clock in `zone` shows `time` on `day`.

    A nonexistent local time (inside a spring-forward gap) is shifted
    forward by the gap; an ambiguous one is its first occurrence. The round
    trip through UTC is what turns zoneinfo's fold=0 reading of a gap time
    into the real instant, with the offset valid at that instant.
    """
    naive = dt.datetime.combine(day, time.replace(tzinfo=None))
    return naive.replace(tzinfo=zone).astimezone(dt.UTC).astimezone(zone)


def add_months(day: dt.date, months: int) -> dt.date:
    """Calendar month arithmetic; a day past the month's end clamps to it
    (Aug 31 - 6 months = Feb 28 or 29)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    next_month = dt.date(year + month // 12, month % 12 + 1, 1)
    last_day = (next_month - ONE_DAY).day
    return dt.date(year, month, min(day.day, last_day))


@dataclass(frozen=True)
class Opening:
    """One open stretch of a send window: [start, end), aware datetimes."""

    start: dt.datetime
    end: dt.datetime


class BusinessCalendar:
    """A ruleset's calendar: holidays, business days and the due-date roll.

    Implements `engine.scope.BusinessCalendar`. Holidays of a year are
    looked up once and cached; the `holidays` package is asked for names in
    an explicit language so that nothing depends on the process locale.
    """

    def __init__(self, spec: Calendar, *, language: str | None = None) -> None:
        self.spec = spec
        self._language = _holiday_language(spec.holidays, language)
        self._extra = {day: "extra holiday" for day in spec.extra_holidays}
        self._years: dict[int, dict[dt.date, str]] = {}
        # Every customer asks about the same few hundred days: remember.
        self._business: dict[dt.date, bool] = {}
        self._rolled: dict[dt.date, dt.date] = {}
        self._shifted: dict[tuple[dt.date, int], dt.date] = {}
        self._window_starts: dict[tuple[dt.date, int, str], dt.date] = {}

    def holiday_name(self, day: dt.date) -> str | None:
        """The holiday's name, or None on an ordinary day."""
        year = self._years.get(day.year)
        if year is None:
            year = self._load_year(day.year)
        return year.get(day)

    def is_holiday(self, day: dt.date) -> bool:
        return self.holiday_name(day) is not None

    def is_business_day(self, day: dt.date) -> bool:
        """Monday to Friday, except holidays."""
        known = self._business.get(day)
        if known is None:
            known = day.weekday() < 5 and not self.is_holiday(day)
            self._business[day] = known
        return known

    def add_business_days(self, day: dt.date, count: int) -> dt.date:
        """Move `count` business days from `day` (backwards when negative).

        Each step lands on the next (or previous) business day, so the
        result of a non-zero count is always a business day, and zero
        returns `day` itself.
        """
        step = ONE_DAY if count > 0 else -ONE_DAY
        for _ in range(abs(count)):
            day += step
            while not self.is_business_day(day):
                day += step
        return day

    def roll(self, due_date: dt.date) -> dt.date:
        """The effective due date after the calendar's roll rule."""
        rolled = self._rolled.get(due_date)
        if rolled is not None:
            return rolled
        rule = self.spec.due_date_roll
        rolled = due_date
        if rule != "none":
            step = ONE_DAY if rule == "next_business_day" else -ONE_DAY
            while not self.is_business_day(rolled):
                rolled += step
        self._rolled[due_date] = rolled
        return rolled

    def shift(self, day: dt.date, days: int, *, business: bool) -> dt.date:
        """A ladder offset from a (rolled) due date: `D-3`, `D+2 business`."""
        if not business:
            return day + dt.timedelta(days=days)
        shifted = self._shifted.get((day, days))
        if shifted is None:
            shifted = self.add_business_days(day, days)
            self._shifted[(day, days)] = shifted
        return shifted

    def window_start(self, today: dt.date, window: Duration) -> dt.date:
        """The exclusive start of a history window ending at `today`.

        A window of `6 months` on Aug 31 starts after Feb 28 (or 29): months
        and years are calendar arithmetic, never multiples of 30 days.
        """
        key = (today, window.amount, window.unit)
        start = self._window_starts.get(key)
        if start is not None:
            return start
        unit, amount = window.unit, window.amount
        if unit == "days":
            start = today - dt.timedelta(days=amount)
        elif unit == "weeks":
            start = today - dt.timedelta(weeks=amount)
        elif unit == "months":
            start = add_months(today, -amount)
        elif unit == "years":
            start = add_months(today, -12 * amount)
        elif unit == "business_days":
            start = self.add_business_days(today, -amount)
        else:
            raise ValueError(f"unknown duration unit {unit!r}")
        self._window_starts[key] = start
        return start

    def _load_year(self, year: int) -> dict[dt.date, str]:
        names: dict[dt.date, str] = {}
        if self.spec.holidays is not None:
            found = holidays.country_holidays(
                self.spec.holidays,
                subdiv=self.spec.subdivision,
                years=year,
                language=self._language,
            )
            names.update((day, str(name)) for day, name in sorted(found.items()))
        for day, name in self._extra.items():
            if day.year == year:
                # A policy date that is also a national holiday keeps both names.
                names[day] = f"{names[day]}; {name}" if day in names else name
        self._years[year] = names
        logger.debug("holidays of %d: %d days", year, len(names))
        return names


def _holiday_language(country: str | None, preferred: str | None) -> str | None:
    """The language holiday names are given in: the ruleset's locale when
    the country supports it, else the country's own default language.

    Never None for a country: without a language the `holidays` package
    reads LANGUAGE/LC_ALL/LANG, and a plan would depend on the machine. A
    language it does not support leaves the names as the country writes
    them.
    """
    if country is None:
        return None
    entity = holidays.country_holidays(country, years=[])
    supported = tuple(getattr(entity, "supported_languages", ()) or ())
    if preferred is not None and preferred in supported:
        return preferred
    default = getattr(entity, "default_language", None)
    return str(default) if default else (preferred or "en_US")


class SendWindows:
    """When each named window is open, as instants in the ruleset's zone."""

    def __init__(
        self, windows: dict[str, Window], zone: ZoneInfo, calendar: BusinessCalendar
    ) -> None:
        self.windows = windows
        self.zone = zone
        self.calendar = calendar

    def closed_reason(self, window: Window, day: dt.date) -> str | None:
        """Why `window` has no hours on `day`, or None when it has some."""
        holiday = self.calendar.holiday_name(day)
        if holiday is not None and not window.open_on_holidays:
            return f"window {window.name} is closed on holidays ({day}: {holiday})"
        if not window.hours.get(day.weekday()):
            weekday = WEEKDAY_NAMES[day.weekday()]
            return f"window {window.name} is closed on {weekday}s ({day})"
        return None

    def openings(
        self, window: Window, day: dt.date, *, not_before: dt.time | None = None
    ) -> list[Opening]:
        """The open stretches of `window` on `day`, earliest first.

        `not_before` (a step's `send_at`) narrows each stretch's start; a
        stretch that ends before it is left out.
        """
        if self.closed_reason(window, day) is not None:
            return []
        result = []
        for hours in sorted(window.hours[day.weekday()], key=_range_key):
            start = hours.start
            if not_before is not None and not_before > start:
                if not_before >= hours.end:
                    continue
                start = not_before
            result.append(
                Opening(
                    local_datetime(day, start, self.zone),
                    local_datetime(day, hours.end, self.zone),
                )
            )
        return result

    def current_or_later_today(
        self,
        window: Window,
        now: dt.datetime,
        *,
        not_before: dt.time | None = None,
    ) -> Opening | None:
        """The stretch open at `now`, or the next one later the same day."""
        today = now.astimezone(self.zone).date()
        for opening in self.openings(window, today, not_before=not_before):
            if opening.end > now:
                return opening
        return None

    def next_after_today(
        self,
        window: Window,
        now: dt.datetime,
        *,
        not_before: dt.time | None = None,
    ) -> Opening | None:
        """The first stretch on a day after `now`'s day, or None if the
        window does not open within a year."""
        today = now.astimezone(self.zone).date()
        for day in _days_after(today, SEARCH_DAYS):
            openings = self.openings(window, day, not_before=not_before)
            if openings:
                return openings[0]
        return None

    def describe(self, window: Window) -> str:
        """`comercial (mon 08:00-20:00, ...)` for explanations."""
        parts = []
        for index, name in enumerate(WEEKDAYS):
            hours = window.hours.get(index, ())
            if hours:
                spans = ",".join(
                    f"{r.start:%H:%M}-{r.end:%H:%M}"
                    for r in sorted(hours, key=_range_key)
                )
                parts.append(f"{name} {spans}")
        holidays_text = "open" if window.open_on_holidays else "closed"
        return f"{window.name} ({'; '.join(parts)}; holidays {holidays_text})"


def _range_key(hours: TimeRange) -> tuple[dt.time, dt.time]:
    return (hours.start, hours.end)


def _days_after(day: dt.date, count: int) -> Iterator[dt.date]:
    for offset in range(1, count + 1):
        yield day + dt.timedelta(days=offset)
