"""The audit log of the back office: an operator's day (a convênio's limit raised, a participant
blocked and given a new password, a vehicle saved and deleted, the integration key set, an API key
created, rotated and revoked, a store and its terminal registered) is, once the ledger writer has
stored it, in GET /v1/audit and `convenio audit`: who, when, what, before and after, never a
secret."""

from __future__ import annotations

import datetime
import json
from typing import Any

import httpx

from gateway.auth import apikeys
from gateway.auth.permissions import Permission
from gateway.platform.clock import rfc3339
from gateway.platform.services import Services
from ledger.writer import writer
from ledger.writer.audit import AuditFold
from ledger.writer.events import Event
from tests.checkout import BackOffice, Clock, assert_error
from tests.month import Month, local
from tests.test_cli import cli_env, convenio  # noqa: F401  (the fixture)
from tests.test_month import month  # noqa: F401  (the fixture)

INTEGRATION_KEY = "palavra-chave-da-rede-2026"
PASSWORD = "482913"


def ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()


async def audit(bo: BackOffice, **params: Any) -> dict[str, Any]:
    return ok(await bo.client.get("/v1/audit", params=params, headers=bo.headers))


def rows_of(page: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["action"], e["target"]): e for e in page["entries"]}


async def operator_s_day(svc: Services, clock: Clock, bo: BackOffice) -> dict[str, Any]:
    """What the operator does, over HTTP (and the keys through the CLI's functions)."""
    clock.advance(60)
    await bo.create_convenio("EMP002", total_limit=10_000)
    ok(await bo.update_convenio("EMP002", total_limit=20_000, reason="novo contrato"))
    await bo.add_participant("EMP002", "CLI002", limit=5_000, password="1357")
    ok(await bo.update_participant("EMP002", "CLI002", status="BLOCKED", reason="desligado"))
    ok(await bo.update_participant("EMP002", "CLI002", password=PASSWORD))
    ok(await bo.add_vehicle("EMP002", "CLI002", "ABC1D23", "frota"), 201)
    path = "/v1/convenios/EMP002/participants/CLI002/vehicles/ABC1D23"
    ok(await bo.client.delete(path, headers=bo.headers))
    ok(await bo.set_integration_key(INTEGRATION_KEY))
    ok(await bo.client.post("/v1/stores", json={"code": "L001", "name": "LOJA CENTRO"}, headers=bo.headers), 201)
    ok(await bo.client.put("/v1/stores/L001/terminals/PDV01", headers=bo.headers))
    token, key = await apikeys.create(svc, frozenset({Permission.LIMIT_QUERY}), "PDV 1", by="cli:ana")
    clock.advance(60)
    new_token, new_key, _ = await apikeys.rotate(svc, key.id, 600, by="cli:ana")
    await apikeys.revoke(svc, new_key.id, by="cli:ana")
    pw_hash = (await svc.redis.hget(svc.keys.participant("EMP002", "CLI002"), "pw_hash")).decode()
    return {"tokens": [token, new_token], "key": key, "new_key": new_key, "pw_hash": pw_hash}


