"""A real `convenio serve` process for the tests that need one (HTTPS, the browser), and the
settings such a module shares with it: one key prefix for the module, so what a test writes
through its own services the server sees."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from gateway.platform.config import Settings
from ledger.ops import embedded
from tests.conftest import _prefixes

CLI = [sys.executable, "-m", "ledger.cli"]


def module_settings(redis_url: str, database_url: str, tag: str) -> Settings:
    """As conftest's, with one key prefix for the module: its server and each test's services share it."""
    return Settings(
        redis_url=redis_url,
        database_url=database_url,
        key_prefix=f"t{os.getpid()}x{next(_prefixes)}{tag}",
        shards=4,
        pepper=b"test-pepper",
        data_key=b"test-data-key",
        password_threads=2,
        sweep_interval_ms=3_600_000,
        apikey_cache_s=0,
    )


@contextlib.contextmanager
def serving(settings: Settings, *flags: str) -> Iterator[int]:
    """`convenio serve` with these flags on a free port, until the block ends; yields the port."""
    port = embedded.free_port()
    secrets = {"CONVENIO_PEPPER": settings.pepper.decode(), "CONVENIO_DATA_KEY": settings.data_key.decode()}
    env = {**os.environ, **settings.environment(), **secrets}
    proc = subprocess.Popen([*CLI, "serve", "--port", str(port), "--log-level", "warning", *flags], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:  # uvicorn listens once the app has started
            assert proc.poll() is None, "the gateway exited (its log is above)"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert time.monotonic() < deadline, "the gateway did not come up"
            time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
