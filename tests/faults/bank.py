"""The bank test under faults (after Jepsen's bank test): many checkout terminals sell on a few
convênios while a nemesis kills Redis, the ledger writer and gateway workers, and crashes
Postgres. Terminals retry every unanswered request with the same Idempotency-Key and body, as
a real PDV does, until they get a decision. Returns desks meanwhile take back part of what was
sold: in parts, more than is left on purpose, from two terminals at once, after Redis forgot
the sale, as the customer's credit, and a reversal of what the returns left. Afterwards the
checker proves, from Postgres's journal and tables and from Redis: no pool ever went beyond
limit + tolerance, every acknowledged decision is stored exactly once, a retried request was
charged once, each sale's returns add up to no more than it committed (and to what the ledger
and Redis say it returned), each return's Idempotency-Key moved money once, a reversal after
returns gave back only what they left, every centavo the terminals were told about is where it
should be (balance = limit - sales + reversals + POOL returns), and `convenio verify` finds no
drift.

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
from redis.exceptions import RedisError

from gateway.auth import apikeys, integration
from gateway.auth.permissions import Permission
from gateway.platform.config import Settings
from gateway.platform.digests import digest
from gateway.platform.ids import empenho_shard
from gateway.platform.services import Services
from gateway.registry import convenios as registry_convenios
from gateway.registry import participants as registry_participants
from gateway.registry.schemas import ConvenioCreate, ParticipantCreate
from ledger.ops.verify import credit_drift, wait_for_ledger
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
    reversed_amount: int | None = None  # what the reversal gave back, as its answer said
    cancel_refused: str | None = None  # the cancel's 409 code (FULLY_RETURNED after returns of everything)
    returns: list[Return] = field(default_factory=list)  # what the returns desk asked for, in order
    in_redis: bool = True  # False once the desk made Redis forget it, until a return brings it back
    forgotten: int = 0  # how many times the desk made Redis forget it

    def approved(self) -> list[Return]:
        return [r for r in self.returns if r.approved]

    def left(self) -> int:
        """What the desk knows is still returnable: committed less every approved return."""
        return (self.committed or 0) - sum(r.body["amount"] for r in self.approved())


@dataclass
class Return:
    """One return (devolução) the desk asked for, and the decision it got."""

    sale: Sale
    key: str  # its Idempotency-Key
    body: dict[str, Any]
    how: str  # part / over / race / forgotten / credit / whole / not committed
    after_forgotten: bool  # sent while Redis had forgotten the sale
    answer: dict[str, Any] | None = None  # {"http", and the body (201) or the error's fields}

    @property
    def approved(self) -> bool:
        return self.answer is not None and self.answer["http"] == 201

    @property
    def code(self) -> str | None:
        return None if self.answer is None else self.answer.get("code")


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    requests: collections.Counter = field(default_factory=collections.Counter)
    retries: collections.Counter = field(default_factory=collections.Counter)
    statuses: collections.Counter = field(default_factory=collections.Counter)
    decisions: collections.Counter = field(default_factory=collections.Counter)
    faults: collections.Counter = field(default_factory=collections.Counter)
    returns: collections.Counter = field(default_factory=collections.Counter)  # the returns desk's figures
    duplicates: int = 0  # requests sent again on purpose after an answer
    proofs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # anything a terminal must never see


def pdv_client(base_url: str, api_key: str) -> httpx.AsyncClient:
    """One terminal's connection to the gateway: one request at a time, as a PDV sends them."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=httpx.Timeout(5.0, connect=2.0),
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


