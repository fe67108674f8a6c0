"""Time, in one place: integer milliseconds since the epoch (what Redis and the Lua scripts keep),
datetimes in UTC (what Postgres keeps), RFC 3339 text (what the API shows), and the retailer's
local calendar (business days, limit windows, the month's batches)."""

from __future__ import annotations

import datetime
import re
import time
from zoneinfo import ZoneInfo

#: the retailers' local time: business days, limit windows, the month's batches
LOCAL = ZoneInfo("America/Sao_Paulo")
UTC = datetime.UTC
#: the Brazilian zones a store or a convênio may name (America/Sao_Paulo is the default)
BRAZIL_ZONES = (
    "America/Sao_Paulo",
    "America/Manaus",
    "America/Cuiaba",
    "America/Campo_Grande",
    "America/Porto_Velho",
    "America/Boa_Vista",
    "America/Rio_Branco",
    "America/Eirunepe",
    "America/Noronha",
    "America/Belem",
    "America/Fortaleza",
    "America/Recife",
    "America/Araguaina",
    "America/Maceio",
    "America/Bahia",
    "America/Santarem",
)
_ZONES: dict[str, ZoneInfo] = {}


def zone(name: str | None) -> ZoneInfo:
    """The zone of a store or a convênio by its IANA name ('' or None: the retailer's default)."""
    if not name:
        return LOCAL
    found = _ZONES.get(name)
    if found is None:
        found = _ZONES[name] = ZoneInfo(name)
    return found


#: dates an operator or a client may name: periods of a day past them stay representable
FIRST_YEAR, LAST_YEAR = 1900, 2199
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def system_ms() -> int:
    return time.time_ns() // 1_000_000


# -- conversions ------------------------------------------------------------------------------
def rfc3339(ms: int) -> str:
    """Milliseconds since the epoch as the API shows an instant: 2026-11-23T14:05:00.000Z."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def to_ms(value: datetime.datetime | None) -> int:
    """A datetime as milliseconds since the epoch; None (no instant) is 0, as Redis keeps it."""
    return 0 if value is None else int(value.timestamp() * 1000)


def from_ms(value: int | str | None) -> datetime.datetime | None:
    """Milliseconds since the epoch (a number or its text) as a UTC datetime; 0 or empty is None."""
    if value in (None, "", 0, "0"):
        return None
    return datetime.datetime.fromtimestamp(int(value) / 1000, UTC)


def utc(ms: int) -> datetime.datetime:
    """Milliseconds since the epoch as a UTC datetime (never None)."""
    return datetime.datetime.fromtimestamp(ms / 1000, UTC)


def iso(value: datetime.datetime) -> str:
    """A datetime as the API shows an instant (RFC 3339, UTC, milliseconds)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_or_none(value: datetime.datetime | None) -> str | None:
    return None if value is None else iso(value)


# -- the local calendar -------------------------------------------------------------------------
# A store's business days are its own zone's (a sale at 23:30 in Manaus is that day's, though it
# is the next day in São Paulo); a convênio's rollover and billing periods are the convênio's
# zone's. `tz` names the zone; None or '' is the retailer's default, America/Sao_Paulo.
def local_start(day: datetime.date, tz: str | None = None) -> datetime.datetime:
    """The instant (UTC) a local day starts."""
    return datetime.datetime.combine(day, datetime.time(0), zone(tz)).astimezone(UTC)


def local_at(day: datetime.date, at: datetime.time, tz: str | None = None) -> datetime.datetime:
    """The instant (UTC) of a local day's hour."""
    return datetime.datetime.combine(day, at, zone(tz)).astimezone(UTC)


def local_day(at: datetime.datetime, tz: str | None = None) -> datetime.date:
    """The local (business) day of an instant."""
    return at.astimezone(zone(tz)).date()


def local_today(now: datetime.datetime | None = None, tz: str | None = None) -> datetime.date:
    return local_day(now or datetime.datetime.now(UTC), tz)


def day_bounds(day: datetime.date, tz: str | None = None) -> tuple[datetime.datetime, datetime.datetime]:
    """The instants (UTC) a local day starts and ends (exclusive)."""
    return local_start(day, tz), local_start(day + datetime.timedelta(days=1), tz)


def any_zone_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """From the first instant of `day` in any Brazilian zone to the last: what a query of every
    store's business day `day` scans, before each row is held to its own store's zone."""
    bounds = [day_bounds(day, name) for name in BRAZIL_ZONES]
    return min(b[0] for b in bounds), max(b[1] for b in bounds)


def parse_date(text: str, last_year: int = LAST_YEAR) -> datetime.date:
    """YYYY-MM-DD from the year 1900 to `last_year`, or ValueError with a message a person can act on."""
    try:
        if not _DATE.fullmatch(text):
            raise ValueError(text)
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date: use YYYY-MM-DD") from None
    if not FIRST_YEAR <= day.year <= last_year:
        raise ValueError(f"{text!r} is out of range: years {FIRST_YEAR} to {last_year}")
    return day
