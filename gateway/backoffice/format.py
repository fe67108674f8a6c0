"""How the back office writes money and dates: R$ 1.234,56 and dd/mm/aaaa, in the store's or the
convênio's time zone. Money is integer centavos everywhere else; only here is it text."""

from __future__ import annotations

import datetime
import re

from gateway.platform import money
from gateway.platform.clock import UTC, from_ms, zone

_AMOUNT = re.compile(r"(?:R\$\s*)?(-)?(\d{1,3}(?:\.\d{3})*|\d+)(?:,(\d{1,2}))?")


def brl(centavos: int | None) -> str:
    """The platform's R$ 1.234,56, and a dash where a screen has no amount."""
    return "—" if centavos is None else money.brl(int(centavos))


def parse_brl(text: str) -> int:
    """'1.234,56', 'R$ 110,00', '110' -> centavos; anything else is ValueError (never a float)."""
    m = _AMOUNT.fullmatch(text.strip())
    if not m:
        raise ValueError("valor inválido: use o formato 1.234,56")
    sign, reais, cents = m.groups()
    value = int(reais.replace(".", "")) * 100 + int((cents or "0").ljust(2, "0"))
    return -value if sign else value


def _instant(value: datetime.datetime | str | int | None) -> datetime.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return from_ms(value)
    if isinstance(value, str):
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def data(value: datetime.datetime | datetime.date | str | int | None, tz: str | None = None) -> str:
    """dd/mm/aaaa (an instant in the given zone; a date as it is)."""
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, str) and len(value) == 10:
        return datetime.date.fromisoformat(value).strftime("%d/%m/%Y")
    at = _instant(value)
    return "—" if at is None else at.astimezone(zone(tz)).strftime("%d/%m/%Y")


def data_hora(value: datetime.datetime | str | int | None, tz: str | None = None) -> str:
    """dd/mm/aaaa hh:mm in the given zone."""
    at = _instant(value)
    return "—" if at is None else at.astimezone(zone(tz)).strftime("%d/%m/%Y %H:%M")


def parse_data(text: str) -> datetime.date:
    """dd/mm/aaaa or aaaa-mm-dd (what a date input sends) -> a date, or ValueError."""
    text = text.strip()
    if re.fullmatch(r"\d{2}/\d{2}/\d{4}", text):
        d, m, y = text.split("/")
        return datetime.date(int(y), int(m), int(d))
    return datetime.date.fromisoformat(text)
