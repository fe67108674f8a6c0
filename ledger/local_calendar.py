"""The retailer's calendar: batches run on local days and hours (America/Sao_Paulo), the
ledger stores instants in UTC."""

from __future__ import annotations

import calendar
import datetime

from gateway.clock import LOCAL

#: the MONTHLY rollover runs on its day at this local time (seed 001)
ROLLOVER_AT = datetime.time(23, 30)


def local_start(day: datetime.date) -> datetime.datetime:
    """The instant (UTC) a local day starts."""
    return datetime.datetime.combine(day, datetime.time(0), LOCAL).astimezone(datetime.UTC)


def local_day(at: datetime.datetime) -> datetime.date:
    """The local (business) day of an instant."""
    return at.astimezone(LOCAL).date()


def day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """The instants (UTC) a local day starts and ends (exclusive)."""
    return local_start(day), local_start(day + datetime.timedelta(days=1))


def local_at(day: datetime.date, at: datetime.time) -> datetime.datetime:
    return datetime.datetime.combine(day, at, LOCAL).astimezone(datetime.UTC)


def local_today(now: datetime.datetime) -> datetime.date:
    return now.astimezone(LOCAL).date()


def rollover_date(year: int, month: int, day: int) -> datetime.date:
    """A convênio's rollover day in a month; a day past the month's end means its last day."""
    return datetime.date(year, month, min(day, calendar.monthrange(year, month)[1]))


def is_rollover_day(day_of_policy: int, date: datetime.date) -> bool:
    return rollover_date(date.year, date.month, day_of_policy) == date


def month_start(date: datetime.date) -> datetime.date:
    return date.replace(day=1)


def previous_month_start(date: datetime.date) -> datetime.date:
    return (month_start(date) - datetime.timedelta(days=1)).replace(day=1)


def parse_date(text: str) -> datetime.date:
    """YYYY-MM-DD, or ValueError with a message an operator can act on."""
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date: use YYYY-MM-DD") from None
    if not 1900 <= day.year <= 2199:  # and periods of a day past it stay representable
        raise ValueError(f"{text!r} is out of range: years 1900 to 2199")
    return day
