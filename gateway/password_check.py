"""Password check: integration key, lockout, argon2 verify off the loop, single-use proof."""

from __future__ import annotations

import secrets

from gateway.apikeys import check_integration_key
from gateway.core import Gateway
from gateway.errors import ApiError
from gateway.passwords import digest
from gateway.schemas import PasswordCheck, PasswordResult


async def verify_password(gw: Gateway, convenio: str, participant: str, body: PasswordCheck) -> PasswordResult:
    await check_integration_key(gw, body.integration_key)
    s, k = gw.settings, gw.keys
    conv_key, part_key, stream = (
        k.convenio(convenio),
        k.participant(convenio, participant),
        k.events(k.shard_of(convenio)),
    )
    protocol = gw.protocol()
    opened = await gw.run(
        "password_attempt",
        [conv_key, part_key, stream],
        [gw.now_ms(), s.password_max_failures, s.password_lock_s * 1000, protocol, convenio, participant],
    )
    if not opened["ok"]:
        raise ApiError(opened["code"], protocol=protocol, **opened["x"])
    valid = await gw.passwords.verify(opened["r"]["hash"], body.password)
    proof = secrets.token_urlsafe(32) if valid else ""
    closed = await gw.run(
        "password_result",
        [part_key, k.proof(convenio, digest(proof) if valid else "none"), stream],
        [
            "1" if valid else "0",
            gw.now_ms(),
            protocol,
            s.password_max_failures,
            s.password_lock_s * 1000,
            s.proof_ttl_s * 1000,
            convenio,
            participant,
        ],
    )
    r = closed["r"]
    if r["valid"]:
        return PasswordResult(valid=True, proof=proof, expires_in=s.proof_ttl_s, protocol=protocol)
    return PasswordResult(valid=False, attempts_left=r["attempts_left"], protocol=protocol)
