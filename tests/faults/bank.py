"""The bank test under faults (after Jepsen's bank test): many checkout terminals sell on a few
convênios while a nemesis kills Redis, the ledger writer and gateway workers, and crashes
Postgres. Terminals retry every unanswered request with the same Idempotency-Key and body, as
a real PDV does, until they get a decision. Afterwards the checker proves, from Postgres's
journal and from Redis: no pool ever went beyond limit + tolerance, every acknowledged
decision is stored exactly once, a retried request was charged once, every centavo the
terminals were told about is where it should be, and `convenio verify` finds no drift.

    .venv/bin/python -m tests.faults.bank --duration 300      # the long run; prints its counts

The test suite runs a short one (tests/faults/test_bank.py).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from gateway.auth import apikeys, integration
from gateway.auth.permissions import Permission
from gateway.platform.config import Settings
from gateway.platform.digests import digest
from gateway.platform.services import Services
from gateway.registry import convenios as registry_convenios
from gateway.registry import participants as registry_participants
from gateway.registry.schemas import ConvenioCreate, ParticipantCreate
from tests.faults.stack import Stack

TERMINAL = frozenset({Permission.LIMIT_QUERY, Permission.PASSWORD_CHECK, Permission.EMPENHO, Permission.EMPENHO_CANCEL})
#: answers a terminal retries: no decision was made, or none reached it
RETRY_STATUSES = frozenset({502, 503, 504})
FAULTS = ("redis", "writer", "gateway_worker", "postgres")


# -- the registry the terminals sell on --------------------------------------------------------------
@dataclass(frozen=True)
class Pool:
    """Where a sale's money comes from: a participant's own limit, or a convênio's shared one."""

    convenio: str
    participant: str  # "" for a shared pool
    limit: int
    tolerance: int


@dataclass(frozen=True)
class Buyer:
    convenio: str
    participant: str
    password: str
    pool: Pool


@dataclass
class Registry:
    api_key: str
    admin_key: str
    integration_key: str
    buyers: list[Buyer]

    @property
    def pools(self) -> list[Pool]:
        return list({b.pool: None for b in self.buyers})


async def load_registry(stack: Stack, participants: int, rng: random.Random) -> Registry:
    """Three convênios with individual limits and one shared pool, small enough that sales run
    into the limits all the time: the overdraft check has something to bite on."""
    settings = Settings(
        redis_url=stack.redis.url,
        database_url=stack.postgres.url,
        key_prefix=stack.prefix,
        shards=stack.shards,
        pepper=stack.pepper.encode(),
        password_threads=2,
    )
    svc = await Services.open(settings)
    try:
        await svc.start()
        buyers: list[Buyer] = []
        plan = [("IND01", False), ("IND02", False), ("IND03", False), ("SHR01", True)]
        for code, shared in plan:
            tolerance = 500 if not shared else 1_000
            total = 40_000 if shared else 10_000_000
            await registry_convenios.save_convenio(
                svc,
                code,
                ConvenioCreate(code=code, name=f"BANCO {code}", total_limit=total, tolerance=tolerance, shared=shared),
            )
            conv_pool = Pool(code, "", total, tolerance)
            for i in range(participants):
                part = f"P{i:03d}"
                limit = rng.choice([5_000, 10_000, 20_000])
                password = f"{rng.randrange(10**6):06d}"
                await registry_participants.save_participant(
                    svc,
                    code,
                    part,
                    ParticipantCreate(code=part, name=f"CLIENTE {part}", limit=limit, password=password),
                )
                pool = conv_pool if shared else Pool(code, part, limit, tolerance)
                buyers.append(Buyer(code, part, password, pool))
        integration_key = "ik_" + secrets.token_urlsafe(24)
        await integration.set_key(svc, integration_key, only_if_unset=False)
        api_key, _ = await apikeys.create(svc, TERMINAL, name="bank terminals")
        admin_key, _ = await apikeys.create(svc, frozenset({Permission.ADMIN}), name="bank back-office")
        return Registry(api_key, admin_key, integration_key, buyers)
    finally:
        await svc.close()


