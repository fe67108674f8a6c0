"""Schemathesis over `/openapi.json`, bounded: for every operation, generated requests (valid and
invalid) never get a 5xx, and every answer is documented: its status, its content type and its body's
schema.

Schemathesis drives the ASGI app in-process on its own event-loop thread and runs the app's lifespan
there itself, so the gateway's Redis and Postgres connections live on that loop; the demo data and an
API key with every permission are loaded in the same lifespan, before the first request. The run is
deterministic (fixed seed, derandomized, no example database) and capped per operation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.python.asgi import shutdown_lifespans

from gateway.app import create_app
from gateway.auth import apikeys
from gateway.auth.permissions import Permission
from gateway.platform.config import Settings
from ledger.ops import demo
from ledger.writer import writer
from tests.checkout import Terminal

MAX_EXAMPLES = 25
PROOFS = 4  # valid password proofs (single use) for generated empenhos to spend
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


CONFIG = {
    "seed": 20260401,
    "generation": {
        "mode": "all",
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,
        "database": "none",
        "no-shrink": True,
    },
    "phases": {"stateful": {"enabled": False}},
}


@pytest.fixture
def real(settings: Settings) -> Iterator[dict[str, Any]]:
    """The app, and what its lifespan loaded: the demo's records, a held and a committed empenho, and
    an API key with every permission (filled in when Schemathesis starts the lifespan)."""
    app = create_app(settings)
    loaded: dict[str, Any] = {"app": app}
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[None]:
        async with inner(a):
            svc = a.state.services
            # a ledger writer runs, as deployed: endpoints that wait for the ledger get an answer
            stopping = asyncio.Event()
            writing = asyncio.create_task(writer.run(svc, svc.settings.database_url, "schemathesis", stopping))
            creds = await demo.load(svc)
            loaded["token"], _ = await apikeys.create(svc, frozenset(Permission), name="schemathesis")
            transport = httpx.ASGITransport(app=a)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                terminal = Terminal(client, creds)
                held = await terminal.hold(100)
                committed = await terminal.hold(200)
                assert held.status_code == committed.status_code == 201, (held.text, committed.text)
                done = await terminal.commit(committed.json()["id"])
                assert done.status_code == 200, done.text
                proofs = [await terminal.proof() for _ in range(PROOFS)]
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
                "POST /v1/empenhos": [{**who, "proof": proof} for proof in proofs] + [who],
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
    schema = schemathesis.openapi.from_asgi("/openapi.json", real["app"], config=SchemathesisConfig.from_dict(CONFIG))
    known = real["path"]

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy:
        """Sometimes the path names records that exist, so requests get past the 404s."""
        names = [n for n in path_parameters or {} if n in known]
        if not names:
            return st.just(path_parameters)
        existing = st.fixed_dictionaries({n: st.sampled_from(known[n]) for n in names})
        return st.one_of(st.just(path_parameters), existing.map(lambda e: {**path_parameters, **e}))

    @schema.hook
    def flatmap_query(context: Any, query: dict[str, Any] | None) -> st.SearchStrategy:
        """Sometimes no query at all (the defaults), so list operations also answer 200."""
        return st.sampled_from([query, {}]) if query else st.just(query)

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> st.SearchStrategy:
        """Sometimes the demo's real credentials (password, integration key, a fresh proof)."""
        patches = real["body"].get(context.operation.label)
        if not patches or not isinstance(body, dict):
            return st.just(body)
        return st.one_of(st.just(body), st.sampled_from(patches).map(lambda p: {**body, **p}))

    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_api(case: Any, real: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {real['token']}"}
    response = case.call(headers=headers)
    case.validate_response(response, checks=CHECKS, headers=headers, transport_kwargs={"headers": headers})