class Terminal:
    """One PDV: password check, hold, then commit, commit less, cancel, reverse or walk away.
    Some sales it leaves committed go to the returns desk (`desk`), which takes them back in
    part later; a few it cancelled or walked away from go there too (no return may touch them)."""

    def __init__(
        self,
        name: str,
        base_url: str,
        reg: Registry,
        tally: Tally,
        load: Load,
        rng: random.Random,
        desk: list[Sale] | None = None,
    ) -> None:
        self.name, self.reg, self.tally, self.load, self.rng = name, reg, tally, load, rng
        self.client = pdv_client(base_url, reg.api_key)
        self.sales: list[Sale] = []
        self.desk = desk
        self._n = itertools.count(1)

    async def close(self) -> None:
        await self.client.aclose()

    async def send(
        self, what: str, method: str, path: str, client: httpx.AsyncClient | None = None, **kw: Any
    ) -> httpx.Response:
        """Send until a decision comes back: a timeout, a dropped connection or a 503 means
        none reached us, so the same request goes again. Anything else is the answer."""
        client = client or self.client
        self.tally.requests[what] += 1
        delay = 0.05
        for attempt in itertools.count():
            if attempt:
                self.tally.retries[what] += 1
            try:
                r = await client.request(method, path, **kw)
            except httpx.TransportError:
                self.tally.statuses["no answer"] += 1
            else:
                self.tally.statuses[r.status_code] += 1
                if r.status_code not in RETRY_STATUSES:
                    if r.status_code >= 500:
                        self.tally.errors.append(f"{what}: {r.status_code} {r.text[:200]}")
                    return r
                if what == "return":  # why a return had to be sent again (LEDGER_UNAVAILABLE: still storing)
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        self.tally.returns[f"retried after {r.status_code} {r.json()['error']['code']}"] += 1
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
            return
        # else: the customer walks away; the hold expires
        if self.desk is None:
            return
        if sale.committed is not None and self.rng.random() < 0.6:
            self.desk.append(sale)  # the customer comes back later with some of it
        elif sale.committed is None and self.rng.random() < 0.1:
            self.desk.append(sale)  # ... or with something that was never sold

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
            if sale.ended == "REVERSED":
                sale.reversed_amount = r.json()["amount"]
            self.tally.decisions[f"cancel {sale.ended}"] += 1
        elif r.status_code == 409:
            sale.cancel_refused = r.json()["error"]["code"]
            self.tally.decisions[f"cancel {sale.cancel_refused}"] += 1
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


# -- the returns desk --------------------------------------------------------------------------------
#: what a look at Postgres or Redis behind the gateway's back may meet while a fault is on
DOWN = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, RedisError)


