"""Permission codes an API key may hold (the retailer's own numbers, plus the product's admin and
credits codes), and which of them may call what: every endpoint names one of the sets below."""

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
    CREDITS = 9010  # the customers' current accounts: register credits


P = Permission
ADMIN = frozenset({P.ADMIN})
#: who may read the registry: the two query permissions, and the admin who writes it
READ_REGISTRY = frozenset({P.CONVENIOS_READ, P.SALES_READ, P.ADMIN})
#: who may read an empenho: whoever holds or cancels, and the registry's readers
EMPENHO_READ = frozenset({P.EMPENHO, P.EMPENHO_CANCEL}) | READ_REGISTRY
#: whoever can ask for a decision can look it up by its protocol
DECISION_READ = EMPENHO_READ | {P.LIMIT_QUERY, P.PASSWORD_CHECK}
#: who may read a convênio's movements
MOVEMENTS_READ = frozenset({P.SALES_READ, P.ADMIN})
#: who may read a customer's credits, a credit hold and an order
CREDIT_READ = frozenset({P.EMPENHO, P.EMPENHO_CANCEL, P.SALES_READ, P.ADMIN, P.CREDITS})
#: who may read finance's export of the current accounts
FINANCE_READ = frozenset({P.CREDITS, P.SALES_READ, P.ADMIN})


def parse(text: str) -> frozenset[Permission]:
    """'3183,3184' -> permissions; unknown codes raise ValueError naming them."""
    codes = [c.strip() for c in text.split(",") if c.strip()]
    try:
        return frozenset(Permission(int(c)) for c in codes)
    except ValueError:
        known = ", ".join(str(int(p)) for p in Permission)
        raise ValueError(f"unknown permission in {text!r}; known codes: {known}") from None
