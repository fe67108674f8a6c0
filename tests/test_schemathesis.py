"""Schemathesis over `/openapi.json`, bounded, with every check it has: for every operation, generated
requests (valid and invalid) never get a 5xx; every answer is documented (its status, content type,
headers and body's schema, the error's code among those declared for that status); a request the
schema allows is never refused and one it forbids never accepted; a missing required header is
refused; an undocumented method is 405 with an Allow header listing exactly the documented ones;
and, in the stateful phase, the operations chained by the document's links (a hold placed, then
read, committed, cancelled; a convênio created, then its participants...) keep those promises, a
resource deleted stays gone and one created is there.

Two things the schema cannot say are given to the generator, not waived: a decline is the
contract's `422` with a business code declared for the operation (INSUFFICIENT_LIMIT, ...), so a
valid request declined counts as accepted, never one refused as INVALID_REQUEST; and the few rules
that depend on the clock or tie fields together (a credit expires in the future; a period does not
end before it starts; a store sale names its store; no status both commits and cancels) are kept by
the hooks below in the requests meant to be valid.

Schemathesis drives the ASGI app in-process on its own event-loop thread and runs the app's lifespan
there itself, so the gateway's Redis and Postgres connections live on that loop; the demo data and an
API key with every permission are loaded in the same lifespan, before the first request. The run is
deterministic (fixed seed, derandomized, no example database) and capped per operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import random
import secrets
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NOT_SET
from schemathesis.core.parameters import ParameterLocation
from schemathesis.engine import events as engine_events
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from gateway.app import ENDPOINTS, OPERATIONS, create_app
from gateway.auth import apikeys
from gateway.auth.permissions import Permission
from gateway.platform import documents
from gateway.platform.config import Settings
from gateway.platform.errors import ERRORS, ErrorCode
from ledger.ops import demo
from ledger.writer import writer
from tests.checkout import Terminal, mint_proof

MAX_EXAMPLES = 25
PROOFS = 20  # valid password proofs (single use) for generated empenhos to spend
STATEFUL_SCENARIOS = 40  # chains of linked operations
MAX_STEPS = 6  # operations in one chain
#: the declines of each operation: its 422s that are decisions, not a request it could not read
DECLINES = {
    f"{ep.method} {ep.path}": {
        str(code) for code in ep.all_errors() if ERRORS[code][0] == 422 and code != ErrorCode.INVALID_REQUEST
    }
    for ep in ENDPOINTS + OPERATIONS
}


def positive_data_acceptance_but_declines(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis's positive_data_acceptance, but a decline the operation declares (the contract
    answers declines 422: INSUFFICIENT_LIMIT, LIMIT_ALLOCATION_EXCEEDED...) is the request accepted
    and decided; a 422 INVALID_REQUEST for a request the schema allows still fails."""
    if response.status_code == 422:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            if response.json()["error"]["code"] in DECLINES[case.operation.label]:
                return None
    return positive_data_acceptance(ctx, response, case)