@dataclass
class Load:
    """The selling goes on until the time is up and the nemesis has finished its round; after
    that, a request still unanswered for grace_s is lost, not retried any more."""

    grace_s: float = 90.0
    stopped_at: float | None = None

    def on(self) -> bool:
        return self.stopped_at is None

    def stop(self) -> None:
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()

    def given_up(self) -> bool:
        return self.stopped_at is not None and time.monotonic() > self.stopped_at + self.grace_s


class GaveUp(Exception):
    """A request still unanswered long after the last fault was healed: the product is stuck."""


# -- what the terminals saw ------------------------------------------------------------------------
@dataclass
class Sale:
    buyer: Buyer
    key: str
    body: dict[str, Any]
    hold: dict[str, Any] | None = None  # the decision: {"status", "code" or "id", "protocol"}
    committed: int | None = None  # amount debited, as the commit's answer said
    commit_protocol: str | None = None
    refused: str | None = None  # the commit's 409 code (the hold expired first)
    ended: str | None = None  # CANCELLED / REVERSED, as the cancel's answer said
    cancel_protocol: str | None = None


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    requests: collections.Counter = field(default_factory=collections.Counter)
    retries: collections.Counter = field(default_factory=collections.Counter)
    statuses: collections.Counter = field(default_factory=collections.Counter)
    decisions: collections.Counter = field(default_factory=collections.Counter)
    faults: collections.Counter = field(default_factory=collections.Counter)
    duplicates: int = 0  # requests sent again on purpose after an answer
    proofs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # anything a terminal must never see


