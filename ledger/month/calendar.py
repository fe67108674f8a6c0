"""The month's calendar rules: when a convênio's MONTHLY rollover falls, and the months a billing
period spans. Conversions between instants and local days are gateway/platform/clock.py's."""

from __future__ import annotations

import calendar
import datetime

#: the MONTHLY rollover runs on its day at this local time
ROLLOVER_AT = datetime.time(23, 30)


def rollover_date(year: int, month: int, day: int) -> datetime.date:
    """A convênio's rollover day in a month; a day past the month's end means its last day."""
    return datetime.date(year, month, min(day, calendar.monthrange(year, month)[1]))


def is_rollover_day(day_of_policy: int, date: datetime.date) -> bool:
    return rollover_date(date.year, date.month, day_of_policy) == date


def month_start(date: datetime.date) -> datetime.date:
    return date.replace(day=1)


def previous_month_start(date: datetime.date) -> datetime.date:
    return (month_start(date) - datetime.timedelta(days=1)).replace(day=1)
