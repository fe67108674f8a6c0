"""The back-office registry (CRM > Cadastros > Convênios), through the HTTP API.

A convênio carries its policy (total limit, tolerance, balance rollover, automatic billing,
vehicles, status) and its sharing mode: individual limits shared out among the participants
without exceeding the total, or one pool ("limite compartilhado") every participant draws
on. A participant's balance is never typed in: it starts as a copy of its limit and only the
gateway's own processes move it.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.checkout import BackOffice, Terminal

# --- small readers -------------------------------------------------------------------------


async def convenio(bo: BackOffice, code: str) -> httpx.Response:
    return await bo.client.get(f"/v1/convenios/{code}", headers=bo.headers)


async def participant(bo: BackOffice, conv: str, code: str) -> httpx.Response:
    return await bo.client.get(f"/v1/convenios/{conv}/participants/{code}", headers=bo.headers)


async def participants(bo: BackOffice, conv: str, **params: Any) -> httpx.Response:
    return await bo.client.get(f"/v1/convenios/{conv}/participants", params=params, headers=bo.headers)


def error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, r.text
    return err


def ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()


# --- convênios -----------------------------------------------------------------------------


async def test_a_convenio_is_created_with_its_whole_policy_and_read_back(backoffice: BackOffice) -> None:
    """Every setting of the convênio screen is kept as given and comes back on GET."""
    body = {
        "code": "EMP100",
        "name": "EMPRESA CONVENIO 100",
        "total_limit": 500_000,
        "tolerance": 2_000,
        "shared": False,
        "rollover": {"policy": "MONTHLY", "day": 10},
        "billing": {
            "automatic": True,
            "period": "DAILY",
            "in_participant_name": True,
            "payment_method": "PIX",
            "due_days": 15,
            "block_after_days": 3,
        },
        "requires_vehicle": True,
        "status": "ACTIVE",
    }
    created = ok(await backoffice.client.post("/v1/convenios", json=body, headers=backoffice.headers), 201)
    for name, value in body.items():
        assert created[name] == value, name
    # individual mode: nothing shared out yet, and no pool balance of its own
    assert (created["allocated"], created["balance"], created["reserved"]) == (0, 0, 0)
    assert ok(await convenio(backoffice, "EMP100")) == created


async def test_each_rollover_and_billing_policy_is_kept(backoffice: BackOffice) -> None:
    """Rollover "somente na geração da duplicata" / "somente na quitação", monthly billing in
    the company's name, and a blocked shared convênio whose pool starts full."""
    on_billing = await backoffice.create_convenio(
        "EMP200",
        100_000,
        rollover={"policy": "ON_BILLING"},
        billing={"automatic": True, "period": "MONTHLY", "in_participant_name": False, "payment_method": "BOLETO"},
    )
    assert on_billing["rollover"] == {"policy": "ON_BILLING", "day": None}
    assert on_billing["billing"] == {
        "automatic": True,
        "period": "MONTHLY",
        "in_participant_name": False,
        "payment_method": "BOLETO",
        "due_days": 10,  # the defaults: due 10 days after issue, blocking 5 days after that
        "block_after_days": 5,
    }
    on_settlement = await backoffice.create_convenio(
        "EMP300", 30_000, tolerance=1_000, shared=True, rollover={"policy": "ON_SETTLEMENT"}, status="BLOCKED"
    )
    assert on_settlement["rollover"]["policy"] == "ON_SETTLEMENT"
    assert (on_settlement["status"], on_settlement["shared"], on_settlement["balance"]) == ("BLOCKED", True, 30_000)
    assert ok(await convenio(backoffice, "EMP300")) == on_settlement

    # the defaults: monthly rollover on day 1, no automatic billing, no vehicle, ACTIVE
    plain = await backoffice.create_convenio("EMP400", 10_000)
    assert plain["rollover"] == {"policy": "MONTHLY", "day": 1}
    assert plain["billing"]["automatic"] is False
    assert (plain["requires_vehicle"], plain["status"], plain["tolerance"]) == (False, "ACTIVE", 0)

    # and a PATCH changes the policy, read back
    changed = ok(
        await backoffice.update_convenio(
            "EMP400",
            rollover={"policy": "MONTHLY", "day": 25},
            billing={"automatic": True, "period": "DAILY", "in_participant_name": True, "payment_method": "PIX"},
        )
    )
    assert changed["rollover"] == {"policy": "MONTHLY", "day": 25}
    assert changed["billing"]["period"] == "DAILY" and changed["billing"]["in_participant_name"] is True
    assert ok(await convenio(backoffice, "EMP400")) == changed