class Terminal:
    """One PDV: password check, hold, then commit, commit less, cancel, reverse or walk away."""

    def __init__(self, name: str, base_url: str, reg: Registry, tally: Tally, load: Load, rng: random.Random) -> None:
        self.name, self.reg, self.tally, self.load, self.rng = name, reg, tally, load, rng
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {reg.api_key}"},
            timeout=httpx.Timeout(5.0, connect=2.0),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        self.sales: list[Sale] = []
        self._n = itertools.count(1)

    async def close(self) -> None:
        await self.client.aclose()

    async def send(self, what: str, method: str, path: str, **kw: Any) -> httpx.Response:
        """Send until a decision comes back: a timeout, a dropped connection or a 503 means
        none reached us, so the same request goes again. Anything else is the answer."""
        self.tally.requests[what] += 1
        delay = 0.05
        for attempt in itertools.count():
            if attempt:
                self.tally.retries[what] += 1
            try:
                r = await self.client.request(method, path, **kw)
            except httpx.TransportError:
                self.tally.statuses["no answer"] += 1
            else:
                self.tally.statuses[r.status_code] += 1
                if r.status_code not in RETRY_STATUSES:
                    if r.status_code >= 500:
                        self.tally.errors.append(f"{what}: {r.status_code} {r.text[:200]}")
                    return r
            if self.load.given_up():
                raise GaveUp(f"{self.name}: no answer to {what} {method} {path} after every fault was healed")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    async def proof(self, b: Buyer) -> str | None:
        body = {"password": b.password, "integration_key": self.reg.integration_key}
        path = f"/v1/convenios/{b.convenio}/participants/{b.participant}/password/verify"
        r = await self.send("password", "POST", path, json=body)
        while r.status_code == 429:  # other checks of this participant in progress: wait, as told
            self.tally.decisions["password PASSWORD_CHECK_BUSY"] += 1
            await asyncio.sleep(r.json()["error"]["retry_after"] * self.rng.uniform(0.2, 1.0))
            r = await self.send("password", "POST", path, json=body)
        if r.status_code != 200 or not r.json().get("valid"):
            self.tally.errors.append(f"password check of {b.convenio}/{b.participant}: {r.status_code} {r.text[:200]}")
            return None
        proof = r.json()["proof"]
        self.tally.proofs.append(proof)
        return proof

    async def checkout(self) -> None:
        b = self.rng.choice(self.reg.buyers)
        proof = await self.proof(b)
        if proof is None:
            return
        n = next(self._n)
        body = {
            "convenio": b.convenio,
            "participant": b.participant,
            "amount": self.rng.randrange(100, 4_000),
            "terminal": self.name,
            "store": "LOJA01",
            "sale": f"{n:06d}",
            "proof": proof,
        }
        sale = Sale(b, f"{self.name}-{n:06d}-{secrets.token_hex(4)}", body)
        self.sales.append(sale)
        await self.place(sale)
        if sale.hold is None or sale.hold["status"] != 201:
            return
        fate = self.rng.random()
        if fate < 0.55:
            await self.commit(sale, None)
        elif fate < 0.70:
            await self.commit(sale, self.rng.randrange(1, body["amount"] + 1))
        elif fate < 0.85:
            await self.cancel(sale)
        elif fate < 0.95:
            await self.commit(sale, None)
            await self.cancel(sale)  # the coupon was cancelled after the sale: a reversal
        # else: the customer walks away; the hold expires

    async def place(self, sale: Sale) -> None:
        headers = {"Idempotency-Key": sale.key}
        r = await self.send("hold", "POST", "/v1/empenhos", json=sale.body, headers=headers)
        sale.hold = self.decision(r)
        self.tally.decisions[f"hold {sale.hold.get('code') or r.status_code}"] += 1
        if self.rng.random() < 0.05:  # a PDV that sends its request twice anyway
            self.tally.duplicates += 1
            again = await self.send("hold", "POST", "/v1/empenhos", json=sale.body, headers=headers)
            if self.decision(again) != sale.hold or again.headers.get("Idempotent-Replayed") != "true":
                self.tally.errors.append(f"hold {sale.key} replayed as {again.status_code} {again.text[:200]}")

    @staticmethod
    def decision(r: httpx.Response) -> dict[str, Any]:
        body = r.json()
        if r.status_code >= 400:
            error = body["error"]
            return {"status": r.status_code, "code": error["code"], "protocol": error.get("protocol")}
        return {"status": r.status_code, "id": body["id"], "amount": body["amount"], "protocol": body["protocol"]}

    async def commit(self, sale: Sale, amount: int | None) -> None:
        assert sale.hold is not None
        body: dict[str, Any] = {"coupon": f"CUPOM-{sale.body['sale']}"}
        if amount is not None:
            body["amount"] = amount
        path = f"/v1/empenhos/{sale.hold['id']}/commit"
        r = await self.send("commit", "POST", path, json=body)
        if r.status_code == 200:
            sale.committed, sale.commit_protocol = r.json()["amount"], r.json()["protocol"]
            self.tally.decisions["commit COMMITTED"] += 1
        elif r.status_code == 409:  # it expired while the faults held the terminal up
            sale.refused = r.json()["error"]["code"]
            self.tally.decisions[f"commit {sale.refused}"] += 1
        else:
            self.tally.errors.append(f"commit {sale.hold['id']}: {r.status_code} {r.text[:200]}")
            return
        if self.rng.random() < 0.05:
            self.tally.duplicates += 1
            again = await self.send("commit", "POST", path, json=body)
            if again.status_code != r.status_code or again.json() != r.json():
                self.tally.errors.append(f"commit {sale.hold['id']} again: {again.status_code} {again.text[:200]}")

    async def cancel(self, sale: Sale) -> None:
        assert sale.hold is not None
        r = await self.send("cancel", "POST", f"/v1/empenhos/{sale.hold['id']}/cancel", json={"reason": "bank test"})
        if r.status_code == 200:
            sale.ended, sale.cancel_protocol = r.json()["status"], r.json()["protocol"]
            self.tally.decisions[f"cancel {sale.ended}"] += 1
        elif r.status_code == 409:
            self.tally.decisions[f"cancel {r.json()['error']['code']}"] += 1
        else:
            self.tally.errors.append(f"cancel {sale.hold['id']}: {r.status_code} {r.text[:200]}")

    async def run(self) -> None:
        try:
            while self.load.on():
                await self.checkout()
        except GaveUp as exc:
            self.tally.errors.append(str(exc))


