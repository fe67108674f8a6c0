"""Path and query parameters: what each must look like, checked in one place, and the JSON Schema
/openapi.json publishes for each, so that what the document allows is what the server accepts. A
value that does not fit is `422 INVALID_REQUEST` naming the parameter.

The patterns are written once for both dialects that read them: Python's `re` (here, with
`fullmatch`) and ECMA-262 (a client's JSON Schema validator): ASCII classes and explicit escapes
only, no `\\d`, `\\w` or `\\s` (their sets differ between the two), and `(?!\\n)$` at the end because
a Python `search` (how Python validators apply a pattern) lets `$` match before a final newline.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from gateway.platform import clock, ids
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http.endpoint import Call, Param
from gateway.platform.http.schemas import CODE_PATTERN, ORDER_PATTERN

CODE = CODE_PATTERN
#: Python's whitespace (`\\s` in a str pattern), spelled out, and the path separator: an empenho's or
#: a credit hold's id may be anything else; one of neither is unknown (404)
_NOT_IN_ID = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000/"
#: what each path parameter must look like (/openapi.json publishes the same patterns)
#: a day between the years 1900 and 2199 (clock.FIRST_YEAR, clock.LAST_YEAR) that the calendar has
_YEAR = "(?:19[0-9]{2}|2[01][0-9]{2})"
_LEAP = "(?:(?:19|20|21)(?:0[48]|[2468][048]|[13579][26])|2000)"
DATE_PATTERN = (
    f"(?:{_YEAR}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    f"|02-(?:0[1-9]|1[0-9]|2[0-8]))|{_LEAP}-02-29)"
)
#: an RFC 3339 instant on such a day: seconds, up to 9 digits of fraction, Z or an offset
INSTANT_PATTERN = (
    f"{DATE_PATTERN}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{{1,9}})?"
    "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
PATH_PATTERNS: dict[str, str] = {
    "convenio": CODE,
    "participant": CODE,
    "plate": r"^[A-Za-z0-9\-]{1,16}(?!\n)$",
    "id": rf"^[^{_NOT_IN_ID}]{{1,64}}(?!\n)$",  # an empenho or a credit hold
    "protocol": r"^[A-Za-z0-9]{1,64}(?!\n)$",
    "duplicata": rf"^D{ids.ULID}(?!\n)$",  # ids.DUPLICATA_ID
    "request": rf"^L{ids.ULID}(?!\n)$",  # a limit-change request: ids.LIMIT_REQUEST_ID
    "order": ORDER_PATTERN,
    "store": CODE,
    "terminal": CODE,
    "date": f"^{DATE_PATTERN}(?!\n)$",  # a business day (a terminal's closing)
}
#: their lengths, for a validator that counts characters (a pattern's {1,64} counts UTF-16 units in ECMA-262)
PATH_LENGTHS: dict[str, tuple[int, int]] = {
    "convenio": (1, 64),
    "participant": (1, 64),
    "plate": (1, 16),
    "id": (1, 64),
    "protocol": (1, 64),
    "duplicata": (27, 27),
    "request": (27, 27),
    "order": (1, 64),
    "store": (1, 64),
    "terminal": (1, 64),
    "date": (10, 10),
}
PATH_PARAMS = {name: re.compile(pattern) for name, pattern in PATH_PATTERNS.items()}
MAX_SEQ = 10**18 - 1  # a sequence number's cursor: up to 18 digits, inside Postgres's bigint
_WHOLE = re.compile(r"^[0-9]{1,18}$")  # str.isdigit() also accepts "²", which int() refuses
_DATE = re.compile(DATE_PATTERN)
_INSTANT = re.compile(INSTANT_PATTERN)


def path_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of a path parameter, as check_path checks it."""
    schema: dict[str, Any] = {"type": "string"}
    if name in PATH_PATTERNS:
        low, high = PATH_LENGTHS[name]
        schema.update(minLength=low, maxLength=high, pattern=PATH_PATTERNS[name])
    return schema


# --- the query parameters, as /openapi.json describes them ------------------------------------
def page_size_param(description: str = "Page size, 1 to 1000 (default 100).") -> Param:
    return Param("limit", description, {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100})


def after_seq_param(description: str = "Continue after this one (the previous page's next_after).") -> Param:
    return Param("after", description, {"type": "integer", "minimum": 0, "maximum": MAX_SEQ})


def after_match_param(pattern: re.Pattern[str], description: str) -> Param:
    """The cursor of a listing paged by id: an id as `pattern` recognises it."""
    return Param("after", description, {"type": "string", "pattern": pattern.pattern.removesuffix("$") + "(?!\\n)$"})


def choice_param(name: str, allowed: tuple[str, ...], description: str) -> Param:
    return Param(name, description, {"type": "string", "enum": list(allowed)})


def code_param(name: str, description: str) -> Param:
    return Param(name, description, {"type": "string", "minLength": 1, "maxLength": 64, "pattern": CODE})


def instant_param(name: str, description: str) -> Param:
    return Param(
        name,
        description,
        {
            "type": "string",
            "pattern": f"^(?:{DATE_PATTERN}|{INSTANT_PATTERN})(?!\\n)$",
            "examples": ["2026-11-01", "2026-11-01T03:00:00Z"],
        },
    )


def day_param(name: str, description: str) -> Param:
    schema = {"type": "string", "pattern": f"^{DATE_PATTERN}(?!\\n)$", "examples": ["2026-11-01"]}
    return Param(name, description, schema)


def text_pattern(max_length: int) -> str:
    """Free text of 1 to max_length characters, none of them a control character."""
    return rf"^[^\x00-\x1f\x7f]{{1,{max_length}}}(?!\n)$"


def text_param(name: str, description: str, max_length: int = 100) -> Param:
    schema = {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": text_pattern(max_length)}
    return Param(name, description, schema)


def matching_param(name: str, pattern: re.Pattern[str], description: str) -> Param:
    """A query parameter that must fit `pattern` (written as PATH_PATTERNS are, for both dialects)."""
    return Param(name, description, {"type": "string", "pattern": pattern.pattern})


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
    if not _WHOLE.fullmatch(raw):
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
    """An RFC 3339 instant, or a date (midnight UTC), between the years 1900 and 2199."""
    raw = c.request.query_params.get(name)
    if raw is None:
        return None
    if _DATE.fullmatch(raw):
        return datetime.datetime.fromisoformat(raw).replace(tzinfo=clock.UTC)
    if _INSTANT.fullmatch(raw):
        return datetime.datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(clock.UTC)
    raise invalid(
        name,
        f"`{name}` must be a date (2026-11-01) or an RFC 3339 instant (2026-11-01T03:00:00Z) between the years "
        f"{clock.FIRST_YEAR} and {clock.LAST_YEAR}.",
    )


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


def text(c: Call, name: str, max_length: int = 100) -> str | None:
    """A query parameter of free text (a search): bounded, and no control character in it."""
    raw = c.request.query_params.get(name)
    if raw is not None and not (1 <= len(raw) <= max_length and re.fullmatch(text_pattern(max_length), raw)):
        raise invalid(name, f"`{name}` must be 1 to {max_length} characters, none of them a control character.")
    return raw


def matching(c: Call, name: str, pattern: re.Pattern[str], what: str) -> str | None:
    """A query parameter that must fit `pattern`; `what` says what it must be, for the 422."""
    raw = c.request.query_params.get(name)
    if raw is not None and not pattern.fullmatch(raw):
        raise invalid(name, f"`{name}` must be {what}.")
    return raw