async def test_a_monthly_rollover_always_has_its_day(backoffice: BackOffice) -> None:
    """ "MENSAL juntamente com o dia para virada do mês": switching a convênio to MONTHLY
    without a day must not leave a monthly rollover that never runs. Create fills in day 1;
    a PATCH must do the same (or refuse the change)."""
    await backoffice.create_convenio("EMP600", 10_000, rollover={"policy": "ON_BILLING"})
    r = await backoffice.update_convenio("EMP600", rollover={"policy": "MONTHLY"})
    if r.status_code == 422:
        assert r.json()["error"]["code"] == "INVALID_REQUEST"
        assert ok(await convenio(backoffice, "EMP600"))["rollover"]["policy"] == "ON_BILLING"
    else:
        assert ok(r)["rollover"] == {"policy": "MONTHLY", "day": 1}


async def test_a_convenio_code_is_created_once_and_only_known_ones_change(backoffice: BackOffice) -> None:
    """A second create is refused and leaves the first record alone; unknown codes are 404."""
    first = await backoffice.create_convenio("EMP500", 50_000, tolerance=500)
    again = await backoffice.client.post(
        "/v1/convenios",
        json={"code": "EMP500", "name": "OUTRA EMPRESA", "total_limit": 1},
        headers=backoffice.headers,
    )
    error(again, 409, "CONVENIO_EXISTS")
    assert ok(await convenio(backoffice, "EMP500")) == first

    error(await backoffice.update_convenio("EMP999", name="NINGUEM"), 404, "UNKNOWN_CONVENIO")
    error(await convenio(backoffice, "EMP999"), 404, "UNKNOWN_CONVENIO")


# --- individual mode: the total is shared out ----------------------------------------------


async def test_participants_limits_may_not_add_up_to_more_than_the_total(backoffice: BackOffice) -> None:
    """ "o limite total de crédito do convênio deverá ser rateado entre os seus participantes
    e não poderá ultrapassar o total disponível": on create and on a raise."""
    await backoffice.create_convenio("EMP010", 30_000)
    await backoffice.add_participant("EMP010", "CLI001", limit=10_000)
    await backoffice.add_participant("EMP010", "CLI002", limit=15_000)
    assert ok(await convenio(backoffice, "EMP010"))["allocated"] == 25_000

    refused = await backoffice.add_participant("EMP010", "CLI003", limit=6_000, expect=422)
    assert refused["error"]["code"] == "LIMIT_ALLOCATION_EXCEEDED"
    assert refused["error"]["unallocated"] == 5_000
    # nothing of the refused participant exists
    error(await participant(backoffice, "EMP010", "CLI003"), 404, "UNKNOWN_PARTICIPANT")
    codes = [p["code"] for p in ok(await participants(backoffice, "EMP010"))["participants"]]
    assert codes == ["CLI001", "CLI002"]
    assert ok(await convenio(backoffice, "EMP010"))["allocated"] == 25_000

    # exactly what is left is fine
    await backoffice.add_participant("EMP010", "CLI003", limit=5_000)
    assert ok(await convenio(backoffice, "EMP010"))["allocated"] == 30_000

    # a raise past the total is refused and leaves the record as it was
    before = ok(await participant(backoffice, "EMP010", "CLI001"))
    error(
        await backoffice.update_participant("EMP010", "CLI001", name="CLIENTE RENOMEADO", limit=10_001),
        422,
        "LIMIT_ALLOCATION_EXCEEDED",
    )
    assert ok(await participant(backoffice, "EMP010", "CLI001")) == before
    assert ok(await convenio(backoffice, "EMP010"))["allocated"] == 30_000

    # lowering one participant frees room for another
    ok(await backoffice.update_participant("EMP010", "CLI002", limit=14_000))
    raised = ok(await backoffice.update_participant("EMP010", "CLI001", limit=11_000))
    assert (raised["limit"], raised["balance"]) == (11_000, 11_000)
    assert ok(await convenio(backoffice, "EMP010"))["allocated"] == 30_000


