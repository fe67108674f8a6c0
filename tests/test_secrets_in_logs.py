"""API keys, passwords, proofs, the integration key and the pepper never appear in a log, an
operator command's output or a response body.

A real gateway process logs at DEBUG (every logger, the product's too) into a file while a
terminal goes through the checkout over HTTP, mistakes included; then `convenio ledger --once`
and `convenio verify` run, and everything written is searched for every secret used or guessed.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from ledger.ops.embedded import free_port

CONVENIO = str(Path(sys.executable).parent / "convenio")
HOLD_TTL_S = 2  # short, so the sweeper expires one hold while we watch (and logs it)

# uvicorn's --log-level configures its own loggers only: the product's (convenio.*) and the
# libraries' would reach nobody below WARNING. This hook, loaded by every process we start,
# sends every logger at DEBUG to stderr, so a secret logged at any level ends up in the file.
SITECUSTOMIZE = """\
import logging
import sys

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("convenio.test").debug("debug logging on for every logger")
"""

#: known, public beginnings of secrets; the random rest is what must not leak, even in part
PUBLIC_PREFIXES = ("cvk_demo_", "cvk_", "ik_", "pepper-", "guess-")
PIECE = 16  # any 16 characters of a secret's random part count as a leak (a truncated log line)


@dataclass
class Secrets:
    """What must never be written back: short numeric passwords, and long random tokens."""

    numbers: dict[str, str] = field(default_factory=dict)  # value -> what it is
    tokens: dict[str, str] = field(default_factory=dict)

    def add(self, value: str, what: str) -> None:
        assert value, what
        (self.numbers if value.isdigit() else self.tokens)[value] = what

    def found_in(self, text: str) -> list[str]:
        leaks = []
        for value, what in self.numbers.items():
            # a 6-digit password is a whole word where it leaks; digits inside ids are chance
            if re.search(rf"(?<![0-9A-Za-z]){value}(?![0-9A-Za-z])", text):
                leaks.append(f"{what} ({value})")
        for value, what in self.tokens.items():
            tail = value
            for prefix in PUBLIC_PREFIXES:
                if value.startswith(prefix):
                    tail = value[len(prefix) :]
                    break
            pieces = {tail[i : i + PIECE] for i in range(max(1, len(tail) - PIECE + 1))}
            if value in text or any(p in text for p in pieces):
                leaks.append(f"{what} ({value})")
        return leaks


@dataclass
class Server:
    url: str
    log: Path
    proc: subprocess.Popen

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Scenario:
    secrets: Secrets
    log: str
    responses: list[tuple[str, httpx.Response]]
    cli: dict[str, str]  # command -> what it printed (stdout and stderr)
    journal: str
    enum_echo: httpx.Response  # see test_a_secret_in_an_enumerated_field_is_not_echoed


@pytest.fixture(scope="module")
def env(redis_url: str, shared_ledger_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    hook = tmp_path_factory.mktemp("logging-hook")
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, (str(hook), os.environ.get("PYTHONPATH")))),
        "REDIS_URL": redis_url,
        "DATABASE_URL": shared_ledger_url,
        "CONVENIO_PEPPER": "pepper-" + secrets.token_hex(16),
        "CONVENIO_KEY_PREFIX": f"sec{uuid.uuid4().hex[:8]}",
        "CONVENIO_SHARDS": "4",
        "CONVENIO_PASSWORD_THREADS": "2",
        "CONVENIO_APIKEY_CACHE": "0",  # a revocation counts at once
        "CONVENIO_HOLD_TTL": str(HOLD_TTL_S),
        "CONVENIO_SWEEP_INTERVAL_MS": "100",
    }


@pytest.fixture(scope="module")
def server(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [CONVENIO, "serve", "--port", str(port), "--log-level", "debug"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", log, proc)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, f"the gateway exited ({proc.returncode}):\n{log.read_text()}"
            try:
                if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the gateway did not answer:\n{log.read_text()}"
            time.sleep(0.05)
        yield server
    finally:
        server.stop()


def convenio(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CONVENIO, *args], env=env, capture_output=True, text=True, timeout=60)


def _code(r: httpx.Response) -> str:
    return r.json()["error"]["code"]


@pytest.fixture(scope="module")
def scenario(server: Server, env: dict[str, str], shared_ledger_url: str) -> Scenario:
    started = datetime.datetime.now(datetime.UTC)
    s = Secrets()
    s.add(env["CONVENIO_PEPPER"], "the pepper")
    cli: dict[str, str] = {}

    demo = convenio(env, "demo")
    assert demo.returncode == 0, demo.stderr
    creds = json.loads(demo.stdout)  # printing them is the demo's job; its stderr is checked
    cli["demo (stderr)"] = demo.stderr
    password, api_key, integration_key = creds["password"], creds["api_key"], creds["integration_key"]
    s.add(password, "the password")
    s.add(api_key, "the terminal's API key")
    s.add(integration_key, "the integration key")

    responses: list[tuple[str, httpx.Response]] = []

    def keep(r: httpx.Response) -> None:
        r.read()
        responses.append((f"{r.request.method} {r.request.url.path}", r))

    c, p = creds["convenio"], creds["participant"]
    participant = f"/v1/convenios/{c}/participants/{p}"
    terminal = {"Authorization": f"Bearer {api_key}"}
    sales = iter(range(1, 100))

    def check(pw: str, ik: str = integration_key, **extra: Any) -> httpx.Response:
        return http.post(
            participant + "/password/verify", json={"password": pw, "integration_key": ik, **extra}, headers=terminal
        )

    def proof() -> str:
        r = check(password)
        assert r.status_code == 200 and r.json()["valid"], r.text
        s.add(r.json()["proof"], "a proof")
        return r.json()["proof"]

    def hold(proof_: str | None, **changes: Any) -> httpx.Response:
        n = next(sales)
        body = {"convenio": c, "participant": p, "amount": 578, "terminal": "PDV01", "store": "LOJA01"}
        body |= {"sale": f"V{n}", "proof": proof_, **changes}
        return http.post("/v1/empenhos", json=body, headers={**terminal, "Idempotency-Key": f"idem-{n}"})

    with httpx.Client(base_url=server.url, timeout=10, event_hooks={"response": [keep]}) as http:
        # left pending on purpose: the sweeper expires it and logs so (the log's sanity check)
        left = hold(proof())
        assert left.status_code == 201, left.text

        assert http.get(participant + "/limit", headers=terminal).status_code == 200

        near_miss = f"{(int(password) + 1) % 1_000_000:06d}"
        guess = "guess-" + secrets.token_hex(12)
        for wrong in (near_miss, guess):
            s.add(wrong, "a wrong password")
            r = check(wrong)
            assert r.status_code == 200 and r.json()["valid"] is False, r.text

        used = proof()
        held = hold(used)
        assert held.status_code == 201, held.text
        again = hold(used)
        assert again.status_code == 422 and _code(again) == "PASSWORD_PROOF_INVALID", again.text
        committed = http.post(f"/v1/empenhos/{held.json()['id']}/commit", json={"coupon": "C1"}, headers=terminal)
        assert committed.status_code == 200, committed.text

        to_cancel = hold(proof())
        assert to_cancel.status_code == 201, to_cancel.text
        cancelled = http.post(f"/v1/empenhos/{to_cancel.json()['id']}/cancel", json={}, headers=terminal)
        assert cancelled.status_code == 200, cancelled.text

        # API keys that are wrong, garbled, well-formed but never issued, or in the wrong place
        garbled = api_key[:-1] + ("0" if api_key[-1] != "0" else "1")
        unissued = "cvk_" + secrets.token_urlsafe(32)
        s.add(garbled, "a garbled API key")
        s.add(unissued, "an API key never issued")
        for headers in (
            {"Authorization": f"Bearer {garbled}"},
            {"Authorization": f"Bearer {unissued}"},
            {"Authorization": f"Bearer {api_key} {password}"},
            {"Authorization": f"Basic {api_key}"},
            {"X-Api-Key": api_key},
        ):
            r = http.get(participant + "/limit", headers=headers)
            assert r.status_code == 401, r.text

        bad_ik = "ik_" + secrets.token_hex(16)
        s.add(bad_ik, "a wrong integration key")
        r = check(password, ik=bad_ik)
        assert r.status_code == 403 and _code(r) == "INTEGRATION_KEY_INVALID", r.text

        # the password where it does not belong: every one a 422 naming the field
        for r in (
            check(password, pin=password),
            check(int(password)),  # type: ignore[arg-type]
            hold(None, amount=password),
            hold(None, terminal=password + "\n"),
            hold(password),
            hold(None, vehicle={"plate": password + "!", "odometer_km": 1}),
            http.post(
                "/v1/empenhos", content=f'{{"password": {password}', headers={**terminal, "Idempotency-Key": "x"}
            ),
        ):
            assert r.status_code == 422, r.text

        # a back-office key: used, then revoked and refused
        created = convenio(env, "apikey", "create", "--permissions", "9000", "--name", "secrets test")
        assert created.returncode == 0, created.stderr
        admin = created.stdout.strip()  # printing it, once, is the command's job; stderr is checked
        cli["apikey create (stderr)"] = created.stderr
        s.add(admin, "the back-office API key")
        back_office = {"Authorization": f"Bearer {admin}"}
        enum_echo = http.patch(participant, json={"status": password}, headers=back_office)
        responses.pop()  # judged on its own, below
        r = http.patch(participant, json={"name": "CLIENTE 001", "document": password + "\n"}, headers=back_office)
        assert r.status_code == 422, r.text
        key_id = created.stderr.split("api key id ")[1].split()[0]
        revoked = convenio(env, "apikey", "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        cli["apikey revoke"] = revoked.stdout + revoked.stderr
        r = http.get(participant, headers=back_office)
        assert r.status_code == 401, r.text

        # the sweeper's expiry first, so the ledger has stored everything when verify runs
        deadline = time.monotonic() + HOLD_TTL_S + 5
        while "expired 1 pending empenhos" not in server.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)

        stored = convenio(env, "ledger", "--once")
        assert stored.returncode == 0, stored.stderr
        cli["ledger --once"] = stored.stdout + stored.stderr
        for name in ("verify", "verify --json"):
            out = convenio(env, *name.split(), "--wait", "2")
            assert out.returncode in (0, 1), out.stderr  # drift in the shared ledger is not ours to judge
            cli[name] = out.stdout + out.stderr

        # what the ledger answers from Postgres: the decision log and the empenhos
        for _, r in list(responses):
            protocol = r.json().get("protocol") if r.status_code < 300 else None
            if protocol:
                assert http.get(f"/v1/protocols/{protocol}", headers=terminal).status_code == 200
        for r in (left, held, to_cancel):
            assert http.get(f"/v1/empenhos/{r.json()['id']}", headers=terminal).status_code == 200

    server.stop()  # its last words are in the log too

    async def journal() -> str:
        conn = await asyncpg.connect(shared_ledger_url)
        try:
            rows = await conn.fetch("SELECT data::text FROM journal WHERE at >= $1", started)
            decisions = await conn.fetch("SELECT request::text || answer::text FROM decisions WHERE at >= $1", started)
        finally:
            await conn.close()
        return "\n".join(r[0] for r in [*rows, *decisions])

    return Scenario(s, server.log.read_text(), responses, cli, asyncio.run(journal()), enum_echo)


def _report(where: str, leaks: list[str]) -> str:
    return f"{where} holds " + ", ".join(leaks)


def test_the_log_is_written_at_debug_by_the_product_too(scenario: Scenario) -> None:
    """Without this, an empty or silent log would make every test below pass."""
    log = scenario.log
    assert "Application startup complete" in log, log[-2000:]
    assert "DEBUG convenio.test: debug logging on for every logger" in log, log[:2000]
    assert "INFO convenio.sweeper: expired 1 pending empenhos" in log, log[-2000:]
    assert "Shutting down" in log or "Finished server process" in log, log[-2000:]
    assert "debug logging on" in scenario.cli["ledger --once"]
    assert "no drift" in scenario.cli["verify"] or "DRIFT" in scenario.cli["verify"]
    assert len(scenario.responses) > 30
    assert '"CLI001"' in scenario.journal and '"COMMITTED"' in scenario.journal, scenario.journal[:2000]
    # and the search itself finds what it looks for
    probe = Secrets()
    probe.add("123456", "a password")
    probe.add("cvk_demo_" + "ab" * 20, "a key")
    assert probe.found_in('{"password": "123456"}') and probe.found_in("key=...abababababababababab...")
    assert not probe.found_in("P01ARZ3123456X 2026-01-01T12:34:56Z stream 1712345678123456-0")


def test_no_secret_in_the_server_log(scenario: Scenario) -> None:
    leaks = scenario.secrets.found_in(scenario.log)
    assert not leaks, _report("the gateway's log", leaks)


def test_no_secret_in_any_response(scenario: Scenario) -> None:
    failures = []
    for request, r in scenario.responses:
        text = r.text + "\n" + "\n".join(f"{k}: {v}" for k, v in r.headers.items())
        leaks = scenario.secrets.found_in(text)
        if leaks and not _expected(request, r, leaks):
            failures.append(_report(f"{request} -> {r.status_code} {r.text[:200]}", leaks))
    assert not failures, "\n".join(failures)


def _expected(request: str, r: httpx.Response, leaks: list[str]) -> bool:
    """A successful password check hands out its proof: that is its answer, said once."""
    return request.endswith("/password/verify") and r.status_code == 200 and leaks == [f"a proof ({r.json()['proof']})"]


def test_no_secret_in_the_operator_commands_output(scenario: Scenario) -> None:
    failures = [
        _report(command, leaks) for command, out in scenario.cli.items() if (leaks := scenario.secrets.found_in(out))
    ]
    assert not failures, "\n".join(failures)


def test_no_secret_in_the_ledger_journal_or_decision_log(scenario: Scenario) -> None:
    leaks = scenario.secrets.found_in(scenario.journal)
    assert not leaks, _report("the journal and decisions written during the test", leaks)


def test_a_secret_in_an_enumerated_field_is_not_echoed(scenario: Scenario) -> None:
    """An operator who pastes a password into `status` gets a 422 that does not repeat it."""
    r = scenario.enum_echo
    assert r.status_code == 422, r.text
    leaks = scenario.secrets.found_in(r.text)
    assert not leaks, _report(f"PATCH participant -> {r.status_code} {r.text}", leaks)