async def test_every_back_office_action_is_audited_with_who_what_before_and_after_and_no_secret(
    svc: Services, clock: Clock, backoffice: BackOffice, ledger_url: str
) -> None:
    admin = f"apikey:{apikeys.key_id(backoffice.api_key)}"
    day = await operator_s_day(svc, clock, backoffice)
    await writer.drain(svc, ledger_url)

    page = await audit(backoffice, limit=1000)
    rows = rows_of(page)
    raised = rows[("convenio.updated", "convenio EMP002")]
    assert raised["actor"] == admin
    assert (raised["before"]["total_limit"], raised["after"]["total_limit"]) == (10_000, 20_000)
    assert raised["after"]["reason"] == "novo contrato"
    assert rows[("convenio.created", "convenio EMP002")]["before"] is None

    participant = [e for e in page["entries"] if e["target"] == "participant EMP002/CLI002"]
    created, blocked, new_password = reversed(participant)  # newest first
    assert created["action"] == "participant.created" and created["after"]["limit"] == 5_000
    assert (blocked["before"]["status"], blocked["after"]["status"]) == ("ACTIVE", "BLOCKED")
    assert blocked["after"]["reason"] == "desligado"
    assert new_password["after"]["password_changed"] is True
    assert all(e["actor"] == admin for e in participant)

    saved = rows[("vehicle.saved", "vehicle EMP002/CLI002/ABC1D23")]
    assert (saved["actor"], saved["after"]["description"]) == (admin, "frota")
    deleted = rows[("vehicle.deleted", "vehicle EMP002/CLI002/ABC1D23")]
    assert (deleted["actor"], deleted["before"], deleted["after"]) == (admin, {"plate": "ABC1D23"}, None)
    assert rows[("integration.key_set", "integration key")]["actor"] == admin
    assert rows[("store.saved", "store L001")]["after"]["name"] == "LOJA CENTRO"
    assert rows[("terminal.saved", "terminal L001/PDV01")]["after"] == {"status": "ACTIVE"}

    old, new = day["key"].id, day["new_key"].id
    made = rows[("apikey.created", f"apikey {old}")]
    assert (made["actor"], made["after"]["permissions"], made["after"]["name"]) == ("cli:ana", "3183", "PDV 1")
    rotated = rows[("apikey.rotated", f"apikey {old}")]
    assert (rotated["before"], rotated["after"]["id"]) == ({"id": old}, new)
    revoked = rows[("apikey.revoked", f"apikey {new}")]
    assert (revoked["actor"], revoked["before"], revoked["after"]) == ("cli:ana", {"revoked": False}, {"revoked": True})
    assert rotated["at"] == rfc3339(clock.now)

    # no secret anywhere: not the keys nor their digests, the integration key, the password or its hash
    text = json.dumps(page)
    secrets = [*day["tokens"], *(apikeys.digest(t) for t in day["tokens"]), backoffice.api_key]
    secrets += [INTEGRATION_KEY, PASSWORD, day["pw_hash"]]
    for secret in secrets:
        assert secret not in text
    for e in page["entries"]:
        for side in (e["before"] or {}, e["after"] or {}):
            assert not {"digest", "pw_hash", "hash"} & set(side), e

    # a redelivered batch writes nothing twice
    await writer.drain(svc, ledger_url)
    assert len((await audit(backoffice, limit=1000))["entries"]) == len(page["entries"])


async def test_the_audit_log_filters_and_pages(
    svc: Services, clock: Clock, backoffice: BackOffice, ledger_url: str
) -> None:
    admin = f"apikey:{apikeys.key_id(backoffice.api_key)}"
    start = rfc3339(clock.now)
    day = await operator_s_day(svc, clock, backoffice)
    await writer.drain(svc, ledger_url)

    mine = await audit(backoffice, actor=admin)
    assert mine["entries"] and {e["actor"] for e in mine["entries"]} == {admin}
    keys = await audit(backoffice, action="apikey.", actor="cli:ana")  # not the back office's own key
    assert [e["action"] for e in keys["entries"]] == ["apikey.revoked", "apikey.rotated", "apikey.created"]
    target = await audit(backoffice, target="participant EMP002/")
    assert [e["action"] for e in target["entries"]] == ["participant.updated"] * 2 + ["participant.created"]
    later = await audit(backoffice, **{"from": rfc3339(clock.now)}, action="apikey.", actor="cli:ana")
    assert [e["action"] for e in later["entries"]] == ["apikey.revoked", "apikey.rotated"]
    before = await audit(backoffice, to=rfc3339(clock.now), action="apikey.", actor="cli:ana")
    assert [e["target"] for e in before["entries"]] == [f"apikey {day['key'].id}"]
    assert (await audit(backoffice, to=start))["entries"] == []

    # a page at a time, newest first, each row once
    seen, after = [], None
    while True:
        page = await audit(backoffice, actor=admin, limit=3, **({"after": after} if after else {}))
        seen += [e["seq"] for e in page["entries"]]
        after = page.get("next_after")
        if after is None:
            break
        assert len(page["entries"]) == 3
    assert seen == [e["seq"] for e in mine["entries"]] and len(seen) == len(set(seen)) > 3

    # only an administrator reads it; a filter that cannot be one is refused
    reader = await backoffice.key(Permission.CONVENIOS_READ, Permission.SALES_READ)
    r = await backoffice.client.get("/v1/audit", headers={"Authorization": f"Bearer {reader}"})
    assert_error(r, 403, "FORBIDDEN")
    assert_error(
        await backoffice.client.get("/v1/audit?actor=a%01b", headers=backoffice.headers), 422, "INVALID_REQUEST"
    )
    assert_error(
        await backoffice.client.get("/v1/audit?from=ontem", headers=backoffice.headers), 422, "INVALID_REQUEST"
    )