async def test_the_total_may_not_fall_below_what_is_shared_out(backoffice: BackOffice) -> None:
    """Lowering the convênio's total under the participants' limits is refused, whole."""
    await backoffice.create_convenio("EMP020", 30_000)
    await backoffice.add_participant("EMP020", "CLI001", limit=10_000)
    await backoffice.add_participant("EMP020", "CLI002", limit=10_000)
    before = ok(await convenio(backoffice, "EMP020"))

    err = error(
        await backoffice.update_convenio("EMP020", name="NOME NOVO", total_limit=19_999, tolerance=5_000),
        422,
        "LIMIT_ALLOCATION_EXCEEDED",
    )
    assert (err["total_limit"], err["allocated"]) == (19_999, 20_000)
    assert ok(await convenio(backoffice, "EMP020")) == before  # neither name nor tolerance moved

    down = ok(await backoffice.update_convenio("EMP020", total_limit=20_000))
    assert (down["total_limit"], down["allocated"]) == (20_000, 20_000)


async def test_a_refused_change_applies_nothing_not_even_a_new_password(seed: Terminal, backoffice: BackOffice) -> None:
    """CLI001 of EMP001 (total R$ 10.000,00): a raise past the total together with a new name
    and password is refused as a whole; the old password still opens the sale."""
    before = ok(await participant(backoffice, "EMP001", "CLI001"))
    r = await backoffice.update_participant(
        "EMP001", "CLI001", name="OUTRO NOME", limit=1_000_001, password="nova-senha-123"
    )
    error(r, 422, "LIMIT_ALLOCATION_EXCEEDED")
    assert ok(await participant(backoffice, "EMP001", "CLI001")) == before
    assert (await seed.check_password()).json()["valid"] is True
    assert (await seed.check_password("nova-senha-123")).json()["valid"] is False


# --- balances ------------------------------------------------------------------------------


async def test_the_balance_starts_as_the_limit_and_moves_with_it(seed: Terminal, backoffice: BackOffice) -> None:
    """ "O campo Saldo ... será uma cópia do valor informado como Limite": R$ 100,00, a sale of
    R$ 5,78 committed, R$ 10,00 still held; a raise to R$ 150,00 adds R$ 50,00 to the balance
    and leaves the hold in place; a cut to R$ 50,00 takes R$ 100,00 off."""
    added = await backoffice.add_participant("EMP001", "CLI002", limit=7_500)
    assert (added["limit"], added["balance"], added["reserved"]) == (7_500, 7_500, 0)

    sale = ok(await seed.hold(578), 201)
    assert ok(await seed.commit(sale["id"], coupon="CUPOM-578"))["balance"] == 9_422
    ok(await seed.hold(1_000), 201)  # still pending

    raised = ok(await backoffice.update_participant("EMP001", "CLI001", limit=15_000))
    assert (raised["limit"], raised["balance"], raised["reserved"]) == (15_000, 14_422, 1_000)
    limit = ok(await seed.limit())
    assert (limit["limit"], limit["balance"], limit["reserved"]) == (15_000, 14_422, 1_000)
    assert limit["available"] == 14_422 + 1_000 - 1_000

    cut = ok(await backoffice.update_participant("EMP001", "CLI001", limit=5_000))
    assert (cut["balance"], cut["reserved"]) == (4_422, 1_000)
    assert await seed.available() == 4_422


async def test_no_client_can_set_a_balance(seed: Terminal, backoffice: BackOffice) -> None:
    """The balance is not a field anyone may send: unknown fields are refused, not ignored."""
    for r in (
        await backoffice.update_participant("EMP001", "CLI001", balance=99_999),
        await backoffice.client.post(
            "/v1/convenios/EMP001/participants",
            json={"code": "CLI002", "name": "CLIENTE 002", "limit": 100, "balance": 99_999},
            headers=backoffice.headers,
        ),
        await backoffice.update_convenio("EMP001", balance=99_999),
        await backoffice.update_convenio("EMP001", allocated=0),
    ):
        err = error(r, 422, "INVALID_REQUEST")
        assert "balance" in r.text or "allocated" in r.text, err
    assert ok(await participant(backoffice, "EMP001", "CLI001"))["balance"] == 10_000
    error(await participant(backoffice, "EMP001", "CLI002"), 404, "UNKNOWN_PARTICIPANT")
    assert await seed.available() == 11_000


# --- shared mode: one pool -----------------------------------------------------------------


