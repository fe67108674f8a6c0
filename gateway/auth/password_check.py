"""Password check: integration key, lockout, argon2 verify off the loop, single-use proof.

Failures count per customer (the participant code), across all the convênios the customer
takes part in: CONVENIO_PASSWORD_MAX_FAILURES of them, wherever they happen, lock every
convênio of the customer for CONVENIO_PASSWORD_LOCK, so a PIN shared by N convênios is not
guessed N times as often. A right password on any convênio resets the customer's count (it
proves the customer knows the PIN, as it did for a participant), and a new password set by the
back office lifts the lock and the count.

The customer's lockout state lives under the tag of the customer's shard (as their credits do);
the convênio's participant lives under the convênio's. A script touches one tag, so a check is:

1. read the participant (exists? its hash, when it was set) and the convênio's existence, under
   the convênio's tag: plain reads, pipelined;
2. password_attempt.lua on the customer's keys: locked, busy, or the check is now in progress;
3. argon2 on the thread pool;
4. right password: the proof is stored under the convênio's tag (where the hold consumes it),
   then password_result.lua on the customer's keys records the verdict (a verdict that came
   too late removes the proof again; the terminal never saw it).

The lockout state is transient: `convenio rebuild` puts back a lock still running (from the
participants' projected lock) but not a count of failures.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from gateway.auth import integration
from gateway.auth.schemas import PasswordCheck, PasswordResult
from gateway.platform.digests import digest
from gateway.platform.errors import ApiError
from gateway.platform.services import Services

#: A check in progress stops counting against the allowed failures after this long, so checks
#: orphaned by a dead worker or a Redis restart do not keep a customer waiting. A check that
#: takes longer (a machine overloaded past any terminal's patience) gets no proof even with the
#: right password: guesses beyond the allowed failures can never pay off.
CHECK_STALE_MS = 10_000


@dataclass(frozen=True)
class Found:
    """What step 1 read of the convênio and participant a check names."""

    refusal: str  # UNKNOWN_CONVENIO, UNKNOWN_PARTICIPANT, PASSWORD_NOT_SET, or ""
    pw_hash: str = ""
    pw_changed_at: int = 0


async def find(svc: Services, convenio: str, participant: str) -> Found:
    k = svc.keys
    conv, part = await asyncio.gather(
        svc.resp.command("EXISTS", k.convenio(convenio)),
        svc.resp.command("HMGET", k.participant(convenio, participant), "status", "pw_hash", "pw_changed_at"),
    )
    if not conv:
        return Found("UNKNOWN_CONVENIO")
    status, pw_hash, changed_at = part
    if status is None:
        return Found("UNKNOWN_PARTICIPANT")
    if not pw_hash:
        return Found("PASSWORD_NOT_SET")
    return Found("", pw_hash.decode(), int(changed_at or 0))


def attempt_call(
    svc: Services, convenio: str, participant: str, protocol: str, found: Found
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of password_attempt.lua (its header says what each is)."""
    s, k = svc.settings, svc.keys
    keys = [
        k.password_lockout(participant),
        k.password_checks(participant),
        k.events(k.shard_of(participant)),
    ]
    args: list[Any] = [
        svc.now_ms(),
        s.password_max_failures,
        protocol,
        convenio,
        participant,
        CHECK_STALE_MS,
        found.refusal,
        found.pw_changed_at,
    ]
    return keys, args


def result_call(
    svc: Services, convenio: str, participant: str, protocol: str, proof_expires_at: int
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of password_result.lua closing the check `protocol`: valid when
    a proof expiring at `proof_expires_at` (ms) was stored, invalid when it is 0."""
    s, k = svc.settings, svc.keys
    keys = [
        k.password_lockout(participant),
        k.password_checks(participant),
        k.events(k.shard_of(participant)),
    ]
    args: list[Any] = [
        "1" if proof_expires_at else "0",
        svc.now_ms(),
        protocol,
        s.password_max_failures,
        s.password_lock_s * 1000,
        proof_expires_at,
        convenio,
        participant,
    ]
    return keys, args


async def store_proof(svc: Services, convenio: str, participant: str, proof: str) -> int:
    """Store a proof (its digest only) bound to this convênio and participant, under the
    convênio's tag where empenho_hold.lua consumes it; return when it expires (ms). Its
    verdict's event comes from password_result.lua, which runs on the customer's tag."""
    ttl_ms = svc.settings.proof_ttl_s * 1000
    expires_at = svc.now_ms() + ttl_ms
    bound = f"{convenio}\n{participant}\n{expires_at}"
    await svc.resp.command("SET", svc.keys.proof(convenio, digest(proof)), bound, "PX", ttl_ms)
    return expires_at


async def verify_password(svc: Services, convenio: str, participant: str, body: PasswordCheck) -> PasswordResult:
    await integration.check(svc, body.integration_key)
    s = svc.settings
    protocol = svc.protocol()
    found = await find(svc, convenio, participant)
    attempt_keys, attempt_args = attempt_call(svc, convenio, participant, protocol, found)
    opened = await svc.run("password_attempt", attempt_keys, attempt_args)
    if not opened["ok"]:
        raise ApiError(opened["code"], protocol=protocol, **opened["x"])
    valid = await svc.passwords.verify(found.pw_hash, body.password)
    proof = secrets.token_urlsafe(32) if valid else ""
    expires_at = await store_proof(svc, convenio, participant, proof) if valid else 0
    result_keys, result_args = result_call(svc, convenio, participant, protocol, expires_at)
    closed = await svc.run("password_result", result_keys, result_args)
    if not closed["ok"]:
        if valid:
            await svc.resp.command("DEL", svc.keys.proof(convenio, digest(proof)))
        raise ApiError(closed["code"], protocol=protocol, **closed["x"])
    r = closed["r"]
    if r["valid"]:
        return PasswordResult(valid=True, proof=proof, expires_in=s.proof_ttl_s, protocol=protocol)
    return PasswordResult(valid=False, attempts_left=r["attempts_left"], protocol=protocol)
