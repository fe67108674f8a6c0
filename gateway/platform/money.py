"""Money as people read it. Amounts are integer centavos everywhere; this only renders them."""

from __future__ import annotations


def brl(centavos: int) -> str:
    """R$ 1.234,56 (a minus sign before R$ when negative)."""
    sign = "-" if centavos < 0 else ""
    reais, cents = divmod(abs(centavos), 100)
    return f"{sign}R$ {reais:,}".replace(",", ".") + f",{cents:02d}"
