"""Who the benchmark sells to, and what each scenario's unit of work sends.

- SPREAD: individual limits, many participants (scenarios b and d, the hold ratio).
- HOT: one shared pool; every terminal sells on it (scenario c).
- FLOW: participants with real passwords (argon2) for the whole checkout (scenario a).
- SCALE: up to a million participants (scenario f), loaded only for that scenario.

Every hold needs a single-use password proof; proofs are minted beforehand through the same
script a valid password check runs (`tests.checkout.mint_proof`), so a phase measures the
hold, not argon2. Amounts are integer centavos.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import random
from dataclasses import dataclass

import msgspec

from bench.http_load import Conn, Work, request
from gateway.auth import apikeys, integration
from gateway.auth.permissions import Permission
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.redis.scripts import source
from gateway.platform.services import Services
from gateway.registry import convenios, participants
from gateway.registry.schemas import ConvenioCreate, ParticipantCreate
from tests.checkout import mint_proof

BIG = 10**12  # limits large enough that no bench hold is declined for the amount
_sales = itertools.count(1)


@dataclass
class Population:
    token: str
    integration_key: str
    spread: list[str]
    hot: list[str]
    flow: list[tuple[str, str]]  # (participant, password)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def _convenio(svc: Services, code: str, shared: bool) -> None:
    try:
        await convenios.save_convenio(
            svc, code, ConvenioCreate(code=code, name=f"BENCH {code}", total_limit=BIG, tolerance=0, shared=shared)
        )
    except ApiError as exc:
        if exc.code != ErrorCode.CONVENIO_EXISTS:
            raise


async def add_participants(
    svc: Services, convenio: str, codes: list[str], passwords: list[str] | None = None, at_once: int = 200
) -> None:
    async def one(i: int, code: str) -> None:
        body = ParticipantCreate(
            code=code, name="BENCH", limit=BIG // 10**6, password=passwords[i] if passwords else None
        )
        try:
            await participants.save_participant(svc, convenio, code, body)
        except ApiError as exc:
            if exc.code != ErrorCode.PARTICIPANT_EXISTS:
                raise

    for start in range(0, len(codes), at_once):
        chunk = codes[start : start + at_once]
        await asyncio.gather(*(one(start + j, c) for j, c in enumerate(chunk)))


async def bulk_participants(svc: Services, convenio: str, codes: list[str], batch: int = 1000) -> None:
    """Many participants (no password) through the same script as the API, pipelined: a million
    in about a minute instead of ten."""
    sha = await svc.redis.script_load(source("participant_save"))
    pconv = await svc.redis.script_load(source("pconv_add"))
    k = svc.keys
    fields = msgspec.json.encode({"name": "BENCH", "limit": str(BIG // 10**6)})
    keys_of = (k.convenio(convenio), k.members(convenio), k.events(k.shard_of(convenio)))
    for start in range(0, len(codes), batch):
        pipe = svc.redis.pipeline(transaction=False)
        for code in codes[start : start + batch]:
            conv_key, members, stream = keys_of
            keys = [conv_key, k.participant(convenio, code), members, stream]
            pipe.evalsha(sha, 4, *keys, "create", svc.now_ms(), svc.protocol(), convenio, code, fields, "bench", "")
            pipe.evalsha(pconv, 1, k.participant_convenios(code), code, convenio)
        for raw in await pipe.execute():
            if isinstance(raw, bytes) and not msgspec.json.decode(raw)["ok"]:
                raise RuntimeError(f"participant_save refused: {raw[:200]!r}")


async def populate(svc: Services, spread: int, hot: int, flow: int, rng: random.Random) -> Population:
    await _convenio(svc, "SPREAD", shared=False)
    await _convenio(svc, "HOT", shared=True)
    await _convenio(svc, "FLOW", shared=False)
    spread_codes = [f"S{i:06d}" for i in range(spread)]
    hot_codes = [f"H{i:04d}" for i in range(hot)]
    flow_people = [(f"F{i:04d}", f"{rng.randrange(10**6):06d}") for i in range(flow)]
    await add_participants(svc, "SPREAD", spread_codes)
    await add_participants(svc, "HOT", hot_codes)
    await add_participants(svc, "FLOW", [p for p, _ in flow_people], [pw for _, pw in flow_people], at_once=8)
    integration_key = f"ik_bench_{rng.getrandbits(128):032x}"
    await integration.set_key(svc, integration_key, only_if_unset=False)
    token, _ = await apikeys.create(svc, frozenset(Permission), name="bench")
    return Population(token, integration_key, spread_codes, hot_codes, flow_people)


async def mint(svc: Services, convenio: str, codes: list[str], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """n (participant, proof) pairs for participants drawn at random from codes."""
    who = [codes[rng.randrange(len(codes))] for _ in range(n)]
    proofs: list[str] = []
    for start in range(0, n, 500):
        proofs += await asyncio.gather(*(mint_proof(svc, convenio, p) for p in who[start : start + 500]))
    return list(zip(who, proofs, strict=True))


def hold_request(pop: Population, convenio: str, participant: str, proof: str, key: str, amount: int = 100) -> bytes:
    body = msgspec.json.encode(
        {
            "convenio": convenio,
            "participant": participant,
            "amount": amount,
            "terminal": "PDV01",
            "store": "LOJA01",
            "sale": f"V{next(_sales)}",
            "proof": proof,
        }
    )
    return request("POST", "/v1/empenhos", body, {**pop.auth, "Idempotency-Key": key})


def _id(body: bytes) -> str:
    return msgspec.json.decode(body)["id"]


class Sales:
    """Hands out minted proofs in order; each unit of work takes the next one. Each proof's hold
    request is written when it is supplied, before a phase: the load generator shares a core
    with Redis, and the echo's request is written once too, so that neither pays for it while
    measured."""

    def __init__(self, pop: Population, convenio: str, minted: list[tuple[str, str]], rng: random.Random) -> None:
        self.pop, self.convenio, self.rng = pop, convenio, rng
        self._queue: collections.deque[tuple[bytes, str]] = collections.deque()
        self.supply(minted)

    def supply(self, minted: list[tuple[str, str]]) -> None:
        for participant, proof in minted:
            key = f"bench-{proof[:32]}"
            self._queue.append((hold_request(self.pop, self.convenio, participant, proof, key), key))

    @property
    def left(self) -> int:
        return len(self._queue)

    def _hold(self) -> tuple[bytes, str]:
        return self._queue.popleft()

    def _commit(self, eid: str) -> bytes:
        return request("POST", f"/v1/empenhos/{eid}/commit", b'{"coupon":"CUPOM-1"}', self.pop.auth)

    def _cancel(self, eid: str) -> bytes:
        return request("POST", f"/v1/empenhos/{eid}/cancel", b'{"reason":"bench"}', self.pop.auth)

    def hold(self) -> Work:
        async def work(conn: Conn, i: int) -> int:
            status, _ = await conn.call(self._hold()[0])
            return status

        return work

    def hold_commit(self) -> Work:
        async def work(conn: Conn, i: int) -> int:
            status, body = await conn.call(self._hold()[0])
            if status != 201:
                return status
            status, _ = await conn.call(self._commit(_id(body)))
            return status

        return work

    def mixed(self) -> Work:
        """Hold, then: commit (60 %), cancel (20 %), walk away so it expires (10 %), or the
        terminal retries the hold with the same key and body, and commits the replay (10 %)."""

        async def work(conn: Conn, i: int) -> int:
            raw, _ = self._hold()
            status, body = await conn.call(raw)
            if status != 201:
                return status
            fate = self.rng.random()
            if fate < 0.6:
                status, _ = await conn.call(self._commit(_id(body)))
            elif fate < 0.8:
                status, _ = await conn.call(self._cancel(_id(body)))
            elif fate < 0.9:
                return status
            else:
                again, replay = await conn.call(raw)
                if again != 201 or _id(replay) != _id(body):
                    return 599  # a replay that differs: counted as a failure
                status, _ = await conn.call(self._commit(_id(body)))
            return status

        return work


def echo(sample: bytes) -> Work:
    raw = request("POST", "/echo", sample)

    async def work(conn: Conn, i: int) -> int:
        status, _ = await conn.call(raw)
        return status

    return work


def checkout(pop: Population, rng: random.Random) -> Work:
    """Scenario (a): limit query → password check (argon2) → hold → commit, one terminal's sale."""

    async def work(conn: Conn, i: int) -> int:
        participant, password = pop.flow[rng.randrange(len(pop.flow))]
        base = f"/v1/convenios/FLOW/participants/{participant}"
        status, _ = await conn.call(request("GET", f"{base}/limit", headers=pop.auth))
        if status != 200:
            return status
        check = msgspec.json.encode({"password": password, "integration_key": pop.integration_key})
        status, body = await conn.call(request("POST", f"{base}/password/verify", check, pop.auth))
        if status != 200:
            return status
        proof = msgspec.json.decode(body)["proof"]
        status, body = await conn.call(hold_request(pop, "FLOW", participant, proof, f"flow-{proof[:32]}"))
        if status != 201:
            return status
        status, _ = await conn.call(
            request("POST", f"/v1/empenhos/{_id(body)}/commit", b'{"coupon":"CUPOM-1"}', pop.auth)
        )
        return status

    return work


def password_checks(pop: Population, rng: random.Random) -> Work:
    async def work(conn: Conn, i: int) -> int:
        participant, password = pop.flow[rng.randrange(len(pop.flow))]
        check = msgspec.json.encode({"password": password, "integration_key": pop.integration_key})
        path = f"/v1/convenios/FLOW/participants/{participant}/password/verify"
        status, _ = await conn.call(request("POST", path, check, pop.auth))
        return status

    return work
