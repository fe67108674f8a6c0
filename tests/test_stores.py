"""Stores, their terminals and keys scoped to them.

Store L001's checkout holds a key that acts for L001 only: its holds, commits, cancels, reads and
returns are refused with 403 STORE_NOT_ALLOWED wherever they name (or touch a hold placed at)
store L002, and the ledger records L001 for what it did. A convênio may be accepted at some
stores only. A rotated key keeps its predecessor's idempotency scope, so a terminal that retries
a sale with its new key gets the first answer back instead of a second charge.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.auth import apikeys
from gateway.auth.permissions import Permission
from gateway.platform.services import Services
from gateway.stores import stores
from gateway.stores.schemas import StoreCreate, StoreUpdate
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, assert_error, mint_proof
from tests.test_cli import cli_env, convenio  # noqa: F401  (the fixture)
from tests.test_credits import Account

CHECKOUT = frozenset({Permission.LIMIT_QUERY, Permission.PASSWORD_CHECK, Permission.EMPENHO, Permission.EMPENHO_CANCEL})


async def open_store(svc: Services, code: str, *terminals: str) -> None:
    await stores.save(svc, code, StoreCreate(code=code, name=f"LOJA {code}"))
    for terminal in terminals:
        await stores.save_terminal(svc, code, terminal, "ACTIVE")


class Checkout(Terminal):
    """A terminal at a store: its sales name that store and terminal."""

    def __init__(self, seed: Terminal, token: str, store: str, terminal: str) -> None:
        super().__init__(seed.client, {**seed.creds, "api_key": token})
        self.store, self.terminal = store, terminal

    def sale(self, amount: int, proof: str | None, **extra: Any) -> dict[str, Any]:
        return super().sale(amount, proof, **{"store": self.store, "terminal": self.terminal, **extra})

    async def give_back(self, empenho_id: str, amount: int, store: str | None = None) -> httpx.Response:
        return await self.return_sale(empenho_id, amount, store=store or self.store, terminal=self.terminal)


@pytest.fixture
async def chain(svc: Services, seed: Terminal) -> dict[str, Checkout]:
    """Stores L001 and L002 with a terminal PDV01 each (L001 also PDV02); a key scoped to L001,
    one scoped to L001's PDV01, and the demo's unscoped key at L002."""
    await open_store(svc, "L001", "PDV01", "PDV02")
    await open_store(svc, "L002", "PDV01")
    l001, _ = await apikeys.create(svc, CHECKOUT, "PDVs loja 1", store="L001")
    pdv01, _ = await apikeys.create(svc, CHECKOUT, "PDV01 loja 1", store="L001", terminal="PDV01")
    return {
        "L001": Checkout(seed, l001, "L001", "PDV02"),
        "L001/PDV01": Checkout(seed, pdv01, "L001", "PDV01"),
        "L002": Checkout(seed, seed.creds["api_key"], "L002", "PDV01"),
    }


async def ledger_rows(svc: Services, ledger_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    await writer.drain(svc, ledger_url)
    conn = await asyncpg.connect(ledger_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


# --- a key scoped to a store ----------------------------------------------------------------------
async def test_a_key_of_store_l001_sells_there_and_its_decisions_carry_l001(
    chain: dict[str, Checkout], svc: Services, ledger_url: str
) -> None:
    l001 = chain["L001"]
    held = await l001.hold(3_000)
    assert held.status_code == 201, held.text
    eid = held.json()["id"]
    assert (await l001.get(eid)).json()["store"] == "L001"
    assert (await l001.commit(eid, coupon="NF-1")).status_code == 200
    assert (await l001.give_back(eid, 1_000)).status_code == 201
    other = (await l001.hold(500)).json()["id"]
    assert (await l001.cancel(other)).status_code == 200

    rows = await ledger_rows(svc, ledger_url, "SELECT store, terminal, api_key_id FROM empenhos ORDER BY created_at")
    assert [(r["store"], r["terminal"]) for r in rows] == [("L001", "PDV02"), ("L001", "PDV02")]
    assert {r["api_key_id"] for r in rows} == {apikeys.key_id(l001.headers["Authorization"][7:])}
    decisions = await ledger_rows(
        svc, ledger_url, "SELECT kind, request->>'store' AS store FROM decisions WHERE empenho_id = $1", eid
    )
    assert sorted((d["kind"], d["store"]) for d in decisions) == [
        ("empenho.commit", None),  # a commit names no store: the hold's own is L001
        ("empenho.hold", "L001"),
        ("empenho.return", "L001"),
    ]


async def test_a_key_of_store_l001_is_refused_at_l002_on_every_terminal_endpoint(
    chain: dict[str, Checkout], svc: Services, ledger_url: str
) -> None:
    l001, l002 = chain["L001"], chain["L002"]
    # a sale naming L002, and a return at L002 of its own sale
    r = await l001.hold(1_000, store="L002")
    assert_error(r, 403, "STORE_NOT_ALLOWED")
    mine = (await l001.hold(1_000)).json()["id"]
    assert (await l001.commit(mine)).status_code == 200
    assert_error(await l001.give_back(mine, 100, store="L002"), 403, "STORE_NOT_ALLOWED")

    # L002's own sales: L001's key can neither read, commit, cancel nor return them
    theirs = (await l002.hold(1_000)).json()["id"]
    sold = (await l002.hold(1_000)).json()["id"]
    assert (await l002.commit(sold)).status_code == 200
    assert_error(await l001.get(theirs), 403, "STORE_NOT_ALLOWED")
    assert_error(await l001.commit(theirs), 403, "STORE_NOT_ALLOWED")
    assert_error(await l001.cancel(theirs), 403, "STORE_NOT_ALLOWED")
    assert_error(await l001.cancel(sold), 403, "STORE_NOT_ALLOWED")
    # a customer may bring goods back to any store of the chain: the return is L001's, not L002's
    taken = await l001.give_back(sold, 100)
    assert taken.status_code == 201, taken.text
    # untouched by the refusals: L002 still commits its pending sale
    assert (await l002.commit(theirs)).status_code == 200
    assert (await l002.get(sold)).json()["status"] == "COMMITTED"


async def test_a_key_of_store_l001_is_refused_at_l002_for_credit_holds(
    chain: dict[str, Checkout], client: httpx.AsyncClient, backoffice: BackOffice, seed: Terminal, clock: Clock
) -> None:
    office = Account(client, backoffice, seed, clock)
    await office.registered("CLI001", "DEV-0001", "DEVOLUCAO", 5_000)
    l001 = Account(client, backoffice, chain["L001"], clock)
    l002 = Account(client, backoffice, chain["L002"], clock)

    assert_error(await l001.hold("CLI001", 500, "PED-1", store="L002"), 403, "STORE_NOT_ALLOWED")
    assert_error(await l001.hold("CLI001", 500, "PED-1", channel="WEB", store=None), 403, "STORE_NOT_ALLOWED")
    mine = await l001.held("CLI001", 500, "PED-2", store="L001", terminal="PDV02")
    assert (await l001.commit(mine["id"])).status_code == 200
    assert_error(await l001.return_part(mine["id"], 100, store="L002"), 403, "STORE_NOT_ALLOWED")
    assert (await l001.return_part(mine["id"], 100, store="L001", terminal="PDV02")).status_code == 201

    theirs = await l002.held("CLI001", 500, "PED-3", store="L002")
    r = await client.get(f"/v1/credit-holds/{theirs['id']}", headers=l001.terminal.headers)
    assert_error(r, 403, "STORE_NOT_ALLOWED")
    assert_error(await l001.commit(theirs["id"]), 403, "STORE_NOT_ALLOWED")
    assert_error(await l001.cancel(theirs["id"]), 403, "STORE_NOT_ALLOWED")
    assert (await l002.cancel(theirs["id"])).status_code == 200


async def test_a_key_of_one_terminal_is_refused_at_the_store_s_other_terminal(chain: dict[str, Checkout]) -> None:
    pdv01, store_key = chain["L001/PDV01"], chain["L001"]
    assert (await pdv01.hold(1_000)).status_code == 201
    assert_error(await pdv01.hold(1_000, terminal="PDV02"), 403, "STORE_NOT_ALLOWED")
    # the store's key placed this one at PDV02: PDV01's key may not touch it
    at_pdv02 = (await store_key.hold(1_000)).json()["id"]
    assert_error(await pdv01.cancel(at_pdv02), 403, "STORE_NOT_ALLOWED")
    assert (await store_key.cancel(at_pdv02)).status_code == 200


async def test_a_store_key_names_only_registered_active_terminals_of_an_active_store(
    chain: dict[str, Checkout], svc: Services
) -> None:
    l001 = chain["L001"]
    assert_error(await l001.hold(1_000, terminal="PDV99"), 403, "STORE_NOT_ALLOWED")
    await stores.save_terminal(svc, "L001", "PDV02", "BLOCKED")
    assert_error(await l001.hold(1_000), 403, "STORE_NOT_ALLOWED")
    await stores.save_terminal(svc, "L001", "PDV02", "ACTIVE")
    assert (await l001.hold(1_000)).status_code == 201
    await stores.save(svc, "L001", StoreUpdate(status="BLOCKED"))
    assert_error(await l001.hold(1_000), 403, "STORE_NOT_ALLOWED")
    # the limit query names no store: a blocked store's key still sees the balance, cannot sell
    assert (await l001.limit()).status_code == 200


async def test_an_unscoped_key_still_names_any_store(seed: Terminal) -> None:
    """The back office's and the demo's keys: store and terminal are what the request says."""
    r = await seed.hold(1_000, store="ANY-STORE", terminal="ANY-PDV")
    assert r.status_code == 201, r.text
    assert (await seed.get(r.json()["id"])).json()["store"] == "ANY-STORE"


# --- where a convênio is accepted -------------------------------------------------------------------
async def test_a_convenio_accepted_at_l001_only_declines_a_sale_at_l002(
    chain: dict[str, Checkout], backoffice: BackOffice, svc: Services
) -> None:
    assert (await backoffice.update_convenio("EMP001", stores=["L001"])).status_code == 200
    assert (await chain["L001"].hold(1_000)).status_code == 201
    proof = await mint_proof(svc, "EMP001", "CLI001")
    declined = assert_error(await chain["L002"].hold(1_000, proof=proof), 422, "STORE_NOT_ACCEPTED")
    assert declined["message"]
    # back to every store
    assert (await backoffice.update_convenio("EMP001", stores=[])).status_code == 200
    assert (await chain["L002"].hold(1_000, proof=proof)).status_code == 201


async def test_a_convenio_names_only_registered_stores(chain: dict[str, Checkout], backoffice: BackOffice) -> None:
    assert_error(await backoffice.update_convenio("EMP001", stores=["L404"]), 422, "STORE_NOT_REGISTERED", "stores")


# --- rotation ---------------------------------------------------------------------------------------
async def test_a_sale_sent_with_the_old_key_and_retried_with_the_rotated_one_replays(
    chain: dict[str, Checkout], svc: Services, seed: Terminal, clock: Clock, ledger_url: str
) -> None:
    old = chain["L001"]
    old_token = old.headers["Authorization"][7:]
    proof = await old.proof()
    body = old.sale(2_000, proof)
    first = await old.hold(2_000, body=body, idempotency_key="PDV02-000123")
    assert first.status_code == 201, first.text

    token, key, until = await apikeys.rotate(svc, apikeys.key_id(old_token), grace_s=3600)
    assert (key.store, key.terminal, key.permissions) == ("L001", None, CHECKOUT)
    new = Checkout(seed, token, "L001", "PDV02")
    again = await new.hold(2_000, body=body, idempotency_key="PDV02-000123")
    assert again.status_code == 201 and again.json() == first.json()
    assert await new.available() == 11_000 - 2_000

    # the old key works during its grace, then not at all
    assert (await old.limit()).status_code == 200
    clock.advance(3601)
    assert_error(await old.limit(), 401, "UNAUTHORIZED", secrets=(old_token,))
    assert (await new.limit()).status_code == 200
    rows = await ledger_rows(svc, ledger_url, "SELECT count(*) AS n FROM empenhos WHERE sale = $1", body["sale"])
    assert rows[0]["n"] == 1


# --- the operator's CLI -----------------------------------------------------------------------------
def test_the_cli_registers_stores_and_lists_scoped_and_rotated_keys_never_the_keys(cli_env) -> None:  # noqa: F811
    for args in (
        ("store", "create", "L001", "--name", "LOJA CENTRO", "--time-zone", "America/Manaus"),
        ("store", "terminal", "L001", "PDV01"),
    ):
        done = convenio(cli_env, *args)
        assert done.returncode == 0, done.stderr
    unknown = convenio(cli_env, "apikey", "create", "--permissions", "3185", "--store", "L404")
    assert unknown.returncode == 1 and "L404" not in unknown.stdout

    created = convenio(
        cli_env, "apikey", "create", "--permissions", "3183,3185", "--store", "L001", "--terminal", "PDV01"
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    kid = apikeys.key_id(token)
    rotated = convenio(cli_env, "apikey", "rotate", kid, "--grace", "600")
    assert rotated.returncode == 0, rotated.stderr
    new_token = rotated.stdout.strip()
    assert new_token.startswith("cvk_") and new_token != token

    listed = convenio(cli_env, "apikey", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert token not in listed.stdout and new_token not in listed.stdout
    keys = {k["id"]: k for k in map(json.loads, listed.stdout.splitlines())}
    old, new = keys[kid], keys[apikeys.key_id(new_token)]
    assert (new["store"], new["terminal"], new["lineage"]) == ("L001", "PDV01", kid)
    assert old["expires_at"] is not None and new["expires_at"] is None
    table = convenio(cli_env, "apikey", "list")
    assert "L001/PDV01" in table.stdout and token not in table.stdout

    stores_listed = convenio(cli_env, "store", "list")
    assert "L001" in stores_listed.stdout and "America/Manaus" in stores_listed.stdout


def test_cli_store_create_refuses_an_unknown_time_zone(cli_env) -> None:  # noqa: F811
    done = convenio(cli_env, "store", "create", "L001", "--name", "X", "--time-zone", "Europe/Lisbon")
    assert done.returncode == 2 and "America/Manaus" in done.stderr


# --- after Redis lost everything -------------------------------------------------------------------
async def test_stores_terminals_and_scoped_keys_come_back_with_a_rebuild(
    chain: dict[str, Checkout], svc: Services, backoffice: BackOffice, ledger_url: str
) -> None:
    from ledger.ops.rebuild import rebuild
    from tests.test_rebuild_verify import lose_redis

    old = chain["L001"]
    token, _, _ = await apikeys.rotate(svc, apikeys.key_id(old.headers["Authorization"][7:]), grace_s=3600)
    rotated = Checkout(chain["L002"], token, "L001", "PDV02")
    body = rotated.sale(1_000, await rotated.proof())
    first = await rotated.hold(1_000, body=body, idempotency_key="PDV02-000900")
    assert first.status_code == 201, first.text
    assert (await backoffice.update_convenio("EMP001", stores=["L001"])).status_code == 200
    before = (await stores.listing(svc)).stores
    await writer.drain(svc, ledger_url)
    await lose_redis(svc)
    async with asyncpg.create_pool(ledger_url, min_size=1, max_size=1) as pool, pool.acquire() as conn:
        await rebuild(svc, conn)

    assert (await stores.listing(svc)).stores == before
    assert_error(await rotated.hold(1_000, store="L002"), 403, "STORE_NOT_ALLOWED")
    # the old key is in its grace still, and shares the rotated key's idempotency scope
    again = await old.hold(1_000, body=body, idempotency_key="PDV02-000900")
    assert again.status_code == 201 and again.json() == first.json()
    proof = await mint_proof(svc, "EMP001", "CLI001")
    assert_error(await chain["L002"].hold(1_000, proof=proof), 422, "STORE_NOT_ACCEPTED")
