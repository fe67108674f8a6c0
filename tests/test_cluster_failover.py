"""A master of the Redis Cluster dies (SIGKILL) while a terminal places and commits holds, and
its replica takes over. Before the crash the replica falls behind (paused): what the master
wrote since then dies with it (the replica paused and its link cut).

With CONVENIO_REPLICA_ACKS=1 the terminal was told nothing the replica lacked (those holds were
answered 503 and sent again), so no decision it was told about is missing afterwards, and the
ledger writer kept none of the lost writes either: verify finds no drift. With 0 the terminal
was told about holds that are gone, and verify reports them."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
from pathlib import Path

import asyncpg
import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.platform.config import Settings
from gateway.platform.redis.cluster import slot_of
from gateway.platform.services import Services
from ledger.ops import cluster as topology
from ledger.ops import demo
from ledger.ops.embedded import EmbeddedRedisCluster
from ledger.ops.verify import verify
from ledger.writer.writer import Writer
from tests.checkout import Terminal

pytestmark = pytest.mark.skipif(
    os.environ.get("CONVENIO_TEST_REDIS") != "cluster", reason="runs in ./test's cluster pass"
)

BEFORE, BEHIND, AFTER = 10, 5, 10  # sales before the replica falls behind, while it is, after the failover


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory):
    c = EmbeddedRedisCluster(Path(tmp_path_factory.mktemp("failover")), masters=3, replicas=1, appendfsync="off")
    c.start()
    yield c
    c.stop()


@dataclasses.dataclass
class Outcome:
    told: dict[str, str] = dataclasses.field(default_factory=dict)  # empenho -> the state the terminal was told
    unavailable: int = 0  # answers 503 along the way
    missing: list[str] = dataclasses.field(default_factory=list)  # told, yet not so in Redis afterwards
    drift: list[str] = dataclasses.field(default_factory=list)  # verify's lines


async def _until_answered(outcome: Outcome, send) -> httpx.Response:
    """The terminal sends the same request again (same Idempotency-Key) until it is answered."""
    for _ in range(200):
        r = await send()
        if r.status_code != 503:
            return r
        outcome.unavailable += 1
        await asyncio.sleep(0.1)
    raise AssertionError("never answered")


async def _sale(outcome: Outcome, terminal: Terminal, key: str, body: dict, commit: bool = True) -> None:
    r = await _until_answered(outcome, lambda: terminal.hold(1, body=body, idempotency_key=key))
    assert r.status_code == 201, r.text
    empenho = r.json()["id"]
    outcome.told[empenho] = "PENDING"
    if commit:
        r = await _until_answered(outcome, lambda: terminal.commit(empenho, coupon=f"CUPOM-{key}"))
        assert r.status_code == 200, r.text
        outcome.told[empenho] = "COMMITTED"


async def _through_failover(cluster: EmbeddedRedisCluster, settings: Settings) -> Outcome:
    from gateway.app import create_app

    outcome = Outcome()
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        svc = application.state.services
        stopping = asyncio.Event()
        writer = asyncio.create_task(Writer(svc, settings.database_url, "w1", rebalance_s=0.5).run(stopping))
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            terminal = Terminal(client, await demo.load(svc))
            seed = topology.node_of(cluster.url)[0]
            convenio_slot = slot_of(svc.keys.convenio(terminal.convenio))
            victim = next(m for m in await topology.masters(seed) if m.serves(convenio_slot))
            victim_port = int(victim.address.rsplit(":", 1)[1])
            replica = cluster.replica_of(victim_port)

            for n in range(BEFORE):
                await _sale(outcome, terminal, f"before-{n}", terminal.sale(1, await terminal.proof()))
            proofs = [await terminal.proof() for _ in range(BEHIND)]  # the replica has these

            # the replica falls behind: paused, its link cut (what was already on its way, in
            # its socket, it still reads when it wakes up)
            cluster.pause(replica)
            cluster.cut_replicas(victim_port)
            sent = []
            for n, proof in enumerate(proofs):
                body = terminal.sale(1, proof)
                r = await terminal.hold(1, body=body, idempotency_key=f"behind-{n}")
                if r.status_code == 201:
                    outcome.told[r.json()["id"]] = "PENDING"
                else:
                    assert r.status_code == 503, r.text
                    outcome.unavailable += 1
                    sent.append((f"behind-{n}", body))
            await asyncio.sleep(1.0)  # the writer reads what the master has meanwhile
            cluster.kill(victim_port)
            cluster.resume(replica)
            cluster.wait_failover(victim_port)
            # the dead node comes back (as a supervisor would start it) and rejoins as the new
            # master's replica: with REPLICA_ACKS=1 that shard decides nothing until it has one
            cluster.start_node(victim_port)
            cluster.wait_ready()

            for key, body in sent:  # the unanswered holds, sent again
                await _sale(outcome, terminal, key, body, commit=False)
            for n in range(AFTER):
                await _sale(outcome, terminal, f"after-{n}", terminal.sale(1, await terminal.proof()))

            shard = svc.keys.shard_of(terminal.convenio)
            for empenho, state in outcome.told.items():
                status = await svc.redis.hget(svc.keys.empenho(shard, empenho), "status")
                if status is None or status.decode() != state:
                    outcome.missing.append(empenho)
            conn = await asyncpg.connect(settings.database_url)
            try:
                report = await verify(svc, conn, wait_s=20)
            finally:
                await conn.close()
            outcome.drift = [d.line() for d in report.differences]
        stopping.set()
        await writer
    return outcome


@pytest.mark.parametrize("acks", [1, 0])
async def test_no_decision_the_terminal_was_told_about_is_lost_when_a_master_dies(
    cluster: EmbeddedRedisCluster, settings: Settings, blank_ledger_url: str, acks: int
) -> None:
    own = dataclasses.replace(
        settings, redis_url=cluster.url, database_url=blank_ledger_url, replica_acks=acks, replica_ack_timeout_ms=500
    )
    outcome = await _through_failover(cluster, own)
    print(
        f"\nREPLICA_ACKS={acks}: {len(outcome.told)} holds told, {len(outcome.missing)} of them missing after the"
        f" failover, {outcome.unavailable} answers 503; verify: {len(outcome.drift)} difference(s)"
    )
    for line in outcome.drift:
        print("  " + line)
    assert len(outcome.told) == BEFORE + BEHIND + AFTER
    if acks:
        assert outcome.missing == []
        assert outcome.drift == []
    else:
        # the holds placed while the replica was behind were told and are gone; verify says so
        assert len(outcome.missing) == BEHIND
        assert any("reserved" in line for line in outcome.drift)


async def test_a_node_reading_its_data_again_is_503_to_the_terminal_never_500(
    tmp_path: Path, settings: Settings, blank_ledger_url: str
) -> None:
    """A node loading its data (a master restarted, a replica taking in its master's copy)
    answers LOADING to every command on connections the gateway already has open."""
    from gateway.app import create_app

    slow_loading = (
        "--enable-debug-command", "local",  # DEBUG RELOAD: save, then read it all back
        "--key-load-delay", "400",  # µs a key: 20,000 keys, some 8 s of LOADING
        "--loading-process-events-interval-bytes", "1024",  # and answered at once meanwhile
    )  # fmt: skip
    cluster = EmbeddedRedisCluster(tmp_path / "loading", masters=1, appendfsync="off", options=slow_loading)
    cluster.start()
    try:
        cluster.wait_ready()
        own = dataclasses.replace(settings, redis_url=cluster.url, database_url=blank_ledger_url, redis_timeout_ms=500)
        application = create_app(own)
        async with application.router.lifespan_context(application):
            svc = application.state.services
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                terminal = Terminal(client, await demo.load(svc))
                filler = "{filler}" + svc.keys.prefix
                for chunk in range(20):
                    await svc.redis.mset({f"{filler}{chunk}:{i}": i for i in range(1000)})
                proof = await terminal.proof()  # and the gateway's connections are open
                (port,) = cluster.ports
                reload = asyncio.create_task(
                    asyncio.to_thread(subprocess.run, ["redis-cli", "-p", str(port), "DEBUG", "RELOAD"], timeout=60)
                )
                await asyncio.sleep(0.5)

                answers = [await terminal.check_password(), await terminal.limit(), await terminal.hold(1, proof=proof)]
                # the hot path's client: a call fails as a lost connection does (503) or is
                # answered; an error reply is never handed back as if it were the answer
                participant = svc.keys.participant(terminal.convenio, terminal.participant)
                outcomes = []
                for _ in range(4):  # each waits out its 0.5 s deadline: all within the loading
                    try:
                        reply = await svc.resp.command("HMGET", participant, "status")
                        outcomes.append(f"answered {type(reply).__name__}")
                    except (RedisConnectionError, RedisTimeoutError) as exc:
                        outcomes.append(f"raised {type(exc).__name__}")
                    await asyncio.sleep(0.05)
                still_loading = not reload.done()
                await reload
                cluster.wait_ready()

                assert still_loading
                assert [r.status_code for r in answers] == [503, 503, 503], [r.text for r in answers]
                assert {r.json()["error"]["code"] for r in answers} == {"SERVICE_UNAVAILABLE"}
                assert "raised BusyLoadingError" in outcomes, outcomes
                assert {o for o in outcomes if o.startswith("answered")} <= {"answered list"}, outcomes
                assert (await terminal.hold(1, proof=proof)).status_code == 201
    finally:
        cluster.stop()


async def test_a_worker_starting_while_its_seed_node_is_down_still_runs_on_the_cluster(
    tmp_path: Path, settings: Settings, blank_ledger_url: str
) -> None:
    """A gateway worker restarts while the node its REDIS_URL names is down. Asked alone, that
    node cannot say it belongs to a cluster; CONVENIO_REDIS_CLUSTER_NODES says so, and lists
    the nodes the slot map can be read from meanwhile."""
    from gateway.app import create_app

    cluster = EmbeddedRedisCluster(tmp_path / "seed", masters=2, appendfsync="always").start()
    try:
        cluster.wait_ready()
        own = dataclasses.replace(
            settings, redis_url=cluster.url, redis_cluster_nodes=cluster.nodes, database_url=blank_ledger_url
        )
        first = create_app(own)
        async with first.router.lifespan_context(first):
            creds = await demo.load(first.state.services)
        seed = topology.node_of(own.redis_url)[0]
        seed_port = int(seed.rsplit(":", 1)[1])
        cluster.kill(seed_port)

        alone = await Services.open(dataclasses.replace(own, redis_cluster_nodes=""))
        assert not alone.cluster  # what a worker told only REDIS_URL would have run as
        await alone.close()

        restarted = create_app(own)
        async with restarted.router.lifespan_context(restarted):
            assert restarted.state.services.cluster
            transport = httpx.ASGITransport(app=restarted)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                terminal = Terminal(client, creds)
                r = await terminal.limit()
                assert r.status_code in (200, 503), r.text  # half the slots have no master yet
                cluster.start_node(seed_port)
                cluster.wait_ready()
                available = await terminal.available()
                for _ in range(3):
                    r = await terminal.hold(1)
                    assert r.status_code == 201, r.text
                assert await terminal.available() == available - 3
    finally:
        cluster.stop()