class Operator(Terminal):
    """The back-office raising limits while the terminals sell: each change moves the pool's
    balance by the difference, in the same scripts the holds go through."""

    def __init__(self, base_url: str, reg: Registry, tally: Tally, load: Load, rng: random.Random) -> None:
        super().__init__("BACKOFFICE", base_url, reg, tally, load, rng)
        self.client.headers["Authorization"] = f"Bearer {reg.admin_key}"
        self.limits = {(p.convenio, p.participant): p.limit for p in reg.pools}

    async def raise_one(self) -> None:
        convenio, participant = key = self.rng.choice(sorted(self.limits))
        limit = self.limits[key] + self.rng.randrange(2_000, 10_000)
        if participant:
            r = await self.send(
                "limit change", "PATCH", f"/v1/convenios/{convenio}/participants/{participant}", json={"limit": limit}
            )
        else:
            r = await self.send("limit change", "PATCH", f"/v1/convenios/{convenio}", json={"total_limit": limit})
        if r.status_code != 200:
            self.tally.errors.append(f"limit change of {key}: {r.status_code} {r.text[:200]}")
            return
        self.limits[key] = limit
        self.tally.decisions["limit raised"] += 1

    async def run(self, every_s: float = 0.5) -> None:
        try:
            while self.load.on():
                await asyncio.sleep(self.rng.uniform(0.5, 1.5) * every_s)
                await self.raise_one()
        except GaveUp as exc:
            self.tally.errors.append(str(exc))


# -- the nemesis -------------------------------------------------------------------------------------
async def nemesis(
    stack: Stack, tally: Tally, load: Load, duration_s: float, every_s: float, rng: random.Random
) -> None:
    """One fault at a time, every kind in turn (shuffled each round), each healed before the
    next; rounds go on until duration_s is up, then the load stops."""
    until = time.monotonic() + duration_s
    victims = itertools.count()
    try:
        while time.monotonic() < until:
            kinds = list(FAULTS)
            rng.shuffle(kinds)
            for kind in kinds:
                await asyncio.sleep(rng.uniform(0.5, 1.5) * every_s)
                await inject(stack, kind, next(victims), rng)
                tally.faults[kind] += 1
        await asyncio.sleep(every_s)  # the last fault healed: some selling on a whole stack
    finally:
        load.stop()


async def inject(stack: Stack, kind: str, n: int, rng: random.Random) -> None:
    if kind == "redis":
        await asyncio.to_thread(stack.kill_redis, rng.uniform(0.2, 1.5))
    elif kind == "writer":
        await asyncio.to_thread(stack.kill_writer, rng.uniform(0.2, 2.0))
    elif kind == "gateway_worker":
        await asyncio.to_thread(stack.kill_gateway_worker, n)
    else:
        await asyncio.to_thread(stack.restart_postgres, rng.uniform(0.2, 1.5))


# -- the checker ---------------------------------------------------------------------------------------
MONEY_EVENTS = ("empenho.held", "empenho.committed", "empenho.cancelled", "empenho.reversed", "empenho.expired")


@dataclass
class Verdict:
    problems: list[str]
    figures: dict[str, Any]


def pool_of(event: dict[str, Any]) -> tuple[str, str]:
    return (event["convenio"], "" if event["pool"] == "C" else event["participant"])


