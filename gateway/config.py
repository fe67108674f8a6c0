"""Settings from the environment, read once; every knob the operators can turn is here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def _pepper() -> bytes:
    raw = os.environ.get("CONVENIO_PEPPER")
    path = os.environ.get("CONVENIO_PEPPER_FILE")
    if not raw and path:
        with open(path, encoding="utf-8") as fh:
            raw = fh.read().strip()
    if not raw:
        raise RuntimeError(
            "CONVENIO_PEPPER (or CONVENIO_PEPPER_FILE) must be set: the server-side secret "
            "that keys participant password hashes. `./run` creates one under .data/."
        )
    return raw.encode()


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/convenio"
    key_prefix: str = "cv"
    shards: int = 16
    pepper: bytes = field(default=b"", repr=False)
    hold_ttl_s: int = 15 * 60
    proof_ttl_s: int = 120
    idempotency_ttl_s: int = 24 * 3600
    final_empenho_ttl_s: int = 7 * 24 * 3600
    password_max_failures: int = 5
    password_lock_s: int = 15 * 60
    password_threads: int = max(1, os.cpu_count() or 1)
    apikey_cache_s: int = 5
    sweep_interval_ms: int = 1000
    redis_timeout_ms: int = 2000
    ledger_lag_max: int = 100_000

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "redis_url": os.environ.get("REDIS_URL", cls.redis_url),
            "database_url": os.environ.get("DATABASE_URL", cls.database_url),
            "key_prefix": os.environ.get("CONVENIO_KEY_PREFIX", cls.key_prefix),
            "shards": _int("CONVENIO_SHARDS", cls.shards),
            "hold_ttl_s": _int("CONVENIO_HOLD_TTL", cls.hold_ttl_s),
            "proof_ttl_s": _int("CONVENIO_PROOF_TTL", cls.proof_ttl_s),
            "idempotency_ttl_s": _int("CONVENIO_IDEMPOTENCY_TTL", cls.idempotency_ttl_s),
            "final_empenho_ttl_s": _int("CONVENIO_FINAL_EMPENHO_TTL", cls.final_empenho_ttl_s),
            "password_max_failures": _int("CONVENIO_PASSWORD_MAX_FAILURES", cls.password_max_failures),
            "password_lock_s": _int("CONVENIO_PASSWORD_LOCK", cls.password_lock_s),
            "password_threads": _int("CONVENIO_PASSWORD_THREADS", cls.password_threads),
            "apikey_cache_s": _int("CONVENIO_APIKEY_CACHE", cls.apikey_cache_s),
            "sweep_interval_ms": _int("CONVENIO_SWEEP_INTERVAL_MS", cls.sweep_interval_ms),
            "redis_timeout_ms": _int("CONVENIO_REDIS_TIMEOUT_MS", cls.redis_timeout_ms),
            "ledger_lag_max": _int("CONVENIO_LEDGER_LAG_MAX", cls.ledger_lag_max),
        }
        values.update(overrides)
        if "pepper" not in values:
            values["pepper"] = _pepper()
        return cls(**values)  # type: ignore[arg-type]