def test_the_fold_strips_every_secret_a_record_may_carry() -> None:
    """A participant record with a document in clear and one masked, and an event's password hash."""
    import datetime

    record = {"limit": "100", "document": "12345678909", "document_masked": "***.456.789-**", "status": "ACTIVE"}
    data = {"convenio": "EMP001", "participant": "CLI001", "record": record, "previous_limit": 50,
            "previous_status": "ACTIVE", "pw_hash": "$argon2id$secret", "changed": {"document": "12345678909"},
            "by": "cli:ana"}  # fmt: skip
    fold = AuditFold()
    fold.add(Event("P1", "s0", "1-0", "participant.updated", datetime.datetime.now(datetime.UTC), data))
    (row,) = fold.rows
    assert row[2:5] == ("cli:ana", "participant.updated", "participant EMP001/CLI001")
    before, after = json.loads(row[5]), json.loads(row[6])
    assert before == {"limit": 50, "status": "ACTIVE"}
    assert after == {"limit": 100, "document_masked": "***.456.789-**", "status": "ACTIVE"}
    assert "12345678909" not in row[6] and "argon2" not in row[6]


def test_the_cli_lists_the_operators_actions_as_cli_login(cli_env) -> None:  # noqa: F811
    env = {**cli_env, "CONVENIO_OPERATOR": "ana"}
    for args in (("migrate",), ("store", "create", "L001", "--name", "LOJA CENTRO")):
        done = convenio(env, *args)
        assert done.returncode == 0, done.stderr
    created = convenio(env, "apikey", "create", "--permissions", "3183", "--name", "PDV 1")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    kid = apikeys.key_id(token)
    for args in (("apikey", "rotate", kid, "--grace", "60"), ("apikey", "revoke", kid, "--by", "bruno")):
        done = convenio(env, *args)
        assert done.returncode == 0, done.stderr
    drained = convenio(env, "ledger", "--once")
    assert drained.returncode == 0, drained.stderr

    listed = convenio(env, "audit", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    by_action = {e["action"]: e for e in entries}
    assert by_action["store.saved"]["actor"] == "cli:ana"
    assert by_action["apikey.created"]["target"] == f"apikey {kid}"
    assert by_action["apikey.revoked"]["actor"] == "cli:bruno"
    assert token not in listed.stdout and apikeys.digest(token) not in listed.stdout

    keys = convenio(env, "audit", "--action", "apikey.", "--actor", "cli:ana", "--limit", "1")
    assert keys.returncode == 0, keys.stderr
    (line,) = keys.stdout.splitlines()
    assert "apikey.rotated" in line and "cli:ana" in line and f"apikey {kid}" in line
    assert "more after --after" in keys.stderr
    stores = convenio(env, "audit", "--target", "store ", "--from", "2000-01-01", "--to", "2199-12-31")
    assert "store.saved" in stores.stdout and "LOJA CENTRO" in stores.stdout
    refused = convenio(env, "audit", "--from", "2026-02-01", "--to", "2026-01-01")
    assert refused.returncode == 2


async def test_limit_requests_decided_and_a_duplicata_settled_are_audited(month: Month) -> None:  # noqa: F811
    """The actions that write Postgres only: each in the audit log with the step's transaction."""
    office = month.office
    month.at(local(2026, 11, 23, 9))
    await month.convenio("EMPLR", 100_000, billing={"period": "DAILY"})
    ana = await month.participant("EMPLR", "ANA", limit=1_000)
    ask = "/v1/convenios/EMPLR/participants/ANA/limit-requests"
    body = {"suggested_limit": 2_000, "reason": "aumento de salário"}
    first = ok(await office.client.post(ask, json=body, headers=office.headers), 201)
    ok(
        await office.client.post(
            f"/v1/limit-requests/{first['id']}/approve", json={"limit": 1_500}, headers=office.headers
        )
    )
    second = ok(await office.client.post(ask, json=body, headers=office.headers), 201)
    reject = {"reason": "renda insuficiente"}
    ok(await office.client.post(f"/v1/limit-requests/{second['id']}/reject", json=reject, headers=office.headers))
    await month.sell(ana, 578)
    month.at(local(2026, 11, 24, 9))
    await month.bill(datetime.date(2026, 11, 24), convenio="EMPLR")
    [dup] = await month.duplicatas("EMPLR")
    await month.settle(dup["id"], by="cli:tesouraria", note="TED 123")
    await month.settle(dup["id"], by="cli:tesouraria", note="TED 123")  # a repeat: not a second action
    await month.store()

    steps = (await audit(office, action="limit_request.", target="participant EMPLR/ANA"))["entries"]
    assert [(e["action"], e["after"]["id"], e["after"].get("limit")) for e in steps] == [  # newest first
        ("limit_request.rejected", second["id"], None),
        ("limit_request.created", second["id"], None),
        ("limit_request.approved", first["id"], 1_500),
        ("limit_request.created", first["id"], None),
    ]
    settled = (await audit(office, action="duplicata."))["entries"]
    assert [(e["actor"], e["target"], e["before"]["amount"], e["after"]["status"]) for e in settled] == [
        ("cli:tesouraria", f"duplicata {dup['id']}", 578, "PAID")
    ]
