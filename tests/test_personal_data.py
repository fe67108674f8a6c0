"""The back office and a customer's personal data (LGPD): CPF and CNPJ checked by their digits,
found by CPF in every convênio, never in clear in Postgres, Redis or the logs; exported on request
with the document decrypted, and erased (name, document, password hash) while balances and
`convenio verify` stay exact to the centavo."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import pytest
from click.testing import CliRunner

from gateway.platform import documents
from ledger.ops.demo import DEMO_CPF
from ledger.ops.rebuild import rebuild
from ledger.ops.verify import verify
from ledger.privacy import personal
from ledger.writer import writer
from tests.checkout import BackOffice, Terminal, assert_error
from tests.test_rebuild_verify import lose_redis

MARIA_CPF = "390.533.447-05"
EMPRESA_CNPJ = "11.222.333/0001-81"
NOVO_CNPJ = "12.ABC.345/01DE-35"  # the alphanumeric CNPJ, Receita Federal's example


def forms(doc: str) -> list[str]:
    """How a document could show up: as typed, and digits (characters) only."""
    return [doc, documents.normalize(doc)]


async def clear_text_in_postgres(conn: asyncpg.Connection, needles: list[str]) -> list[str]:
    """Every (table.column, needle) where a text, varchar or json column of any table holds a needle."""
    columns = await conn.fetch(
        """SELECT c.table_name, c.column_name FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_schema, table_name)
           WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
             AND c.data_type IN ('text', 'character varying', 'character', 'jsonb', 'json')"""
    )
    assert len(columns) > 50, "the scan must see the whole schema"
    hits = []
    for c in columns:
        for needle in needles:
            q = f'SELECT count(*) FROM "{c["table_name"]}" WHERE "{c["column_name"]}"::text LIKE $1'
            if await conn.fetchval(q, f"%{needle}%"):
                hits.append(f"{c['table_name']}.{c['column_name']}: {needle}")
    return hits


async def clear_text_in_redis(svc, needles: list[str]) -> list[str]:
    """Every key of ours (hashes, streams, strings, sets) holding a needle: what a dump would show."""
    hits = []
    async for key in svc.redis.scan_iter(match=f"{svc.keys.prefix}:*", count=1000):
        kind = (await svc.redis.type(key)).decode()
        if kind == "hash":
            blob = b" ".join(k + b"=" + v for k, v in (await svc.redis.hgetall(key)).items())
        elif kind == "stream":
            blob = b" ".join(v for _, entry in await svc.redis.xrange(key) for v in entry.values())
        elif kind == "string":
            blob = await svc.redis.get(key) or b""
        elif kind == "set":
            blob = b" ".join(await svc.redis.smembers(key))
        elif kind == "zset":
            blob = b" ".join(await svc.redis.zrange(key, 0, -1))
        else:
            blob = b""
        hits += [f"{key.decode()}: {n}" for n in needles if n.encode() in blob]
    return hits


async def add(office: BackOffice, convenio: str, code: str, document: str, **extra: Any) -> dict[str, Any]:
    return await office.add_participant(convenio, code, document=document, **extra)


# --- checked by their digits ---------------------------------------------------------------------
async def test_a_cpf_with_a_wrong_check_digit_is_refused_naming_the_document(backoffice: BackOffice) -> None:
    await backoffice.create_convenio("FARM01", total_limit=50_000)
    for wrong in ("390.533.447-06", "39053344715", "111.111.111-11", "11.222.333/0001-80", "12ABC34501DE36", "123"):
        r = await backoffice.client.post(
            "/v1/convenios/FARM01/participants",
            json={"code": "MARIA", "name": "MARIA APARECIDA", "document": wrong},
            headers=backoffice.headers,
        )
        assert_error(r, 422, "INVALID_REQUEST", "document")
        assert documents.normalize(wrong) not in r.text, "an error body never repeats the document"
    await add(backoffice, "FARM01", "MARIA", MARIA_CPF)
    r = await backoffice.update_participant("FARM01", "MARIA", document="390.533.447-50")
    assert_error(r, 422, "INVALID_REQUEST", "document")
    r = await backoffice.client.post(
        "/v1/participants/search", json={"document": "390.533.447-06"}, headers=backoffice.headers
    )
    assert_error(r, 422, "INVALID_REQUEST", "document")


async def test_a_valid_cpf_a_numeric_and_an_alphanumeric_cnpj_are_taken_and_shown_masked(
    backoffice: BackOffice,
) -> None:
    await backoffice.create_convenio("FARM01", total_limit=50_000)
    maria = await add(backoffice, "FARM01", "MARIA", "39053344705")  # digits only: accepted too
    empresa = await add(backoffice, "FARM01", "EMPRESA", EMPRESA_CNPJ)
    novo = await add(backoffice, "FARM01", "NOVO", NOVO_CNPJ.lower())  # letters in any case
    sem = await add(backoffice, "FARM01", "SEMDOC", "")  # the document stays optional
    assert maria["document"] == "***.533.447-**"
    assert empresa["document"] == "**.222.333/****-**"
    assert novo["document"] == "**.ABC.345/****-**"
    assert sem["document"] == ""
    r = await backoffice.client.get("/v1/convenios/FARM01/participants/MARIA", headers=backoffice.headers)
    assert r.status_code == 200 and r.json()["document"] == "***.533.447-**"
    # cleared with "", changed with another valid one
    r = await backoffice.update_participant("FARM01", "MARIA", document="")
    assert r.status_code == 200 and r.json()["document"] == ""
    r = await backoffice.update_participant("FARM01", "MARIA", document=MARIA_CPF)
    assert r.status_code == 200 and r.json()["document"] == "***.533.447-**"


# --- the search ----------------------------------------------------------------------------------
async def test_a_search_by_cpf_finds_the_customer_in_every_convenio(
    seed: Terminal, backoffice: BackOffice, svc, ledger_url: str
) -> None:
    await backoffice.create_convenio("FARM01", total_limit=50_000)
    await add(backoffice, "FARM01", "CLI001", DEMO_CPF, limit=5_000)  # the worked example's customer, again
    await add(backoffice, "FARM01", "MARIA", MARIA_CPF)
    await writer.drain(svc, ledger_url)

    search = "/v1/participants/search"
    r = await backoffice.client.post(search, json={"document": "52998224725"}, headers=backoffice.headers)
    assert r.status_code == 200, r.text
    found = r.json()["participants"]
    assert [(p["convenio"], p["code"]) for p in found] == [("EMP001", "CLI001"), ("FARM01", "CLI001")]
    assert {p["document"] for p in found} == {"***.982.247-**"}
    assert found[0]["balance"] == 10_000 and found[1]["limit"] == 5_000
    r = await backoffice.client.post(search, json={"document": EMPRESA_CNPJ}, headers=backoffice.headers)
    assert r.status_code == 200 and r.json()["participants"] == []
    # a terminal's key may not search the registry
    r = await seed.client.post(search, json={"document": DEMO_CPF}, headers=seed.headers)
    assert_error(r, 403, "FORBIDDEN")


# --- never in clear ------------------------------------------------------------------------------
async def a_day_with_documents(seed: Terminal, backoffice: BackOffice, svc, ledger_url: str) -> None:
    """Participants with each kind of document, sales, a password check, a search and a change."""
    await backoffice.create_convenio("FARM01", total_limit=50_000)
    await add(backoffice, "FARM01", "CLI001", DEMO_CPF, limit=5_000, password="4321")
    await add(backoffice, "FARM01", "MARIA", MARIA_CPF, limit=3_000, password="1357")
    await add(backoffice, "FARM01", "EMPRESA", EMPRESA_CNPJ)
    await add(backoffice, "FARM01", "NOVO", NOVO_CNPJ)
    sale = (await seed.hold(578)).json()
    assert (await seed.commit(sale["id"], coupon="C-1")).status_code == 200
    maria = seed.as_participant("FARM01", "MARIA", "1357")
    assert (await maria.check_password("0000")).json()["valid"] is False
    held = await maria.hold(1_200)
    assert held.status_code == 201, held.text
    await maria.commit(held.json()["id"], coupon="C-2")
    await backoffice.update_participant("FARM01", "MARIA", document="39053344705", name="MARIA A. SOUZA")
    limit_request = await backoffice.client.post(
        "/v1/convenios/FARM01/participants/CLI001/limit-requests",
        json={"suggested_limit": 8_000, "reason": "aumento de salário"},
        headers=backoffice.headers,
    )
    assert limit_request.status_code == 201, limit_request.text
    assert (await backoffice.add_vehicle("FARM01", "CLI001", "ABC1D23", "moto")).status_code == 201
    await writer.drain(svc, ledger_url)
    r = await backoffice.client.post("/v1/participants/search", json={"document": DEMO_CPF}, headers=backoffice.headers)
    assert len(r.json()["participants"]) == 2


async def test_no_document_in_clear_in_postgres_redis_or_the_logs(
    seed: Terminal, backoffice: BackOffice, svc, ledger: asyncpg.Pool, ledger_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await a_day_with_documents(seed, backoffice, svc, ledger_url)
    needles = [n for doc in (DEMO_CPF, MARIA_CPF, EMPRESA_CNPJ, NOVO_CNPJ) for n in forms(doc)]
    async with ledger.acquire() as conn:
        assert await clear_text_in_postgres(conn, needles) == []
        assert await clear_text_in_postgres(conn, ["MARIA A. SOUZA"]), "the scan finds what is in clear (a name)"
        # yet the ledger holds them, sealed, and found by digest
        sealed = await conn.fetchval("SELECT document_sealed FROM participants WHERE participant = 'MARIA'")
        assert documents.sealer(svc.settings).open(sealed) == "39053344705"
    assert await clear_text_in_redis(svc, needles) == []
    assert await clear_text_in_redis(svc, ["MARIA A. SOUZA"]), "the scan finds what is in clear (a name)"
    assert not [n for n in needles if n in caplog.text]


# --- export and erasure --------------------------------------------------------------------------
async def test_the_export_holds_everything_and_the_erasure_leaves_the_amounts_whole(
    seed: Terminal, backoffice: BackOffice, svc, ledger: asyncpg.Pool, ledger_url: str
) -> None:
    await a_day_with_documents(seed, backoffice, svc, ledger_url)
    async with ledger.acquire() as conn:
        held = await personal.export(svc, conn, "CLI001", "dpo")
        hashes = [
            r["pw_hash"] for r in await conn.fetch("SELECT pw_hash FROM participants WHERE participant = 'CLI001'")
        ]
    assert [(c["convenio"], c["document"], c["name"]) for c in held["convenios"]] == [
        ("EMP001", DEMO_CPF, "CLIENTE 001"),
        ("FARM01", DEMO_CPF, "CLIENTE CLI001"),
    ]
    assert [c["limit"] for c in held["convenios"]] == [10_000, 5_000]
    assert held["convenios"][0]["balance"] == 10_000 - 578 and held["convenios"][0]["live"]["balance"] == 9_422
    assert [m["amount"] for m in held["movements"] if m["kind"] == "SALE"] == [-578]
    assert [e["amount"] for e in held["empenhos"]] == [578]
    assert [v["plate"] for v in held["vehicles"]] == ["ABC1D23"]
    assert [lr["suggested_limit"] for lr in held["limit_requests"]] == [8_000]
    assert {d["kind"] for d in held["decisions"]} >= {"participant.created", "empenho.hold", "empenho.commit"}
    assert held["registry_history"], "the history of its limits"
    assert "credits" in held
    text = str(held)
    assert not any(h in text for h in hashes) and "doc_sealed" not in text and "pw_hash" not in text

    names = ["CLIENTE 001", "CLIENTE CLI001"]
    async with ledger.acquire() as conn:
        done = await personal.erase(svc, conn, "CLI001", "dpo")
        assert done["convenios"] == ["EMP001", "FARM01"]
        report = await verify(svc, conn, wait_s=0)
        assert not report.drift, [d.line() for d in report.differences]
        assert await clear_text_in_postgres(conn, [*forms(DEMO_CPF), *names, *hashes]) == []
        audit = await conn.fetch("SELECT action, target, before, after FROM audit_log WHERE target = 'customer CLI001'")
        assert [a["action"] for a in audit] == ["privacy.exported", "privacy.erased"]
        # MARIA, not erased, keeps her data
        assert await conn.fetchval("SELECT name FROM participants WHERE participant = 'MARIA'") == "MARIA A. SOUZA"
    assert await clear_text_in_redis(svc, [*forms(DEMO_CPF), *names, *hashes]) == []
    assert "CLI001" in str(audit) and "TITULAR" in audit[1]["after"]

    r = await backoffice.client.get("/v1/convenios/EMP001/participants/CLI001", headers=backoffice.headers)
    view = r.json()
    assert view["name"] == done["pseudonym"] and view["document"] == "" and view["password_set"] is False
    assert view["balance"] == 9_422
    r = await backoffice.client.post("/v1/participants/search", json={"document": DEMO_CPF}, headers=backoffice.headers)
    assert r.json()["participants"] == []

    # erasing again changes nothing; Redis lost and rebuilt: the same balances, still erased, no drift
    async with ledger.acquire() as conn:
        await personal.erase(svc, conn, "CLI001", "dpo")
        await lose_redis(svc)
        await rebuild(svc, conn)
        report = await verify(svc, conn, wait_s=0)
    assert not report.drift, [d.line() for d in report.differences]
    assert (await seed.limit()).json()["balance"] == 9_422
    assert await clear_text_in_redis(svc, [*forms(DEMO_CPF), *names, *hashes]) == []


async def test_the_cli_prints_the_export_as_json_and_refuses_an_unknown_customer(
    seed: Terminal, svc, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger.cli import main

    await writer.drain(svc, ledger_url)
    s = svc.settings
    env = {
        "REDIS_URL": s.redis_url,
        "DATABASE_URL": ledger_url,
        "CONVENIO_KEY_PREFIX": s.key_prefix,
        "CONVENIO_SHARDS": str(s.shards),
        "CONVENIO_DATA_KEY": s.data_key.decode(),
        "CONVENIO_PEPPER": s.pepper.decode(),
    }
    runner = CliRunner()
    out = await _invoke(runner, main, ["privacy", "export", "CLI001", "--by", "dpo"], env)
    assert out.exit_code == 0, out.output
    assert f'"document": "{DEMO_CPF}"' in out.stdout
    unknown = await _invoke(runner, main, ["privacy", "export", "NINGUEM"], env)
    assert unknown.exit_code == 1 and "no participant" in unknown.stderr


async def _invoke(runner: CliRunner, main: Any, args: list[str], env: dict[str, str]) -> Any:
    """The command runs its own event loop: on a thread, beside the test's."""
    import asyncio

    return await asyncio.to_thread(runner.invoke, main, args, env=env)


async def test_the_export_reads_every_table_that_keeps_rows_by_customer(ledger: asyncpg.Pool) -> None:
    """The export's statements are constant SQL, one per table: the list must name every table
    of the schema keyed by a participant or customer, so a new one is not left out of it."""
    async with ledger.acquire() as conn:
        keyed = {r["table_name"] for r in await conn.fetch(personal.TABLES_KEYED_BY_CUSTOMER)}
    assert keyed == set(personal.HELD)