async def check(
    stack: Stack, reg: Registry, sales: list[Sale], limits: dict[tuple[str, str], int], tally: Tally
) -> Verdict:
    problems = list(tally.errors)
    conn = await asyncpg.connect(stack.postgres.url)
    try:
        rows = await conn.fetch(
            "SELECT protocol, type, data FROM journal WHERE type LIKE 'empenho.%' ORDER BY stream_id"
        )
        journal_total = await conn.fetchval("SELECT count(*) FROM journal")
    finally:
        await conn.close()
    events = [(r["protocol"], r["type"], json.loads(r["data"])) for r in rows]
    by_protocol = {p: (t, d) for p, t, d in events}
    pools = {(p.convenio, p.participant): p for p in reg.pools}

    # 1. never beyond limit + tolerance: the pool's balance and reserved after every change
    worst: dict[tuple[str, str], int] = {}
    for protocol, etype, d in events:
        if etype not in MONEY_EVENTS:
            continue
        pool = pools[pool_of(d)]
        available = d["balance"] + pool.tolerance - d["reserved"]
        worst[pool_of(d)] = min(worst.get(pool_of(d), available), available)
        if available < 0 or d["reserved"] < 0:
            problems.append(
                f"overdraft after {etype} {protocol}: {pool_of(d)} balance {d['balance']} "
                f"reserved {d['reserved']} tolerance {pool.tolerance}"
            )

    # 2. every acknowledged decision is in the journal, once, as what the terminal was told
    def stored(protocol: str | None, types: tuple[str, ...], what: str) -> dict[str, Any] | None:
        found = by_protocol.get(protocol or "")
        if found is None or found[0] not in types:
            problems.append(f"{what}: protocol {protocol} not in the journal as {types} (found {found and found[0]})")
            return None
        return found[1]

    held_per_key = collections.Counter(d.get("idem") for _, t, d in events if t in ("empenho.held", "empenho.declined"))
    final = collections.Counter(
        d["id"] for _, t, d in events if t in ("empenho.committed", "empenho.cancelled", "empenho.expired")
    )
    reversed_ = collections.Counter(d["id"] for _, t, d in events if t == "empenho.reversed")
    expected = dict(limits)  # each pool's last limit, less what the terminals were told was debited
    for s in sales:
        if s.hold is None:
            problems.append(f"sale {s.key} never got a decision")
            continue
        idem = digest(s.key)[:32]
        if held_per_key[idem] != 1:
            problems.append(f"sale {s.key}: {held_per_key[idem]} decisions stored for one Idempotency-Key")
        kind = ("empenho.held",) if s.hold["status"] == 201 else ("empenho.declined",)
        d = stored(s.hold["protocol"], kind, f"hold {s.key}")
        if d is None or s.hold["status"] != 201:
            continue
        if d["amount"] != s.body["amount"] or d["id"] != s.hold["id"]:
            problems.append(f"hold {s.key}: journal says {d['id']} {d['amount']}, the terminal was told {s.hold}")
        eid, key = s.hold["id"], (s.buyer.pool.convenio, s.buyer.pool.participant)
        if final[eid] != 1:
            problems.append(f"empenho {eid}: {final[eid]} final events (committed/cancelled/expired)")
        if s.committed is not None:
            c = stored(s.commit_protocol, ("empenho.committed",), f"commit of {eid}")
            if c is not None and c["amount"] != s.committed:
                problems.append(f"commit of {eid}: journal {c['amount']}, terminal told {s.committed}")
            expected[key] -= s.committed
        if s.ended is not None:
            etype = "empenho.reversed" if s.ended == "REVERSED" else "empenho.cancelled"
            stored(s.cancel_protocol, (etype,), f"cancel of {eid}")
            if s.ended == "REVERSED":
                expected[key] += s.committed or 0
        if reversed_[eid] > 1:
            problems.append(f"empenho {eid} reversed {reversed_[eid]} times")

    # 3. what Redis holds now: every hold ended, every pool's balance = limit - what was debited
    settings = Settings(redis_url=stack.redis.url, key_prefix=stack.prefix, shards=stack.shards)
    svc = await Services.open(settings)
    try:
        for key in pools:
            redis_key = svc.keys.participant(*key) if key[1] else svc.keys.convenio(key[0])
            balance, reserved = await svc.redis.hmget(redis_key, "balance", "reserved")
            want = expected[key]
            if int(balance) != want or int(reserved or 0) != 0:
                problems.append(
                    f"pool {key}: redis balance {int(balance)} reserved {int(reserved or 0)}, "
                    f"the terminals' answers add up to balance {want} reserved 0"
                )
    finally:
        await svc.close()

    # 4. the product's own verdict: Redis, the projections and the journal agree
    verified = await asyncio.to_thread(stack.cli, "verify", "--wait", "60")
    if verified.returncode != 0:
        problems.append(f"convenio verify exited {verified.returncode}: {verified.stdout}{verified.stderr}")

    # 5. no secret in any log
    secrets_ = {"API key": [reg.api_key], "integration key": [reg.integration_key], "pepper": [stack.pepper]}
    secrets_["proof"] = tally.proofs
    secrets_["password"] = [b.password for b in reg.buyers]
    for name, text in stack.logs().items():
        for what, values in secrets_.items():
            leaked = [v for v in values if v in text]
            if what == "password":  # six digits may occur by chance (pids, ports): look for them as fields
                leaked = [v for v in leaked if f'"{v}"' in text or f"'{v}'" in text]
            if leaked:
                problems.append(f"{name} holds {len(leaked)} {what}(s)")

    figures = {
        "seconds": round(time.monotonic() - tally.started, 1),
        "requests": dict(tally.requests),
        "operations": sum(tally.requests.values()),
        "retries": dict(tally.retries),
        "retried": sum(tally.retries.values()),
        "sent_twice_on_purpose": tally.duplicates,
        "faults": dict(tally.faults),
        "faults_injected": sum(tally.faults.values()),
        "answers": {str(k): v for k, v in sorted(tally.statuses.items(), key=str)},
        "decisions": dict(sorted(tally.decisions.items())),
        "journal_events": journal_total,
        "closest_to_the_limit": min(worst.values()) if worst else None,
        "problems": len(problems),
        "drift": 0 if verified.returncode == 0 else verified.stdout.strip(),
    }
    return Verdict(problems, figures)