async def test_a_shared_pool_is_drawn_on_by_every_participant(seed: Terminal, backoffice: BackOffice) -> None:
    """ "limite compartilhado": R$ 300,00 + R$ 10,00 tolerance that three employees spend
    together until it runs out; a raise of the total refills the pool by the difference."""
    pool = await backoffice.create_convenio("POOL01", 30_000, tolerance=1_000, shared=True)
    assert pool["balance"] == 30_000
    ana, bia, caio = (
        seed.as_participant("POOL01", code, password)
        for code, password in (("ANA", "1111"), ("BIA", "2222"), ("CAIO", "3333"))
    )
    for t in (ana, bia, caio):
        await backoffice.add_participant("POOL01", t.participant, password=t.password)

    first = ok(await ana.limit())
    assert first == {
        "convenio": "POOL01",
        "participant": "ANA",
        "status": "ACTIVE",
        "shared": True,
        "limit": 30_000,
        "tolerance": 1_000,
        "balance": 30_000,
        "reserved": 0,
        "available": 31_000,
    }

    ana_sale = ok(await ana.hold(12_000), 201)
    assert ok(await bia.hold(12_000), 201)["available"] == 7_000
    seen_by_caio = ok(await caio.limit())
    assert (seen_by_caio["reserved"], seen_by_caio["available"]) == (24_000, 7_000)
    assert ok(await caio.hold(7_000), 201)["available"] == 0

    for t in (ana, bia, caio):
        err = error(await t.hold(1), 422, "INSUFFICIENT_LIMIT")
        assert err["available"] == 0
        assert ok(await t.limit())["available"] == 0

    # a committed sale comes off the pool's balance, for everyone
    assert ok(await ana.commit(ana_sale["id"]))["balance"] == 18_000
    assert ok(await bia.limit())["balance"] == 18_000

    raised = ok(await backoffice.update_convenio("POOL01", total_limit=40_000))
    assert (raised["total_limit"], raised["balance"], raised["reserved"]) == (40_000, 28_000, 19_000)
    limit = ok(await caio.limit())
    assert (limit["limit"], limit["balance"], limit["available"]) == (40_000, 28_000, 10_000)
    assert ok(await bia.hold(10_000), 201)["available"] == 0


async def test_the_sharing_mode_is_locked_once_there_are_participants(backoffice: BackOffice) -> None:
    """Free to switch while empty; with a participant the mode is fixed, either way."""
    await backoffice.create_convenio("MODE01", 20_000)
    switched = ok(await backoffice.update_convenio("MODE01", shared=True))
    assert (switched["shared"], switched["balance"]) == (True, 20_000)
    ok(await backoffice.update_convenio("MODE01", shared=False))

    await backoffice.add_participant("MODE01", "CLI001", limit=5_000)
    before = ok(await convenio(backoffice, "MODE01"))
    error(await backoffice.update_convenio("MODE01", shared=True, name="OUTRO"), 422, "SHARING_MODE_LOCKED")
    assert ok(await convenio(backoffice, "MODE01")) == before
    ok(await backoffice.update_convenio("MODE01", shared=False))  # the same mode is no change

    await backoffice.create_convenio("MODE02", 20_000, shared=True)
    await backoffice.add_participant("MODE02", "CLI001")
    error(await backoffice.update_convenio("MODE02", shared=False), 422, "SHARING_MODE_LOCKED")
    assert ok(await convenio(backoffice, "MODE02"))["shared"] is True


# --- blocking ------------------------------------------------------------------------------


async def test_a_blocked_convenio_or_participant_declines_sales_until_unblocked(
    seed: Terminal, backoffice: BackOffice
) -> None:
    """The terminal sees BLOCKED on the limit query and the hold is declined with the reason;
    unblocking lets the R$ 5,78 sale through."""
    ok(await backoffice.update_convenio("EMP001", status="BLOCKED"))
    assert ok(await seed.limit())["status"] == "BLOCKED"
    err = error(await seed.hold(578), 422, "CONVENIO_BLOCKED")
    assert err["available"] == 11_000
    ok(await backoffice.update_convenio("EMP001", status="ACTIVE"))
    assert ok(await seed.limit())["status"] == "ACTIVE"
    ok(await seed.hold(578), 201)

    ok(await backoffice.update_participant("EMP001", "CLI001", status="BLOCKED"))
    assert ok(await participant(backoffice, "EMP001", "CLI001"))["status"] == "BLOCKED"
    assert ok(await seed.limit())["status"] == "BLOCKED"
    error(await seed.hold(578), 422, "PARTICIPANT_BLOCKED")
    ok(await backoffice.update_participant("EMP001", "CLI001", status="ACTIVE"))
    assert ok(await seed.hold(578), 201)["available"] == 11_000 - 2 * 578


# --- reading participants ------------------------------------------------------------------


