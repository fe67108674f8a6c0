"""Prometheus metrics. With several uvicorn workers, `convenio serve` sets
PROMETHEUS_MULTIPROC_DIR so /metrics adds up every worker's figures."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "convenio_http_requests_total",
    "HTTP requests answered, by endpoint, status and error code.",
    ["endpoint", "status", "code"],
)
LATENCY = Histogram(
    "convenio_http_request_seconds",
    "Time to answer a request, by endpoint.",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
LEDGER_LAG = Gauge(
    "convenio_ledger_lag_events",
    "Events in the streams not yet stored in Postgres and acknowledged (read at each scrape).",
    multiprocess_mode="max",
)
EXPIRED = Counter(
    "convenio_empenhos_expired_total", "PENDING holds (empenhos and credit holds) released by the sweeper."
)

REPLICA_ACKS_MISSING = Counter(
    "convenio_replica_acks_missing_total",
    "Decisions answered 503 because fewer replicas than CONVENIO_REPLICA_ACKS confirmed them in time.",
)
REDIS_RETRIES = Counter(
    "convenio_redis_cluster_retries_total",
    "Hot-path calls sent again on a Redis Cluster (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, a node lost).",
)


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
