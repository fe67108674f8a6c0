"""The ledger writer copies every decision into the Postgres journal exactly once and keeps
the projections the rest of the product reads, even when a writer dies between storing a
batch and acknowledging it."""

from __future__ import annotations

import dataclasses

from ledger.writer import writer
from tests.checkout import Terminal


async def stream_total(svc) -> int:
    return sum([await svc.redis.xlen(s) for s in svc.keys.all_events()])


async def test_every_event_of_a_sale_reaches_the_journal_once(seed: Terminal, svc, ledger, ledger_url) -> None:
    held = (await seed.hold(578)).json()
    await seed.commit(held["id"], coupon="CUPOM-1")
    emitted = await stream_total(svc)
    assert await writer.drain(svc, ledger_url) == emitted
    assert await writer.drain(svc, ledger_url) == 0
    rows = await ledger.fetch("SELECT type, data FROM journal ORDER BY stream_id")
    types = [r["type"] for r in rows]
    assert "empenho.held" in types and "empenho.committed" in types
    assert len(rows) == emitted
    committed = next(r for r in rows if r["type"] == "empenho.committed")
    assert '"amount": 578' in committed["data"] and '"balance": 9422' in committed["data"]


async def test_the_sale_is_in_the_projections(seed: Terminal, svc, ledger, ledger_url) -> None:
    held = (await seed.hold(578)).json()
    await seed.commit(held["id"], coupon="CUPOM-1")
    await writer.drain(svc, ledger_url)
    part = await ledger.fetchrow("SELECT * FROM participants WHERE convenio = 'EMP001' AND participant = 'CLI001'")
    assert (part["limit"], part["balance"], part["reserved"]) == (10000, 9422, 0)
    assert part["pw_hash"].startswith("$argon2id$")
    emp = await ledger.fetchrow("SELECT * FROM empenhos WHERE id = $1", held["id"])
    assert (emp["status"], emp["amount"], emp["committed_amount"], emp["coupon"]) == ("COMMITTED", 578, 578, "CUPOM-1")
    history = await ledger.fetch("SELECT status FROM empenho_history WHERE empenho_id = $1 ORDER BY at", held["id"])
    assert [h["status"] for h in history] == ["PENDING", "COMMITTED"]
    moves = await ledger.fetch("SELECT kind, amount, balance_after FROM movements ORDER BY seq")
    assert [tuple(m) for m in moves] == [("LIMIT_CHANGE", 10000, 10000), ("SALE", -578, 9422)]
    decision = await ledger.fetchrow("SELECT * FROM decisions WHERE protocol = $1", held["protocol"])
    assert (decision["kind"], decision["outcome"], decision["http_status"]) == ("empenho.hold", "APPROVED", 201)


async def test_a_writer_that_dies_after_storing_but_before_acknowledging_loses_and_doubles_nothing(
    seed: Terminal, svc, ledger, ledger_url
) -> None:
    await writer.ensure_groups(svc)
    held = (await seed.hold(578)).json()
    await seed.cancel(held["id"])
    emitted = await stream_total(svc)
    # writer w1 reads and stores everything, then dies before XACK
    w1 = writer.Writer(svc, ledger_url, "w1")
    await w1.connect()
    await w1.rebalance()
    reply = [
        pair
        for stream in svc.keys.all_events()  # one stream per call: on a cluster each has its own slot
        for pair in writer._entries(await svc.redis.xreadgroup(writer.GROUP, "w1", {stream: ">"}, count=1000))
    ]
    batch = []
    for stream, entries in reply:
        name = writer._name(stream)
        events = [writer.to_event(w1.streams[name], sid, f) for sid, f in entries]
        batch.append((name, events, [f[b"data"] for _, f in entries]))
    await writer.store_events(w1.conn, batch)
    await w1.close()  # its locks go with its connection

    # another writer takes its streams and its pending batch: nothing doubles, nothing stays pending
    handled = await writer.drain(svc, ledger_url, "w2")
    assert handled == emitted
    assert await ledger.fetchval("SELECT count(*) FROM journal") == emitted
    assert await ledger.fetchval("SELECT count(*) FROM empenho_history") == 2
    for stream in svc.keys.all_events():
        assert (await svc.redis.xpending(stream, writer.GROUP))["pending"] == 0
    # and what is stored has left Redis
    assert await stream_total(svc) < emitted


async def test_readyz_reports_the_ledger_lag_and_turns_false_past_its_bound(seed: Terminal, svc, ledger_url) -> None:
    from gateway.platform.streams import ledger_lag

    await seed.hold(578)
    behind = await ledger_lag(svc)
    assert behind == await stream_total(svc) > 0  # no writer has run yet
    r = await seed.client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"]["ledger_lag"] == str(behind)

    await writer.drain(svc, ledger_url)
    assert await ledger_lag(svc) == 0

    await seed.hold(100)
    svc.settings = dataclasses.replace(svc.settings, ledger_lag_max=0)
    r = await seed.client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    metrics = await seed.client.get("/metrics")
    assert "convenio_ledger_lag_events" in metrics.text


async def test_a_batch_with_a_new_password_then_other_changes_keeps_the_password_hash(
    backoffice, svc, ledger, ledger_url
) -> None:
    await backoffice.create_convenio("EMPX", total_limit=5000)
    await backoffice.add_participant("EMPX", "P1", limit=1000)
    r = await backoffice.update_participant("EMPX", "P1", password="2468")
    assert r.status_code == 200, r.text
    r = await backoffice.update_participant("EMPX", "P1", name="OUTRO NOME", limit=1500)
    assert r.status_code == 200, r.text
    await writer.drain(svc, ledger_url)  # all four in one batch
    row = await ledger.fetchrow("SELECT * FROM participants WHERE convenio = 'EMPX' AND participant = 'P1'")
    assert (row["name"], row["limit"], row["balance"]) == ("OUTRO NOME", 1500, 1500)
    assert row["pw_hash"] and row["pw_hash"].startswith("$argon2id$")
    assert await ledger.fetchval("SELECT allocated FROM convenios WHERE code = 'EMPX'") == 1500


async def test_a_nul_character_is_refused_at_the_edge_and_cannot_stall_a_shard(
    seed: Terminal, backoffice, svc, ledger, ledger_url
) -> None:
    from tests.checkout import assert_error

    refused = await seed.hold(100, body=seed.sale(100, None, terminal="PDV\u0000"))
    assert_error(refused, 422, "INVALID_REQUEST", field="terminal")
    # should one reach an event anyway (here: straight through the script), the writer stores it
    import msgspec

    k = svc.keys
    await svc.run(
        "participant_save",
        [k.convenio("EMP001"), k.participant("EMP001", "NUL1"), k.members("EMP001"), k.events(k.shard_of("EMP001"))],
        [
            "create",
            svc.now_ms(),
            svc.protocol(),
            "EMP001",
            "NUL1",
            msgspec.json.encode({"name": "A\u0000B", "limit": "0"}),
            "test",
            "",
        ],
    )
    await writer.drain(svc, ledger_url)
    assert await ledger.fetchval("SELECT name FROM participants WHERE participant = 'NUL1'") == "A\ufffdB"


async def test_an_instant_out_of_range_is_a_bad_request(backoffice, seed: Terminal, ledger_url) -> None:
    from tests.checkout import assert_error

    r = await backoffice.client.get(
        "/v1/convenios/EMP001/movements", params={"to": "9999-12-31T23:00:00-05:00"}, headers=backoffice.headers
    )
    assert_error(r, 422, "INVALID_REQUEST", field="to")