class Desk(Terminal):
    """The store's returns desk: customers come back with part of what the terminals sold them.
    It takes sales the terminals left committed (and a few they never committed) and returns
    them: in parts of what it knows is left, sometimes more than is left on purpose, from two
    terminals at once, after making Redis forget the sale (what Redis does once a final
    empenho's time there is over; the ledger has it), as the customer's credit, and now and
    then it reverses what the returns left. A sale handed over is the desk's alone, so it knows
    what is left of it and checks every answer against that."""

    def __init__(
        self,
        name: str,
        base_url: str,
        reg: Registry,
        tally: Tally,
        load: Load,
        rng: random.Random,
        desk: list[Sale],
        svc: Services,
        ledger_url: str,
    ) -> None:
        super().__init__(name, base_url, reg, tally, load, rng, desk)
        self.other = pdv_client(base_url, reg.api_key)  # the second terminal of a race
        self.svc, self.ledger_url = svc, ledger_url
        self.queue = desk

    async def close(self) -> None:
        await super().close()
        await self.other.aclose()

    def wrong(self, what: str) -> None:
        self.tally.errors.append(f"{self.name}: {what}")

    async def run(self) -> None:
        try:
            while self.load.on():
                if not self.queue:
                    await asyncio.sleep(0.05)
                    continue
                await self.serve(self.queue.pop(self.rng.randrange(len(self.queue))))
        except GaveUp as exc:
            self.tally.errors.append(str(exc))

    async def serve(self, sale: Sale) -> None:
        if sale.committed is None:  # cancelled, expired or still pending: nothing was sold
            ret = await self.give_back(sale, self.rng.randrange(1, sale.body["amount"] + 1), "not committed")
            self.expect_not_committed(ret, ("PENDING", "CANCELLED", "EXPIRED"))
            return
        plan = self.rng.random()
        if plan < 0.30:
            for _ in range(self.rng.randint(1, 3)):
                await self.part(sale)
        elif plan < 0.40:
            await self.part(sale, over=True)
        elif plan < 0.55:
            await self.race(sale)
        elif plan < 0.80:
            if self.rng.random() < 0.4:  # Redis forgets it perhaps before the ledger has this one
                await self.part(sale)
            await self.forget(sale)
            if self.rng.random() < 0.3:
                await self.race(sale)
            else:
                await self.part(sale, over=self.rng.random() < 0.2)
                if self.rng.random() < 0.3:
                    await self.part(sale)
        elif plan < 0.90:
            await self.part(sale, refund="CREDIT")
            if self.rng.random() < 0.5:
                await self.part(sale)
        else:
            await self.part(sale, whole=True)
            await self.reverse(sale)  # nothing left: FULLY_RETURNED
            return
        # a reversal of what the returns left (not of a sale Redis forgot: a cancel does not
        # bring a sale back from the ledger, only a return does)
        if sale.in_redis and self.rng.random() < 0.35:
            await self.reverse(sale)
            if sale.ended == "REVERSED" and self.rng.random() < 0.3:
                ret = await self.give_back(sale, self.rng.randrange(1, sale.committed + 1), "after reversal")
                self.expect_not_committed(ret, ("REVERSED",))

    # -- one return, and what its answer must be ----------------------------------------------------
    async def give_back(
        self,
        sale: Sale,
        amount: int,
        how: str,
        refund: str = "POOL",
        client: httpx.AsyncClient | None = None,
        terminal: str | None = None,
    ) -> Return:
        """Ask for one return under a new Idempotency-Key, retried as every request is until a
        decision comes back; now and then sent again after its answer (a replay), or with the
        same key and another amount (a conflict: it must move nothing)."""
        assert sale.hold is not None
        n = next(self._n)
        body: dict[str, Any] = {"amount": amount, "store": "LOJA01", "terminal": terminal or self.name}
        body["reason"] = f"bank {how}"
        if refund != "POOL" or self.rng.random() < 0.5:  # POOL is the default: say it, or not
            body["refund"] = refund
        ret = Return(sale, f"{self.name}-R{n:06d}-{secrets.token_hex(4)}", body, how, not sale.in_redis)
        sale.returns.append(ret)
        path = f"/v1/empenhos/{sale.hold['id']}/returns"
        headers = {"Idempotency-Key": ret.key}
        t = self.tally.returns
        t["asked"] += 1
        t["asked after forgotten"] += ret.after_forgotten
        r = await self.send("return", "POST", path, client=client, json=body, headers=headers)
        ret.answer = {"http": r.status_code, **(r.json() if r.status_code == 201 else r.json()["error"])}
        if ret.approved:
            sale.in_redis = True  # a return of a sale Redis forgot brings it back
            t["approved"] += 1
            t[f"approved {refund}"] += 1
            t["approved after forgotten"] += ret.after_forgotten
            t["centavos returned"] += amount
        elif r.status_code in (404, 409, 422):
            t[f"declined {ret.code}"] += 1
        else:
            self.wrong(f"return {ret.key} of {sale.hold['id']}: {r.status_code} {r.text[:200]}")
        if self.rng.random() < 0.1:  # a PDV that sends its return twice anyway: the same answer
            t["replayed"] += 1
            again = await self.send("return", "POST", path, client=client, json=body, headers=headers)
            if (again.status_code, again.json()) != (r.status_code, r.json()):
                self.wrong(f"return {ret.key} replayed as {again.status_code} {again.text[:200]}, first {r.text[:200]}")
            elif again.headers.get("Idempotent-Replayed") != "true":
                self.wrong(f"return {ret.key} replayed without Idempotent-Replayed: {again.headers}")
        if self.rng.random() < 0.03:  # the same key for another return: refused, nothing moves
            t["conflicts"] += 1
            other = {**body, "amount": amount + 1}
            c = await self.send("return", "POST", path, client=client, json=other, headers=headers)
            if c.status_code != 409 or c.json()["error"]["code"] != "IDEMPOTENCY_CONFLICT":
                self.wrong(f"return {ret.key} with another amount: {c.status_code} {c.text[:200]}")
        return ret

    def expect_within(self, ret: Return, left: int) -> None:
        """A return alone on its sale, which had `left` returnable: approved if it fits, else
        RETURN_EXCEEDS_SALE saying what is left."""
        sale, amount, a = ret.sale, ret.body["amount"], ret.answer
        assert sale.hold is not None and sale.committed is not None and a is not None
        if amount <= left:
            want = {
                "http": 201,
                "empenho": sale.hold["id"],
                "amount": amount,
                "returned": sale.committed - left + amount,
                "returnable": left - amount,
                "refund": ret.body.get("refund", "POOL"),
            }
        else:
            want = {"http": 422, "code": "RETURN_EXCEEDS_SALE", "returnable": left}
        got = {k: a.get(k) for k in want}
        if got != want:
            self.wrong(f"return {ret.key} of {amount} with {left} left of {sale.hold['id']}: {got}, expected {want}")

    def expect_not_committed(self, ret: Return, statuses: tuple[str, ...]) -> None:
        a = ret.answer
        assert a is not None
        if a["http"] != 409 or a.get("code") != "EMPENHO_NOT_COMMITTED" or a.get("status") not in statuses:
            self.wrong(f"return {ret.key} of a sale not committed ({statuses}): {a}")

    async def part(self, sale: Sale, refund: str = "POOL", over: bool = False, whole: bool = False) -> None:
        """One return of some of what is left (all of it, or more than that, on purpose)."""
        left = sale.left()
        if whole:
            amount, how = left, "whole"
        elif over or left == 0:
            amount, how = left + self.rng.randint(1, 500), "over"
        else:
            amount, how = self.rng.randint(1, left), "part"
        if not sale.in_redis:
            how = "forgotten"
        self.expect_within(await self.give_back(sale, amount, how, refund), left)

    async def race(self, sale: Sale) -> None:
        """Two terminals return the same sale at once, each more than half of what is left:
        exactly one may be approved."""
        assert sale.hold is not None and sale.committed is not None
        left = sale.left()
        if left == 0:
            return await self.part(sale)
        forgotten = not sale.in_redis
        amounts = [self.rng.randint(left // 2 + 1, left) for _ in range(2)]
        pair = await asyncio.gather(
            self.give_back(sale, amounts[0], "race", terminal=f"{self.name}A"),
            self.give_back(sale, amounts[1], "race", client=self.other, terminal=f"{self.name}B"),
        )
        self.tally.returns["racing pairs"] += 1
        self.tally.returns["racing pairs after forgotten"] += forgotten
        won = [r for r in pair if r.approved]
        if len(won) != 1:
            answers = [r.answer for r in pair]
            self.wrong(f"race on {sale.hold['id']} ({left} left, {amounts}): {len(won)} approved: {answers}")
            return
        winner, loser = won[0], next(r for r in pair if not r.approved)
        self.expect_within(winner, left)
        self.expect_within(loser, left - winner.body["amount"])

    async def reverse(self, sale: Sale) -> None:
        """Cancel a committed sale with returns: it reverses what they left, or, nothing left,
        FULLY_RETURNED."""
        assert sale.hold is not None
        left = sale.left()
        await self.cancel(sale)
        if left > 0 and (sale.ended, sale.reversed_amount) != ("REVERSED", left):
            self.wrong(f"reversal of {sale.hold['id']} with {left} left: {sale.ended} {sale.reversed_amount}")
        elif left == 0 and sale.cancel_refused != "FULLY_RETURNED":
            self.wrong(f"reversal of {sale.hold['id']} returned whole: {sale.ended} {sale.cancel_refused}")
        elif left > 0:
            self.tally.returns["reversed after returns" if sale.approved() else "reversed, no return approved"] += 1
        else:
            self.tally.returns["reversal refused FULLY_RETURNED"] += 1

    # -- making Redis forget a sale ----------------------------------------------------------------
    async def forget(self, sale: Sale) -> None:
        """Once the ledger has stored the commit, delete the empenho's keys, as tests/test_returns.py's
        `forget` does: the next return must find the sale in the ledger (and wait for it to store
        a return still on its way)."""
        assert sale.hold is not None
        eid = sale.hold["id"]
        shard = empenho_shard(eid, self.svc.settings.shards)
        assert shard is not None

        async def stored() -> bool:
            conn = await asyncpg.connect(self.ledger_url, timeout=2)
            try:
                return await conn.fetchval("SELECT status FROM empenhos WHERE id = $1", eid) == "COMMITTED"
            finally:
                await conn.close()

        async def deleted() -> bool:
            k = self.svc.keys
            await self.svc.redis.delete(k.empenho(shard, eid), k.empenho_history(shard, eid))
            return True

        await self.until(stored, f"the ledger to store the commit of {eid}")
        await self.until(deleted, f"Redis to forget {eid}")
        sale.in_redis = False
        sale.forgotten += 1
        self.tally.returns["sales forgotten"] += 1

    async def until(self, attempt: Callable[[], Awaitable[bool]], what: str) -> None:
        while True:
            try:
                if await asyncio.wait_for(attempt(), 5):
                    return
            except DOWN:
                pass
            if self.load.given_up():
                raise GaveUp(f"{self.name}: still waiting for {what} after every fault was healed")
            await asyncio.sleep(0.1)


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
MONEY_EVENTS = (
    "empenho.held",
    "empenho.committed",
    "empenho.cancelled",
    "empenho.reversed",
    "empenho.expired",
    "empenho.returned",
)
RETURN_EVENTS = ("empenho.returned", "empenho.return_declined")


@dataclass
class Verdict:
    problems: list[str]
    figures: dict[str, Any]


def pool_of(event: dict[str, Any]) -> tuple[str, str]:
    return (event["convenio"], "" if event["pool"] == "C" else event["participant"])


@dataclass
class Stored:
    """The ledger's tables the returns touch, as the checker reads them once the writer caught up."""

    empenhos: dict[str, Any]  # id -> row (status, committed_amount, returned)
    returns: dict[str, Any]  # return id -> empenho_returns row
    movements: dict[str, Any]  # protocol -> movements row (RETURN and REVERSAL)
    credits: dict[tuple[str, str], list[Any]]  # (customer, reference) -> DEVOLUCAO credits rows

    @classmethod
    async def read(cls, conn: asyncpg.Connection) -> Stored:
        empenhos = {r["id"]: r for r in await conn.fetch("SELECT id, status, committed_amount, returned FROM empenhos")}
        returns = {r["id"]: r for r in await conn.fetch("SELECT * FROM empenho_returns")}
        movements = {
            r["protocol"]: r
            for r in await conn.fetch(
                "SELECT protocol, kind, amount, convenio, participant, pool, empenho_id FROM movements "
                "WHERE kind IN ('RETURN', 'REVERSAL')"
            )
        }
        credits: dict[tuple[str, str], list[Any]] = collections.defaultdict(list)
        for r in await conn.fetch("SELECT customer, reference, type, amount FROM credits WHERE reference LIKE 'DEV-%'"):
            credits[(r["customer"], r["reference"])].append(r)
        return cls(empenhos, returns, movements, dict(credits))


async def redis_records(svc: Services, ids: list[str]) -> dict[str, dict[str, str]]:
    """The empenhos' hashes Redis still holds (a forgotten one is absent)."""
    out: dict[str, dict[str, str]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        async with svc.redis.pipeline(transaction=False) as pipe:
            for eid in chunk:
                shard = empenho_shard(eid, svc.settings.shards)
                assert shard is not None
                pipe.hgetall(svc.keys.empenho(shard, eid))
            for eid, raw in zip(chunk, await pipe.execute(), strict=True):
                if raw:
                    out[eid] = {k.decode(): v.decode() for k, v in raw.items()}
    return out


def check_returns(
    sales: list[Sale],
    events: list[tuple[str, str, dict[str, Any]]],
    stored: Stored,
    records: dict[str, dict[str, str]],
    problems: list[str],
) -> dict[str, Any]:
    """The returns' invariants, from the journal, the ledger's tables and Redis: each sale's
    approved returns add up to no more than it committed, and to what `empenhos.returned`, its
    `empenho_returns` rows and Redis's record say; each running total follows from the one
    before (no return lost, none counted twice); each Idempotency-Key decided once and each
    return id stored once; every return any terminal was told of is stored as told (a POOL one
    with its RETURN movement, a CREDIT one as exactly one DEVOLUCAO credit and no movement), and
    every return stored was told to a terminal; a reversal after returns gave back only what
    they left. Returns the figures it found."""
    by_protocol = {p: (t, d) for p, t, d in events}
    returned = [d for _, t, d in events if t == "empenho.returned"]
    per_return_id = collections.Counter(d["return_id"] for d in returned)
    per_key = collections.Counter(d.get("idem") for _, t, d in events if t in RETURN_EVENTS)
    per_sale: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for d in returned:
        per_sale[d["id"]].append(d)
    for rid, n in per_return_id.items():
        if n != 1:
            problems.append(f"return {rid}: {n} empenho.returned events")
    told: set[str] = set()

    for s in sales:
        for ret in s.returns:
            what = f"return {ret.key} ({ret.how}) of {s.hold and s.hold['id']}"
            if ret.answer is None:
                problems.append(f"{what} never got a decision")
                continue
            if per_key[digest(ret.key)[:32]] != 1:
                problems.append(f"{what}: {per_key[digest(ret.key)[:32]]} decisions stored for its Idempotency-Key")
            found = by_protocol.get(ret.answer.get("protocol") or "")
            if not ret.approved:
                if found is None or found[0] != "empenho.return_declined" or found[1].get("error") != ret.code:
                    problems.append(f"{what}: declined {ret.code}, the journal has {found and found[0]}")
                continue
            rid, amount, refund = ret.answer["id"], ret.body["amount"], ret.answer["refund"]
            told.add(rid)
            if found is None or found[0] != "empenho.returned":
                problems.append(f"{what}: approved as {rid}, the journal has {found and found[0]}")
                continue
            d = found[1]
            got = (d["return_id"], d["id"], d["amount"], d["returned"], d["refund"], d["idem"])
            want = (rid, s.hold and s.hold["id"], amount, ret.answer["returned"], refund, digest(ret.key)[:32])
            if got != want:
                problems.append(f"{what}: journal {got}, the terminal was told {want}")
            if bool(d.get("restored")) != ret.after_forgotten:
                problems.append(
                    f"{what}: restored from the ledger {d.get('restored')}, sent after forgotten {ret.after_forgotten}"
                )
            row = stored.returns.get(rid)
            want_row = (d["id"], ret.answer["protocol"], amount, ret.answer["returned"], refund)
            got_row = row and (row["empenho_id"], row["protocol"], row["amount"], row["returned_after"], row["refund"])
            if got_row != want_row:
                problems.append(f"{what}: empenho_returns row {got_row}, expected {want_row}")
            movement = stored.movements.get(ret.answer["protocol"])
            reference = f"DEV-{rid}"
            if refund == "POOL":
                if movement is None or (movement["kind"], movement["amount"], movement["empenho_id"]) != (
                    "RETURN",
                    amount,
                    d["id"],
                ):
                    problems.append(f"{what}: movement {movement and dict(movement)}, expected RETURN of {amount}")
            else:
                credits = stored.credits.get((s.buyer.participant, reference), [])
                if movement is not None:
                    problems.append(f"{what}: a CREDIT return moved the pool: {dict(movement)}")
                if [(c["type"], c["amount"]) for c in credits] != [("DEVOLUCAO", amount)]:
                    problems.append(f"{what}: credits {reference} of {s.buyer.participant}: {credits}")
                if ret.answer.get("credit", {}).get("reference") != reference:
                    problems.append(f"{what}: answered credit {ret.answer.get('credit')}, expected {reference}")
    stray = (set(per_return_id) | set(stored.returns)) - told
    if stray:
        problems.append(f"{len(stray)} return(s) stored that no terminal was told of: {sorted(stray)[:10]}")
    rows_of: dict[str, list[Any]] = collections.defaultdict(list)
    for row in stored.returns.values():
        rows_of[row["empenho_id"]].append(row)

    figures: collections.Counter = collections.Counter()
    for s in sales:
        if s.hold is None or s.hold["status"] != 201 or s.committed is None:
            continue
        eid, approved = s.hold["id"], s.approved()
        total = sum(r.body["amount"] for r in approved)
        figures["sales returned in part"] += 0 < total < s.committed
        figures["sales returned whole"] += total == s.committed
        figures["sales forgotten by redis"] += s.forgotten > 0
        running = 0
        for d in sorted(per_sale.get(eid, []), key=lambda d: d["returned"]):
            running += d["amount"]
            if d["returned"] != running or d["committed"] != s.committed:
                problems.append(
                    f"empenho {eid}: return {d['return_id']} of {d['amount']} says returned {d['returned']} of "
                    f"{d['committed']}; the returns before it add up to {running - d['amount']} of {s.committed}"
                )
        if running != total or total > s.committed:
            problems.append(f"empenho {eid}: returns in the journal {running}, told {total}, committed {s.committed}")
        row = stored.empenhos.get(eid)
        rows = rows_of.get(eid, [])
        if row is None or row["returned"] != total or row["committed_amount"] != s.committed:
            problems.append(f"empenho {eid}: ledger row {row and dict(row)}, returned {total} of {s.committed}")
        if len(rows) != len(approved) or sum(r["amount"] for r in rows) != total:
            problems.append(f"empenho {eid}: {len(rows)} empenho_returns rows, {len(approved)} returns approved")
        status = "COMMITTED"
        if s.ended == "REVERSED":  # the reversal gave back what the returns left, no more
            status = "REVERSED"
            rev = by_protocol.get(s.cancel_protocol or "")
            moved = stored.movements.get(s.cancel_protocol or "")
            got = (s.reversed_amount, rev and rev[1]["amount"], moved and moved["amount"])
            if got != (s.committed - total,) * 3:
                problems.append(
                    f"empenho {eid}: reversed {got} (answer, journal, movement) after {total} of {s.committed} returned"
                )
            figures["reversed after returns"] += total > 0
        elif s.cancel_refused == "FULLY_RETURNED" and total != s.committed:
            problems.append(f"empenho {eid}: FULLY_RETURNED with {total} of {s.committed} returned")
        if row is not None and row["status"] != status:
            problems.append(f"empenho {eid}: ledger status {row['status']}, expected {status}")
        rec = records.get(eid)
        if (rec is not None) != s.in_redis:
            problems.append(f"empenho {eid}: in Redis {rec is not None}, expected {s.in_redis}")
        if rec is not None:
            ids = {r["id"] for r in json.loads(rec["returns"]) or []} if rec.get("returns") else set()
            got = (rec["status"], int(rec.get("returned") or 0), ids)
            want = (status, total, {r.answer["id"] for r in approved if r.answer})
            if got != want:
                problems.append(f"empenho {eid}: Redis holds {got}, expected {want}")
    figures["restored from the ledger"] = sum(1 for d in returned if d.get("restored"))
    figures["return events"] = len(returned)
    figures["return_declined events"] = sum(1 for _, t, _ in events if t == "empenho.return_declined")
    return dict(figures)


async def check(
    stack: Stack, reg: Registry, sales: list[Sale], limits: dict[tuple[str, str], int], tally: Tally
) -> Verdict:
    problems = list(tally.errors)
    settings = Settings(redis_url=stack.redis.url, key_prefix=stack.prefix, shards=stack.shards)
    svc = await Services.open(settings)
    try:
        lag = await wait_for_ledger(svc, 60)  # the journal is read once the writer has stored everything
        if lag:
            problems.append(f"the ledger writer is still {lag} event(s) behind after 60 s")
        conn = await asyncpg.connect(stack.postgres.url)
        try:
            rows = await conn.fetch(
                "SELECT protocol, type, data FROM journal WHERE type LIKE 'empenho.%' ORDER BY stream_id"
            )
            journal_total = await conn.fetchval("SELECT count(*) FROM journal")
            ledger = await Stored.read(conn)
            problems += await credit_drift(svc, conn)
        finally:
            await conn.close()
        committed = [s.hold["id"] for s in sales if s.hold and s.committed is not None]
        records = await redis_records(svc, committed)
        balances = {}
        for p in reg.pools:
            key = svc.keys.participant(p.convenio, p.participant) if p.participant else svc.keys.convenio(p.convenio)
            balances[(p.convenio, p.participant)] = await svc.redis.hmget(key, "balance", "reserved")
    finally:
        await svc.close()
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
            if s.ended == "REVERSED":  # what the returns left (checked in 3.)
                expected[key] += s.reversed_amount or 0
        # POOL returns give back to the pool; CREDIT ones leave it alone
        expected[key] += sum(r.body["amount"] for r in s.approved() if r.answer and r.answer["refund"] == "POOL")
        if reversed_[eid] > 1:
            problems.append(f"empenho {eid} reversed {reversed_[eid]} times")

    # 3. the returns: see check_returns; and each pool's RETURN movements add up to its POOL returns
    returns = check_returns(sales, events, ledger, records, problems)
    pool_returns: collections.Counter = collections.Counter()
    for s in sales:
        for r in s.approved():
            if r.answer and r.answer["refund"] == "POOL":
                pool_returns[(s.buyer.pool.convenio, s.buyer.pool.participant)] += r.body["amount"]
    moved: collections.Counter = collections.Counter()
    for m in ledger.movements.values():
        if m["kind"] == "RETURN":
            moved[(m["convenio"], "" if m["pool"] == "C" else m["participant"])] += m["amount"]
    if moved != pool_returns:
        problems.append(f"RETURN movements per pool {dict(moved)}, the terminals were told of {dict(pool_returns)}")

    # 4. what Redis holds now: every hold ended, every pool's balance = limit - what was debited
    #    + what reversals and POOL returns gave back
    for key in pools:
        balance, reserved = balances[key]
        want = expected[key]
        if int(balance) != want or int(reserved or 0) != 0:
            problems.append(
                f"pool {key}: redis balance {int(balance)} reserved {int(reserved or 0)}, "
                f"the terminals' answers add up to balance {want} reserved 0"
            )

    # 5. the product's own verdict: Redis, the projections and the journal agree
    verified = await asyncio.to_thread(stack.cli, "verify", "--wait", "60")
    if verified.returncode != 0:
        problems.append(f"convenio verify exited {verified.returncode}: {verified.stdout}{verified.stderr}")

    # 6. no secret in any log
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
        "sales": {
            "held": sum(1 for s in sales if s.hold and s.hold["status"] == 201),
            "committed": len(committed),
            "returned in part": returns.pop("sales returned in part", 0),
            "returned whole": returns.pop("sales returned whole", 0),
            "forgotten by redis": returns.pop("sales forgotten by redis", 0),
        },
        "returns": dict(sorted({**tally.returns, **returns}.items())),
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
    desks: int = 3  # returns desks
    cluster: bool = False  # Redis Cluster, 3 masters with a replica each; the Redis fault kills a master


async def _wait_for(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.2)


async def bank(run: Run, root: Path, say: Callable[[str], None] = print) -> Verdict:
    rng = random.Random(run.seed)
    stack = Stack(root, pepper=secrets.token_hex(16), workers=run.workers, cluster=run.cluster)
    await asyncio.to_thread(stack.start)
    try:
        reg = await load_registry(stack, run.participants, rng)
        tally, load, handed_over = Tally(), Load(), list[Sale]()
        terminals = [
            Terminal(f"PDV{i:02d}", stack.base_url, reg, tally, load, random.Random(rng.random()), handed_over)
            for i in range(run.terminals)
        ]
        operator = Operator(stack.base_url, reg, tally, load, random.Random(rng.random()))
        # the desk's own look at Redis, to make it forget a sale (the gateway's timeout)
        behind = Settings(
            redis_url=stack.redis.url,
            key_prefix=stack.prefix,
            shards=stack.shards,
            redis_timeout_ms=stack.redis_timeout_ms,
        )
        desk_svc = await Services.open(behind)
        desks = [
            Desk(
                f"DEV{i:02d}",
                stack.base_url,
                reg,
                tally,
                load,
                random.Random(rng.random()),
                handed_over,
                desk_svc,
                stack.postgres.url,
            )
            for i in range(run.desks)
        ]
        say(
            f"bank: {run.terminals} terminals, {run.desks} returns desks, {len(reg.buyers)} participants, "
            f"{run.duration_s:.0f} s of faults"
        )
        try:
            await asyncio.gather(
                nemesis(stack, tally, load, run.duration_s, run.fault_every_s, random.Random(rng.random())),
                operator.run(),
                *(t.run() for t in terminals),
                *(d.run() for d in desks),
            )
        finally:
            for t in (*terminals, operator, *desks):
                await t.close()
            await desk_svc.close()
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
    parser.add_argument("--desks", type=int, default=3, help="returns desks")
    parser.add_argument("--keep", action="store_true", help="keep the servers' data and logs afterwards")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="on a Redis Cluster (3 masters, a replica each): the Redis fault kills a master",
    )
    args = parser.parse_args(argv)
    run = Run(
        args.duration,
        args.terminals,
        args.participants,
        args.fault_every,
        args.seed,
        args.workers,
        args.desks,
        args.cluster,
    )
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
