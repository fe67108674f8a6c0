"""Password check: integration key, lockout, argon2 verify off the loop, single-use proof."""

from __future__ import annotations

import secrets
from typing import Any

from gateway.auth import integration
from gateway.auth.schemas import PasswordCheck, PasswordResult
from gateway.platform.digests import digest
from gateway.platform.errors import ApiError
from gateway.platform.services import Services

#: A check in progress stops counting against the allowed failures after this long, so checks
#: orphaned by a dead worker or a Redis restart do not keep a participant waiting. A check that
#: takes longer (a machine overloaded past any terminal's patience) gets no proof even with the
#: right password: guesses beyond the allowed failures can never pay off.
CHECK_STALE_MS = 10_000


def attempt_call(svc: Services, convenio: str, participant: str, protocol: str) -> tuple[list[str], list[Any]]:
    """The keys and arguments of password_attempt.lua (its header says what each is)."""
    s, k = svc.settings, svc.keys
    keys = [
        k.convenio(convenio),
        k.participant(convenio, participant),
        k.events(k.shard_of(convenio)),
        k.password_checks(convenio, participant),
    ]
    args: list[Any] = [
        svc.now_ms(),
        s.password_max_failures,
        s.password_lock_s * 1000,
        protocol,
        convenio,
        participant,
        CHECK_STALE_MS,
    ]
    return keys, args


def result_call(
    svc: Services, convenio: str, participant: str, protocol: str, proof: str
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of password_result.lua closing the check `protocol`: valid with
    the new `proof` to store, invalid when `proof` is ""."""
    s, k = svc.settings, svc.keys
    valid = bool(proof)
    keys = [
        k.participant(convenio, participant),
        k.proof(convenio, digest(proof) if valid else "none"),
        k.events(k.shard_of(convenio)),
        k.password_checks(convenio, participant),
    ]
    args: list[Any] = [
        "1" if valid else "0",
        svc.now_ms(),
        protocol,
        s.password_max_failures,
        s.password_lock_s * 1000,
        s.proof_ttl_s * 1000,
        convenio,
        participant,
    ]
    return keys, args


async def verify_password(svc: Services, convenio: str, participant: str, body: PasswordCheck) -> PasswordResult:
    await integration.check(svc, body.integration_key)
    s = svc.settings
    protocol = svc.protocol()
    attempt_keys, attempt_args = attempt_call(svc, convenio, participant, protocol)
    opened = await svc.run("password_attempt", attempt_keys, attempt_args)
    if not opened["ok"]:
        raise ApiError(opened["code"], protocol=protocol, **opened["x"])
    valid = await svc.passwords.verify(opened["r"]["hash"], body.password)
    proof = secrets.token_urlsafe(32) if valid else ""
    result_keys, result_args = result_call(svc, convenio, participant, protocol, proof)
    closed = await svc.run("password_result", result_keys, result_args)
    if not closed["ok"]:
        raise ApiError(closed["code"], protocol=protocol, **closed["x"])
    r = closed["r"]
    if r["valid"]:
        return PasswordResult(valid=True, proof=proof, expires_in=s.proof_ttl_s, protocol=protocol)
    return PasswordResult(valid=False, attempts_left=r["attempts_left"], protocol=protocol)
