"""Settings from the environment (and the CLI's options), read once into one object that every
component is given; every knob the operators can turn is here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def _pepper() -> bytes:
    """CONVENIO_PEPPER, or the contents of CONVENIO_PEPPER_FILE; empty when neither is set."""
    raw = os.environ.get("CONVENIO_PEPPER")
    path = os.environ.get("CONVENIO_PEPPER_FILE")
    if not raw and path:
        with open(path, encoding="utf-8") as fh:
            raw = fh.read().strip()
    return (raw or "").encode()


class MissingPepper(RuntimeError):
    pass


def _data_key() -> bytes:
    """CONVENIO_DATA_KEY, or the contents of CONVENIO_DATA_KEY_FILE; empty when neither is set."""
    raw = os.environ.get("CONVENIO_DATA_KEY")
    path = os.environ.get("CONVENIO_DATA_KEY_FILE")
    if not raw and path:
        with open(path, encoding="utf-8") as fh:
            raw = fh.read().strip()
    return (raw or "").encode()


class MissingDataKey(RuntimeError):
    pass


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: more nodes of the Redis Cluster REDIS_URL names, "host:port,host:port": set, the product
    #: runs in cluster mode without asking, and reads the slot map from whichever node answers
    #: (a worker starting while REDIS_URL's node is down would otherwise take it for one server)
    redis_cluster_nodes: str = ""
    database_url: str = "postgresql://postgres@127.0.0.1:5432/convenio"
    key_prefix: str = "cv"
    shards: int = 16
    pepper: bytes = field(default=b"", repr=False)
    data_key: bytes = field(default=b"", repr=False)
    hold_ttl_s: int = 15 * 60
    proof_ttl_s: int = 120
    idempotency_ttl_s: int = 24 * 3600
    final_empenho_ttl_s: int = 7 * 24 * 3600
    password_max_failures: int = 5
    password_lock_s: int = 15 * 60
    #: a back-office session ends after this long unused (each page it serves restarts the count)
    session_ttl_s: int = 8 * 3600
    password_threads: int = max(1, os.cpu_count() or 1)
    apikey_cache_s: int = 5
    sweep_interval_ms: int = 1000
    redis_timeout_ms: int = 2000
    #: replicas that must confirm a decision's write (WAIT) before it is answered; 0 answers at once
    replica_acks: int = 0
    #: how long a decision waits for those replicas before the terminal gets 503 (the decision stands)
    replica_ack_timeout_ms: int = 500
    ledger_lag_max: int = 100_000
    # HTTPS served by the gateway itself (docs/tls.md): PEM files; empty serves plain HTTP
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""  # set: every terminal presents a certificate this CA issued

    def cluster_seeds(self) -> list[tuple[str, int]]:
        """REDIS_URL's node and CONVENIO_REDIS_CLUSTER_NODES' ones, (host, port) each."""
        u = urlsplit(self.redis_url)
        seeds = [(u.hostname or "127.0.0.1", u.port or 6379)]
        for node in filter(None, (n.strip() for n in self.redis_cluster_nodes.split(","))):
            host, _, port = node.rpartition(":")
            if not port.isdigit():
                raise ValueError(f"CONVENIO_REDIS_CLUSTER_NODES: {node!r} is not host:port")
            seeds.append((host or "127.0.0.1", int(port)))
        return list(dict.fromkeys(seeds))

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """The environment's settings (ENVIRONMENT names each variable), then the overrides."""
        defaults = cls()
        values: dict[str, object] = {}
        for name, var in ENVIRONMENT.items():
            default = getattr(defaults, name)
            values[name] = _int(var, default) if isinstance(default, int) else os.environ.get(var, default)
        values.update(overrides)
        if "pepper" not in values:
            values["pepper"] = _pepper()
        if "data_key" not in values:
            values["data_key"] = _data_key()
        return cls(**values)  # type: ignore[arg-type]

    def environment(self) -> dict[str, str]:
        """These settings as the environment variables `from_env` reads (the pepper and the data
        key excepted: they reach a process only from its own environment or file)."""
        return {var: str(getattr(self, name)) for name, var in ENVIRONMENT.items()}

    def secret_pepper(self) -> bytes:
        """The pepper, for what hashes or checks a secret a person chose (participant passwords,
        the integration key, the demo's credentials); only those need it set."""
        if not self.pepper:
            raise MissingPepper(
                "CONVENIO_PEPPER (or CONVENIO_PEPPER_FILE) must be set: the server-side secret "
                "that keys participant password hashes. `./run` creates one under .data/."
            )
        return self.pepper

    def secret_data_key(self) -> bytes:
        """The key of personal data (participants' documents: their lookup digest and sealed
        copy); kept outside both databases, like the pepper, so neither dump reveals a document."""
        if not self.data_key:
            raise MissingDataKey(
                "CONVENIO_DATA_KEY (or CONVENIO_DATA_KEY_FILE) must be set: the server-side secret "
                "that seals participants' CPF/CNPJ. Losing it loses every stored document."
            )
        return self.data_key


#: each setting and the environment variable it is read from
ENVIRONMENT = {
    "redis_url": "REDIS_URL",
    "redis_cluster_nodes": "CONVENIO_REDIS_CLUSTER_NODES",
    "database_url": "DATABASE_URL",
    "key_prefix": "CONVENIO_KEY_PREFIX",
    "shards": "CONVENIO_SHARDS",
    "hold_ttl_s": "CONVENIO_HOLD_TTL",
    "proof_ttl_s": "CONVENIO_PROOF_TTL",
    "idempotency_ttl_s": "CONVENIO_IDEMPOTENCY_TTL",
    "final_empenho_ttl_s": "CONVENIO_FINAL_EMPENHO_TTL",
    "password_max_failures": "CONVENIO_PASSWORD_MAX_FAILURES",
    "password_lock_s": "CONVENIO_PASSWORD_LOCK",
    "session_ttl_s": "CONVENIO_SESSION_TTL",
    "password_threads": "CONVENIO_PASSWORD_THREADS",
    "apikey_cache_s": "CONVENIO_APIKEY_CACHE",
    "sweep_interval_ms": "CONVENIO_SWEEP_INTERVAL_MS",
    "redis_timeout_ms": "CONVENIO_REDIS_TIMEOUT_MS",
    "replica_acks": "CONVENIO_REPLICA_ACKS",
    "replica_ack_timeout_ms": "CONVENIO_REPLICA_ACK_TIMEOUT_MS",
    "ledger_lag_max": "CONVENIO_LEDGER_LAG_MAX",
    "tls_cert": "CONVENIO_TLS_CERT",
    "tls_key": "CONVENIO_TLS_KEY",
    "tls_client_ca": "CONVENIO_TLS_CLIENT_CA",
}
