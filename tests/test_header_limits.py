"""Oversized request headers: `431 HEADERS_TOO_LARGE` in the contract's error shape, from the app
and from the real server, which must never buffer an endless head nor fall over because of one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from gateway.app import ENDPOINTS
from gateway.platform.errors import ERRORS, ErrorCode
from gateway.platform.http.header_limit import MAX_HEAD_BYTES, MAX_HEADER_BYTES, header_bytes
from ledger.ops import embedded
from tests.checkout import Terminal, assert_error

LIMIT_URL = "/v1/convenios/EMP001/participants/CLI001/limit"
AVAILABLE = 11000  # the worked example's R$ 100,00 limit + R$ 10,00 tolerance, untouched


def padded_to(client: httpx.AsyncClient, size: int, method: str, url: str, headers: dict[str, str]) -> httpx.Request:
    """The request with an X-Pad header that brings its headers, as the app sees them, to `size` bytes."""
    bare = client.build_request(method, url, headers={**headers, "X-Pad": ""})
    pad = size - header_bytes(bare.headers.raw)
    assert pad > 0
    return client.build_request(method, url, headers={**headers, "X-Pad": "p" * pad})


def test_the_limit_and_its_message_agree() -> None:
    assert MAX_HEADER_BYTES == 16 * 1024
    assert ERRORS[ErrorCode.HEADERS_TOO_LARGE] == (431, "The request headers are larger than 16 KiB.")


async def test_a_limit_query_with_headers_at_the_limit_is_answered(seed: Terminal) -> None:
    """16 KiB of headers exactly is still a request like any other."""
    r = await seed.client.send(padded_to(seed.client, MAX_HEADER_BYTES, "GET", LIMIT_URL, seed.headers))
    assert r.status_code == 200, r.text
    assert r.json()["available"] == AVAILABLE


async def test_a_limit_query_one_byte_over_the_limit_is_431(seed: Terminal) -> None:
    r = await seed.client.send(padded_to(seed.client, MAX_HEADER_BYTES + 1, "GET", LIMIT_URL, seed.headers))
    assert_error(r, 431, "HEADERS_TOO_LARGE")
    assert r.headers["connection"] == "close"


async def test_a_thousand_small_headers_are_431_too(seed: Terminal) -> None:
    """The count of header lines adds up, not only the size of one."""
    many = {f"X-H{n:04d}": "b" * 91 for n in range(1000)}
    assert_error(await seed.client.get(LIMIT_URL, headers={**seed.headers, **many}), 431, "HEADERS_TOO_LARGE")


async def test_a_hold_with_oversized_headers_holds_nothing(seed: Terminal) -> None:
    """Refused before authentication and the body: the participant's available limit does not move."""
    proof = await seed.proof()
    headers = {**seed.headers, "Idempotency-Key": "big-headers", "X-Note": "n" * MAX_HEADER_BYTES}
    r = await seed.client.post("/v1/empenhos", json=seed.sale(578, proof), headers=headers)
    assert_error(r, 431, "HEADERS_TOO_LARGE")
    assert await seed.available() == AVAILABLE
    r = await seed.hold(578, proof=proof)  # the proof was not spent either
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(("method", "path"), [("GET", "/healthz"), ("GET", "/nowhere"), ("GET", "/openapi.json")])
async def test_every_path_refuses_oversized_headers(client: httpx.AsyncClient, method: str, path: str) -> None:
    assert_error(await client.request(method, path, headers={"X-Big": "a" * 100_000}), 431, "HEADERS_TOO_LARGE")


async def test_openapi_documents_431_for_every_operation(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for ep in ENDPOINTS:
        responses = paths[ep.path][ep.method.lower()]["responses"]
        assert "HEADERS_TOO_LARGE" in responses.get("431", {}).get("description", ""), ep.name


# --- the real server --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(redis_url: str, shared_ledger_url: str) -> Iterator[int]:
    """`convenio serve` in its own process (uvicorn, httptools): its port."""
    port = embedded.free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": shared_ledger_url,
        "CONVENIO_KEY_PREFIX": f"hl{uuid.uuid4().hex[:8]}",
        "CONVENIO_SHARDS": "4",
        "CONVENIO_PEPPER": "header-limit-pepper",
    }
    cmd = [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while not _answers(port):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "convenio serve did not start"
            time.sleep(0.05)
        yield port
        assert proc.poll() is None, "the server died"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answers(port: int) -> bool:
    try:
        return exchange(port, [b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"])[0].startswith(
            b"HTTP/1.1 200"
        )
    except OSError:
        return False


def exchange(port: int, chunks: Iterator[bytes] | list[bytes], pause: float = 0.0) -> tuple[bytes, int]:
    """Send the chunks on one connection (until the server stops taking them), then read the answer
    to its end: what came back and how many bytes were sent."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
                sent += len(chunk)
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-head: the answer is already on its way
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
    return answer, sent


def is_431(answer: bytes) -> bool:
    """A raw HTTP answer is the contract's 431 HEADERS_TOO_LARGE."""
    head, _, body = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 431 ") or b"content-type: application/json" not in head.lower():
        return False
    return msgspec.json.decode(body)["error"]["code"] == "HEADERS_TOO_LARGE"


def test_the_server_refuses_huge_heads_and_stays_up(server: int) -> None:
    """A 100 KiB header, 1,000 headers, and one endless header trickled in: each is answered 431
    with the contract's body, the endless one long before its end, and the next request is served."""
    start = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    one_big = start + b"X-Big: " + b"a" * 100 * 1024 + b"\r\n\r\n"
    many = start + b"".join(b"X-H%04d: " % n + b"b" * 91 + b"\r\n" for n in range(1000)) + b"\r\n"
    for what, head in [("one 100 KiB header", one_big), ("1,000 headers of 100 bytes", many)]:
        answer, _ = exchange(server, [head])
        assert is_431(answer), f"{what}: {answer[:300]!r}"

    endless = (start + b"X-Big: " if n == 0 else b"c" * 16 * 1024 for n in range(10 * 64))  # 10 MiB in all
    answer, sent = exchange(server, endless, pause=0.001)
    assert is_431(answer), f"endless header: {answer[:300]!r}"
    assert sent < 1024 * 1024, f"the server read {sent} bytes of a head before refusing it (bound {MAX_HEAD_BYTES})"

    answer, _ = exchange(server, [start + b"\r\n"])
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