def negative_data_rejection_but_no_body(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis's negative_data_rejection, but a request whose invalid part was to be its body,
    sent without one where the body is optional (a cancel's reason), is valid as sent; anything
    else it flags still fails."""
    meta = case.meta
    if meta is not None and meta.is_negative_at(ParameterLocation.BODY) and case.body is NOT_SET:
        if not any(meta.is_negative_at(at) for at in meta.components if at != ParameterLocation.BODY):
            return None
    return negative_data_rejection(ctx, response, case)


REPLACED = {
    positive_data_acceptance: positive_data_acceptance_but_declines,
    negative_data_rejection: negative_data_rejection_but_no_body,
}
for replacement in REPLACED.values():
    schemathesis.check(replacement)  # for the stateful phase's engine, which runs the registered ones
load_all_checks()
#: every check Schemathesis has (function checks: check classes are run-level plugins)
CHECKS_ALL = [
    REPLACED.get(check, check)
    for check in CHECKS.get_all()
    if not isinstance(check, type) and check not in REPLACED.values()
]


CONFIG = {
    "seed": 20260401,
    "generation": {
        "mode": "all",
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,
        "database": "none",
        "no-shrink": True,
    },
    # the chains follow the document's links only, not those Schemathesis would guess from names
    "phases": {"stateful": {"enabled": True, "max-steps": MAX_STEPS, "inference": {"algorithms": []}}},
}


@pytest.fixture
def real(settings: Settings) -> Iterator[dict[str, Any]]:
    """The app, and what its lifespan loaded: the demo's records, a held and a committed empenho, and
    an API key with every permission (filled in when Schemathesis starts the lifespan)."""
    app = create_app(settings)
    # the key every generated request carries (Schemathesis sends it as configured, like `st run -H`)
    token = "cvk_schemathesis_" + secrets.token_urlsafe(24)
    loaded: dict[str, Any] = {"app": app, "token": token, "headers": {"Authorization": f"Bearer {token}"}}
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[None]:
        async with inner(a):
            svc = a.state.services
            # a ledger writer runs, as deployed: endpoints that wait for the ledger get an answer
            stopping = asyncio.Event()
            writing = asyncio.create_task(writer.run(svc, svc.settings.database_url, "schemathesis", stopping))
            creds = await demo.load(svc)
            await apikeys.create(svc, frozenset(Permission), name="schemathesis", token=loaded["token"])
            transport = httpx.ASGITransport(app=a)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                terminal = Terminal(client, creds)
                held = await terminal.hold(100)
                committed = await terminal.hold(200)
                assert held.status_code == committed.status_code == 201, (held.text, committed.text)
                done = await terminal.commit(committed.json()["id"])
                assert done.status_code == 200, done.text
                proofs = [await terminal.proof()] + [
                    await mint_proof(svc, creds["convenio"], creds["participant"]) for _ in range(PROOFS)
                ]
                # the customer's current account, for the orders to pay with
                reference = f"DEV-{secrets.token_hex(4)}"  # the ledger's database is shared with other tests
                credit = {"reference": reference, "type": "DEVOLUCAO", "amount": 100_000, "origin": {"channel": "WEB"}}
                r = await client.post(
                    f"/v1/participants/{creds['participant']}/credits", json=credit, headers=loaded["headers"]
                )
                assert r.status_code == 201, r.text
            loaded["path"] = {
                "convenio": [creds["convenio"]],
                "participant": [creds["participant"]],
                "id": [held.json()["id"], committed.json()["id"]],
                "protocol": [held.json()["protocol"], done.json()["protocol"]],
            }
            who = {"convenio": creds["convenio"], "participant": creds["participant"]}
            loaded["body"] = {
                "POST /v1/convenios/{convenio}/participants/{participant}/password/verify": [
                    {"password": creds["password"], "integration_key": creds["integration_key"]}
                ],
                "POST /v1/empenhos": [{**who, "proof": proof, "amount": 100} for proof in proofs] + [who],
                "POST /v1/credit-holds": [{"customer": creds["participant"], "amount": 100}],
            }
            try:
                yield
            finally:
                stopping.set()
                await writing

    app.router.lifespan_context = lifespan
    yield loaded
    shutdown_lifespans()


@pytest.fixture
def api_schema(real: dict[str, Any]) -> Any:
    config = SchemathesisConfig.from_dict({**CONFIG, "headers": real["headers"]})
    return schemathesis.openapi.from_asgi("/openapi.json", real["app"], config=config)


def realistic(case: Any, real: dict[str, Any], records: bool = True) -> None:
    """A request meant to be valid, made to meet what the schema cannot say: sometimes records that
    exist in the path (past the 404s; `records`), no query (the defaults) or the demo's real
    credentials (a password, a fresh proof); always the rules that depend on the clock or tie fields
    together. A request meant to be invalid is sent as generated."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    label = case.operation.label
    pick = random.Random(zlib.crc32(repr((label, case.path_parameters, case.query, case.body)).encode()))
    known = real["path"]
    if records and case.path_parameters and pick.random() < 0.5:
        case.path_parameters = {n: pick.choice(known[n]) if n in known else v for n, v in case.path_parameters.items()}
    if case.query and pick.random() < 0.3:
        case.query = {}
    patches = real["body"].get(label)
    if patches and isinstance(case.body, dict) and pick.random() < 0.5:
        case.body = {**case.body, **pick.choice(patches)}
    case.body = keep_the_rules(label, case.body)
    if isinstance(case.query, dict):
        case.query = ordered_period(case.query)


def ordered_period(query: dict[str, Any]) -> dict[str, Any]:
    """A period does not end before it starts."""
    start, end = query.get("from"), query.get("to")
    if isinstance(start, str) and isinstance(end, str) and len(start) == len(end) == 10 and end < start:
        return {**query, "from": end, "to": start}
    return query


def keep_the_rules(operation: str, body: Any) -> Any:
    """A credit expires in the future (before 2200); a store sale names its store; no order status
    both commits and cancels; a document is a CPF or CNPJ whose check digits match."""
    if not isinstance(body, dict):
        return body
    document = body.get("document")
    if isinstance(document, str) and document:
        try:
            documents.checked(document)
        except documents.InvalidDocument:
            body = {**body, "document": "529.982.247-25"}
    if operation == "POST /v1/participants/{participant}/credits":
        expires = body.get("expires_at")
        if isinstance(expires, str):
            with contextlib.suppress(ValueError):
                when = datetime.datetime.fromisoformat(expires.replace("Z", "+00:00").replace("z", "+00:00"))
                if when.tzinfo is not None and not NOW + datetime.timedelta(days=1) < when < FAR:
                    body = {**body, "expires_at": "2099-12-31T23:59:59Z"}
        origin = body.get("origin")
        if isinstance(origin, dict) and origin.get("channel") == "STORE" and not origin.get("store"):
            body = {**body, "origin": {**origin, "store": "LOJA01"}}
    if operation == "POST /v1/credit-holds" and body.get("channel") == "STORE" and not body.get("store"):
        body = {**body, "store": "LOJA01"}
    if operation == "PUT /v1/integration/order-status":
        commit, cancel = body.get("commit_statuses"), body.get("cancel_statuses")
        if isinstance(commit, list) and isinstance(cancel, list):
            body = {**body, "cancel_statuses": [s for s in cancel if s not in commit]}
    return body


NOW = datetime.datetime.now(datetime.UTC)
FAR = datetime.datetime(2200, 1, 1, tzinfo=datetime.UTC)

schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_api(case: Any, real: dict[str, Any]) -> None:
    realistic(case, real)
    case.validate_response(case.call(), checks=CHECKS_ALL, headers=real["headers"])


#: what the stateful phase's requests are made realistic with, while it runs
STATEFUL: dict[str, Any] = {}


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if STATEFUL:  # a link's parameters name what the chain created: no other records in the path
        realistic(case, STATEFUL["real"], records=False)


def test_linked_operations(real: dict[str, Any]) -> None:
    """The stateful phase, as `st run` drives it: chains of operations along the document's links,
    every check on each step (the declines as in test_api)."""
    config = SchemathesisConfig.from_dict(
        {
            **CONFIG,
            "headers": real["headers"],
            "generation": {**CONFIG["generation"], "max-examples": STATEFUL_SCENARIOS},
            "phases": {**{p: {"enabled": False} for p in ("examples", "coverage", "fuzzing")}, **CONFIG["phases"]},
            # replaced by their versions above
            "checks": {"positive_data_acceptance": {"enabled": False}, "negative_data_rejection": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", real["app"], config=config)
    assert schema.statistic.transitions.total > 0, "the document has no links"

    failures, scenarios, linked = [], 0, set()
    STATEFUL["real"] = real
    try:
        run = list(schemathesis.engine.from_schema(schema).execute())
    finally:
        STATEFUL.clear()
    for event in run:
        if isinstance(event, engine_events.ScenarioFinished):
            scenarios += 1
            linked |= {n.value.operation.label for n in event.recorder.cases.values() if n.parent_id is not None}
            for checks in event.recorder.checks.values():
                failures += [
                    f"{c.failure_info.failure}\n{c.failure_info.code_sample}"
                    for c in checks
                    if c.failure_info is not None
                ]
        elif isinstance(event, (engine_events.NonFatalError, engine_events.FatalError)):
            failures.append(str(event.info))
    assert not failures, "\n\n".join(dict.fromkeys(failures))
    assert scenarios and linked, f"{scenarios} scenarios, none followed a link"