# -- a run -------------------------------------------------------------------------------------------
@dataclass
class Run:
    duration_s: float = 20.0
    terminals: int = 12
    participants: int = 8  # per convênio
    fault_every_s: float = 2.5
    seed: int = 20261123
    workers: int = 2


async def _wait_for(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.2)


async def bank(run: Run, root: Path, say: Callable[[str], None] = print) -> Verdict:
    rng = random.Random(run.seed)
    stack = Stack(root, pepper=secrets.token_hex(16), workers=run.workers)
    await asyncio.to_thread(stack.start)
    try:
        reg = await load_registry(stack, run.participants, rng)
        tally, load = Tally(), Load()
        terminals = [
            Terminal(f"PDV{i:02d}", stack.base_url, reg, tally, load, random.Random(rng.random()))
            for i in range(run.terminals)
        ]
        operator = Operator(stack.base_url, reg, tally, load, random.Random(rng.random()))
        say(f"bank: {run.terminals} terminals, {len(reg.buyers)} participants, {run.duration_s:.0f} s of faults")
        try:
            await asyncio.gather(
                nemesis(stack, tally, load, run.duration_s, run.fault_every_s, random.Random(rng.random())),
                operator.run(),
                *(t.run() for t in terminals),
            )
        finally:
            for t in (*terminals, operator):
                await t.close()
        say(f"bank: load over after {time.monotonic() - tally.started:.0f} s; waiting for every hold to end")

        svc = await Services.open(Settings(redis_url=stack.redis.url, key_prefix=stack.prefix, shards=stack.shards))
        try:

            async def nothing_pending() -> bool:
                counts = [await svc.redis.zcard(svc.keys.pending(s)) for s in range(stack.shards)]
                return sum(counts) == 0

            await _wait_for(nothing_pending, stack.hold_ttl_s + 30, "holds still pending after their TTL")
        finally:
            await svc.close()
        sales = [s for t in terminals for s in t.sales]
        return await check(stack, reg, sales, operator.limits, tally)
    finally:
        await asyncio.to_thread(stack.stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=300, help="seconds of load and faults (default 300)")
    parser.add_argument("--terminals", type=int, default=16)
    parser.add_argument("--participants", type=int, default=8, help="per convênio (4 convênios)")
    parser.add_argument("--fault-every", type=float, default=3.0, help="mean seconds between faults")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--workers", type=int, default=2, help="gateway (uvicorn) workers")
    parser.add_argument("--keep", action="store_true", help="keep the servers' data and logs afterwards")
    args = parser.parse_args(argv)
    run = Run(args.duration, args.terminals, args.participants, args.fault_every, args.seed, args.workers)
    root = Path(tempfile.mkdtemp(prefix="convenio-bank-", dir="/tmp"))
    verdict = asyncio.run(bank(run, root, say=lambda line: print(line, file=sys.stderr)))
    print(json.dumps({"seed": args.seed, **verdict.figures}, indent=2))
    for problem in verdict.problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    if not args.keep and not verdict.problems:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"data and logs kept in {root}", file=sys.stderr)
    return 1 if verdict.problems else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
