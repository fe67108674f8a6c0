"""The operators' SQL (table `operators`, sql/015_operators.sql): constants with $n parameters;
an operator as read from it, and how their permission codes are kept as text, there and in a
session's record."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth.permissions import Permission


@dataclass(frozen=True)
class Operator:
    login: str
    permissions: frozenset[Permission]
    must_change_password: bool
    status: str


def codes(permissions: frozenset[Permission]) -> str:
    """Permissions as stored and shown: '603,9000'."""
    return ",".join(str(int(p)) for p in sorted(permissions))


def permissions_of(text: str) -> frozenset[Permission]:
    known = {int(p) for p in Permission}
    # a code no longer known grants nothing, rather than locking its operator out
    return frozenset(Permission(int(c)) for c in text.split(",") if c and int(c) in known)


INSERT = """
INSERT INTO operators (login, permissions, pw_hash, must_change_password, status, created_at, updated_at, created_by)
VALUES ($1, $2, $3, true, 'ACTIVE', $4, $4, $5)
ON CONFLICT (login) DO NOTHING
RETURNING login"""

FOR_LOGIN = """
SELECT login, permissions, pw_hash, must_change_password, status
FROM operators WHERE login = $1"""

STATUS = "SELECT status FROM operators WHERE login = $1"

LISTING = """
SELECT login, permissions, must_change_password, status
FROM operators ORDER BY login"""

STATUS_FOR_UPDATE = """
SELECT login, permissions, must_change_password, status
FROM operators WHERE login = $1 FOR UPDATE"""

SET_STATUS = """
UPDATE operators SET status = $2, updated_at = $3
WHERE login = $1
RETURNING login, permissions, must_change_password, status"""

SET_PASSWORD = """
UPDATE operators SET pw_hash = $2, must_change_password = $3, updated_at = $4
WHERE login = $1
RETURNING login"""
