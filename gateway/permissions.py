"""Permission codes an API key may hold (seed 001's numbers, plus the product's admin code)."""

from __future__ import annotations

import enum


class Permission(enum.IntEnum):
    CONVENIOS_READ = 603  # Convênios consultar
    SALES_READ = 1748  # Consultar convênio de venda a cliente
    LIMIT_QUERY = 3183  # API - consulta de limite
    PASSWORD_CHECK = 3184  # API - validar senha
    EMPENHO = 3185  # API - realizar empenho (and commit it)
    EMPENHO_CANCEL = 3186  # API - cancelar empenho
    INTEGRATION = 3187  # Parâmetros de integrações
    ADMIN = 9000  # back-office writes: convênios, participants, vehicles
    CREDITS = 9010  # the customers' current account (seed 000): register credits


#: who may read the registry: the seed's two query permissions, and the admin who writes it
READ_REGISTRY = frozenset({Permission.CONVENIOS_READ, Permission.SALES_READ, Permission.ADMIN})


def parse(text: str) -> frozenset[Permission]:
    """'3183,3184' -> permissions; unknown codes raise ValueError naming them."""
    codes = [c.strip() for c in text.split(",") if c.strip()]
    try:
        return frozenset(Permission(int(c)) for c in codes)
    except ValueError:
        known = ", ".join(str(int(p)) for p in Permission)
        raise ValueError(f"unknown permission in {text!r}; known codes: {known}") from None
