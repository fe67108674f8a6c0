"""The worked example of the retailer's manual: CLIENTE 001 on EMPRESA CONVENIO 001 (R$ 100,00 limit and
R$ 10,00 tolerance) pays a R$ 5,78 purchase with the convênio."""

from tests.checkout import Terminal


async def test_cliente_001_buys_r_5_78_with_the_convenio(seed: Terminal) -> None:
    before = await seed.limit()
    assert before.status_code == 200
    assert before.json() == {
        "convenio": "EMP001",
        "participant": "CLI001",
        "status": "ACTIVE",
        "shared": False,
        "limit": 10000,
        "tolerance": 1000,
        "balance": 10000,
        "reserved": 0,
        "available": 11000,
    }

    checked = await seed.check_password()
    assert checked.status_code == 200
    assert checked.json()["valid"] is True
    assert checked.json()["expires_in"] > 0

    held = await seed.hold(578, proof=checked.json()["proof"])
    assert held.status_code == 201, held.text
    empenho = held.json()
    assert empenho["status"] == "PENDING"
    assert empenho["amount"] == 578
    assert empenho["available"] == 10422
    assert empenho["protocol"]
    assert (await seed.available()) == 10422

    committed = await seed.commit(empenho["id"], coupon="CUPOM-000123")
    assert committed.status_code == 200, committed.text
    assert committed.json()["status"] == "COMMITTED"
    assert committed.json()["amount"] == 578
    assert committed.json()["balance"] == 9422

    after = (await seed.limit()).json()
    assert (after["balance"], after["reserved"], after["available"]) == (9422, 0, 10422)

    record = (await seed.get(empenho["id"])).json()
    assert record["status"] == "COMMITTED"
    assert record["coupon"] == "CUPOM-000123"
    assert [h["status"] for h in record["history"]] == ["PENDING", "COMMITTED"]
    assert record["history"][0]["protocol"] == empenho["protocol"]
    assert record["history"][1]["protocol"] == committed.json()["protocol"]


async def test_the_demo_loads_again_without_changing_anything(seed: Terminal, svc) -> None:
    from ledger.ops import demo

    held = await seed.hold(1000)
    assert held.status_code == 201
    again = await demo.load(svc)
    assert again == seed.creds
    assert (await seed.available()) == 10000


async def test_participant_convenios_lists_every_convenio(seed: Terminal, backoffice) -> None:
    await backoffice.create_convenio("EMP002", total_limit=50000, tolerance=0, shared=True)
    await backoffice.add_participant("EMP002", "CLI001")
    r = await seed.client.get("/v1/participants/CLI001/convenios", headers=seed.headers)
    assert r.status_code == 200
    rows = {c["convenio"]: c for c in r.json()["convenios"]}
    assert rows["EMP001"]["available"] == 11000
    assert rows["EMP002"]["shared"] is True
    assert rows["EMP002"]["available"] == 50000
    unknown = await seed.client.get("/v1/participants/NOBODY/convenios", headers=seed.headers)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "UNKNOWN_PARTICIPANT"
