"""Path and query parameters: what each must look like, checked in one place. A value that does
not fit is `422 INVALID_REQUEST` naming the parameter."""

from __future__ import annotations

import datetime
import re

from gateway.platform import clock, ids
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http.endpoint import Call
from gateway.platform.http.schemas import ORDER_PATTERN

CODE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
#: what each path parameter must look like (/openapi.json publishes the same patterns)
PATH_PATTERNS: dict[str, str] = {
    "convenio": CODE,
    "participant": CODE,
    "plate": r"^[A-Za-z0-9\-]{1,16}$",
    "id": r"^\S{1,64}$",  # an empenho or a credit hold; an id of neither is unknown (404)
    "protocol": r"^[A-Za-z0-9]{1,64}$",
    "duplicata": ids.DUPLICATA_ID.pattern,
    "request": ids.LIMIT_REQUEST_ID.pattern,  # a limit-change request
    "order": ORDER_PATTERN,
}
PATH_PARAMS = {name: re.compile(pattern) for name, pattern in PATH_PATTERNS.items()}
_WHOLE = re.compile(r"^[0-9]{1,18}$")  # str.isdigit() also accepts "²", which int() refuses
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_INSTANT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})$")


def invalid(field_name: str, message: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_REQUEST, message, field=field_name)


def check_path(path: dict[str, str]) -> None:
    for name, value in path.items():
        pattern = PATH_PARAMS.get(name)
        if pattern is not None and not pattern.fullmatch(value):
            raise invalid(name, f"`{name}` is not a valid code.")


def whole_number(raw: str) -> bool:
    return bool(_WHOLE.match(raw))


def page_size(c: Call) -> int:
    """The `limit` query parameter of a listing: 1 to 1000, 100 by default."""
    raw = c.request.query_params.get("limit", "100")
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= 1000:
        raise invalid("limit", "`limit` must be a whole number from 1 to 1000.")
    return int(raw)


def after_seq(c: Call) -> int | None:
    """The `after` cursor of a listing paged by sequence number (the previous page's next_after)."""
    raw = c.request.query_params.get("after")
    if raw is None:
        return None
    if not _WHOLE.match(raw):
        raise invalid("after", "`after` must be the `next_after` of the previous page.")
    return int(raw)


def after_match(c: Call, pattern: re.Pattern[str]) -> str | None:
    """The `after` cursor of a listing paged by id or code: it must look like one."""
    raw = c.request.query_params.get("after")
    if raw is not None and not pattern.fullmatch(raw):
        raise invalid("after", "`after` must be the `next_after` of the previous page.")
    return raw


def choice(c: Call, name: str, allowed: tuple[str, ...]) -> str | None:
    raw = c.request.query_params.get(name)
    if raw is not None and raw not in allowed:
        raise invalid(name, f"`{name}` must be {', '.join(allowed[:-1])} or {allowed[-1]}.")
    return raw


def code(c: Call, name: str) -> str | None:
    """A query parameter that names a convênio or participant code."""
    raw = c.request.query_params.get(name)
    if raw is not None and not PATH_PARAMS["participant"].fullmatch(raw):
        raise invalid(name, f"`{name}` is not a valid code.")
    return raw


def instant(c: Call, name: str) -> datetime.datetime | None:
    """An RFC 3339 instant, or a date (midnight UTC)."""
    raw = c.request.query_params.get(name)
    if raw is None:
        return None
    try:
        if _DATE.fullmatch(raw):
            return datetime.datetime.fromisoformat(raw).replace(tzinfo=clock.UTC)
        if not _INSTANT.fullmatch(raw):
            raise ValueError(raw)
        return datetime.datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(clock.UTC)
    except (ValueError, OverflowError):
        raise invalid(name, f"`{name}` must be a date (2026-11-01) or an RFC 3339 instant.") from None


def day(c: Call, name: str) -> datetime.date | None:
    """A local day, YYYY-MM-DD between the years 1900 and 2199."""
    raw = c.request.query_params.get(name)
    if raw is None:
        return None
    try:
        return clock.parse_date(raw)
    except ValueError:
        raise invalid(
            name, f"`{name}` must be a date (2026-11-01) between the years {clock.FIRST_YEAR} and {clock.LAST_YEAR}."
        ) from None