async def test_participants_are_listed_by_code_a_page_at_a_time(backoffice: BackOffice) -> None:
    """?limit=2, then ?after=<next_after> until next_after is null."""
    await backoffice.create_convenio("LIST01", 50_000)
    for code in ("CLI004", "CLI001", "CLI005", "CLI003", "CLI002"):
        await backoffice.add_participant("LIST01", code, limit=1_000)

    pages, after = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} if after is None else {"limit": 2, "after": after}
        page = ok(await participants(backoffice, "LIST01", **params))
        pages.append([p["code"] for p in page["participants"]])
        after = page["next_after"]
        if after is None:
            break
    assert pages == [["CLI001", "CLI002"], ["CLI003", "CLI004"], ["CLI005"]]

    # a page that ends exactly on the last code says there is no more
    last = ok(await participants(backoffice, "LIST01", after="CLI001", limit=4))
    assert [p["code"] for p in last["participants"]] == ["CLI002", "CLI003", "CLI004", "CLI005"]
    assert last["next_after"] is None
    everyone = ok(await participants(backoffice, "LIST01"))
    assert len(everyone["participants"]) == 5 and everyone["next_after"] is None
    assert everyone["participants"][0] == ok(await participant(backoffice, "LIST01", "CLI001"))

    error(await participants(backoffice, "LIST01", limit=0), 422, "INVALID_REQUEST")


async def test_unknown_codes_are_404_with_the_missing_one_named(seed: Terminal, backoffice: BackOffice) -> None:
    error(await participant(backoffice, "EMP001", "CLI999"), 404, "UNKNOWN_PARTICIPANT")
    error(await participant(backoffice, "EMP999", "CLI001"), 404, "UNKNOWN_CONVENIO")
    error(await participants(backoffice, "EMP999"), 404, "UNKNOWN_CONVENIO")
    error(await backoffice.update_participant("EMP001", "CLI999", name="X"), 404, "UNKNOWN_PARTICIPANT")
    error(await seed.limit(participant="CLI999"), 404, "UNKNOWN_PARTICIPANT")
    error(await seed.limit(convenio="EMP999"), 404, "UNKNOWN_CONVENIO")
    err = await backoffice.add_participant("EMP999", "CLI001", expect=404)
    assert err["error"]["code"] == "UNKNOWN_CONVENIO"


# --- passwords and the integration key -----------------------------------------------------


async def test_a_new_password_replaces_the_old_and_no_hash_is_ever_shown(
    seed: Terminal, backoffice: BackOffice
) -> None:
    """ "Cada participante poderá definir uma senha": after a change only the new one opens
    the sale, and no answer carries the stored hash."""
    changed = await backoffice.update_participant("EMP001", "CLI001", password="nova-4321")
    assert ok(changed)["password_set"] is True

    old = ok(await seed.check_password())
    assert old["valid"] is False and "proof" not in old
    new = ok(await seed.check_password("nova-4321"))
    assert new["valid"] is True and new["proof"]

    created = await backoffice.client.post(
        "/v1/convenios/EMP001/participants",
        json={"code": "CLI002", "name": "CLIENTE 002", "limit": 100, "password": "senha-002"},
        headers=backoffice.headers,
    )
    assert ok(created, 201)["password_set"] is True
    answers = [
        changed,
        created,
        await participant(backoffice, "EMP001", "CLI001"),
        await participants(backoffice, "EMP001"),
        await convenio(backoffice, "EMP001"),
        await seed.limit(),
        await seed.client.get("/v1/participants/CLI001/convenios", headers=seed.headers),
    ]
    for r in answers:
        assert r.status_code in (200, 201), r.text
        assert "argon2" not in r.text.lower()
        assert "pw_hash" not in r.text and "nova-4321" not in r.text and "senha-002" not in r.text


async def test_a_new_integration_key_retires_the_old_one(seed: Terminal, backoffice: BackOffice) -> None:
    """Administração > Integrações: the "palavra chave" the password check carries."""
    assert (await seed.check_password()).json()["valid"] is True
    assert ok(await backoffice.set_integration_key("ik_nova-palavra-chave")) == {"ok": True}

    error(await seed.check_password(), 403, "INTEGRATION_KEY_INVALID")
    assert ok(await seed.check_password(integration_key="ik_nova-palavra-chave"))["valid"] is True

    # a terminal's own key may not change it (3187 is the integration permission)
    r = await seed.client.put("/v1/integration/key", json={"integration_key": "ik_da-loja-123"}, headers=seed.headers)
    error(r, 403, "FORBIDDEN")
    error(await seed.check_password(integration_key="ik_da-loja-123"), 403, "INTEGRATION_KEY_INVALID")
