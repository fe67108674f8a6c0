"""`convenio cluster`: which master holds which shard, spreading the shards evenly over the
masters, and moving one shard to another master, live (ledger/ops/cluster.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

import click

from gateway.platform.redis.keys import Keys
from gateway.platform.services import is_cluster
from ledger import console
from ledger.ops import cluster as topology


def _seed() -> tuple[str, str | None, Keys]:
    settings = console.settings()
    if not console.run(is_cluster(settings.redis_url)):
        console.fail(f"{urlsplit(settings.redis_url).netloc} is not a Redis Cluster node (INFO cluster)")
    seed, password = topology.node_of(settings.redis_url)
    return seed, password, Keys(settings.key_prefix, settings.shards)


@click.group("cluster")
def cluster() -> None:
    """The shards on a Redis Cluster (REDIS_URL names any of its nodes)."""


@cluster.command("status")
def status() -> None:
    """Each master, its slots, and the shards it holds."""
    seed, password, keys = _seed()
    ms = console.run(topology.masters(seed, password))
    where = topology.placement(keys, ms)
    for m in ms:
        held = sorted((s for s, a in where.items() if a == m.address), key=lambda s: (s == "g", s.zfill(4)))
        ranges = ",".join(f"{a}-{b}" for a, b in m.slots)
        click.echo(f"{m.address}  slots {ranges}  shards {len(held)}: {' '.join(held)}")


@cluster.command("spread")
@click.option("--dry-run", is_flag=True, help="Print the moves, make none.")
def spread(dry_run: bool) -> None:
    """Move shards until every master holds the same number (within one), live."""
    seed, password, keys = _seed()
    ms = console.run(topology.masters(seed, password))
    plan = topology.spread_plan(keys, ms)
    if not plan:
        click.echo("the shards are already spread evenly", err=True)
        return
    by_address = {m.address: m for m in ms}
    for shard, slot, source, target in plan:
        click.echo(f"shard {shard} (slot {slot}): {source} -> {target}", err=True)
        if not dry_run:
            n = console.run(topology.move_slot(slot, by_address[source], by_address[target], ms, password))
            click.echo(f"  moved {n} keys", err=True)
    click.echo(f"{len(plan)} move(s){' planned' if dry_run else ' done'}")


@cluster.command("move")
@click.argument("shard")
@click.argument("target", metavar="HOST:PORT")
def move(shard: str, target: str) -> None:
    """Move one shard (0..N-1, or g) to the master at HOST:PORT, live."""
    seed, password, keys = _seed()
    ms = console.run(topology.masters(seed, password))
    slots = topology.shard_slots(keys)
    if shard not in slots:
        console.fail(f"no shard {shard}: the shards are 0..{keys.shards - 1} and g")
    by_address = {m.address: m for m in ms}
    if target not in by_address:
        console.fail(f"{target} is not a master: {', '.join(by_address)}")
    source = next(m for m in ms if m.serves(slots[shard]))
    if source.address == target:
        click.echo(f"shard {shard} is already on {target}", err=True)
        return
    n = console.run(topology.move_slot(slots[shard], source, by_address[target], ms, password))
    click.echo(f"shard {shard} (slot {slots[shard]}): {source.address} -> {target}, {n} keys moved")


COMMANDS = (cluster,)
