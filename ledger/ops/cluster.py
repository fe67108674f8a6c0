"""Where the shards live on a Redis Cluster, and moving them between masters while the gateway
serves (`convenio cluster status | spread | move`).

Each shard is one hash tag (`{s3}`), so one slot: all of a shard's convênios, their participants,
holds, proofs and its event stream move together. A move is Redis Cluster's live resharding of
that one slot: the target is told to import it, the source that it is migrating, the slot's keys
are copied over in batches (MIGRATE), and every master learns the new owner. Meanwhile the
gateway's client follows `ASK` for keys already moved and `MOVED` once the slot has changed
hands (gateway/platform/redis/cluster.py); a script whose keys are split at that moment gets
`TRYAGAIN` and is sent again. `bench/cluster.py` measures what a move costs the holds in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis

from gateway.platform.redis.cluster import slot_of
from gateway.platform.redis.keys import GLOBAL, Keys


@dataclass
class Master:
    address: str  # host:port
    node_id: str
    slots: list[tuple[int, int]] = field(default_factory=list)

    def serves(self, slot: int) -> bool:
        return any(a <= slot <= b for a, b in self.slots)


def node_of(url: str) -> tuple[str, str | None]:
    """A `REDIS_URL`'s node as "host:port" (what the functions here take as a seed), and its
    password."""
    u = urlsplit(url)
    return f"{u.hostname or '127.0.0.1'}:{u.port or 6379}", unquote(u.password) if u.password else None


def _client(address: str, password: str | None = None) -> Redis:
    host, port = address.rsplit(":", 1)
    return Redis(host=host, port=int(port), password=password, socket_timeout=10, socket_connect_timeout=5)


async def masters(seed: str, password: str | None = None) -> list[Master]:
    """The cluster's masters and their slot ranges, as `seed` (host:port) sees them."""
    r = _client(seed, password)
    try:
        found: dict[str, Master] = {}
        for start, end, master, *_ in await r.execute_command("CLUSTER", "SLOTS"):
            host = master[0].decode() if isinstance(master[0], bytes) else master[0]
            address = f"{host or seed.rsplit(':', 1)[0]}:{master[1]}"
            node_id = master[2].decode() if isinstance(master[2], bytes) else master[2]
            found.setdefault(address, Master(address, node_id)).slots.append((int(start), int(end)))
        return sorted(found.values(), key=lambda m: m.address)
    finally:
        await r.aclose()


def shard_slots(keys: Keys) -> dict[str, int]:
    """Each shard's name ("0".."N-1", "g") → its slot."""
    names = [str(s) for s in range(keys.shards)] + [GLOBAL]
    return {name: slot_of(keys.tag(name if name == GLOBAL else int(name))) for name in names}


def placement(keys: Keys, ms: list[Master]) -> dict[str, str]:
    """Each shard → the address of the master serving its slot now."""
    out = {}
    for name, slot in shard_slots(keys).items():
        out[name] = next((m.address for m in ms if m.serves(slot)), "?")
    return out


def spread_plan(keys: Keys, ms: list[Master]) -> list[tuple[str, int, str, str]]:
    """The fewest moves after which the masters hold the numbered shards evenly (their counts
    differ by at most one): (shard, slot, from, to) per move. The global tag stays put."""
    where = placement(keys, ms)
    numbered = [s for s in where if s != GLOBAL]
    count = {m.address: 0 for m in ms}
    for s in numbered:
        count[where[s]] += 1
    share, extra = divmod(len(numbered), len(ms))
    # the masters listed first get the one extra shard, those already holding the most first
    order = sorted(count, key=lambda a: -count[a])
    quota = {a: share + (1 if i < extra else 0) for i, a in enumerate(order)}
    moves = []
    for s in numbered:
        source = where[s]
        if count[source] > quota[source]:
            target = min((a for a in count if count[a] < quota[a]), key=lambda a: count[a], default=None)
            if target is None:
                break
            count[source] -= 1
            count[target] += 1
            moves.append((s, shard_slots(keys)[s], source, target))
    return moves


async def keys_in_slot(master: Master, slot: int, password: str | None = None) -> int:
    """How many keys `master` holds in `slot` (CLUSTER COUNTKEYSINSLOT)."""
    r = _client(master.address, password)
    try:
        return int(await r.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))
    finally:
        await r.aclose()


async def move_slot(
    slot: int,
    source: Master,
    target: Master,
    everyone: list[Master],
    password: str | None = None,
    batch: int = 100,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Move one slot from `source` to `target` live; returns how many keys moved."""
    src, dst = _client(source.address, password), _client(target.address, password)
    moved = 0
    try:
        await dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        await src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
        host, port = target.address.rsplit(":", 1)
        while True:
            names = await src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not names:
                break
            auth = ["AUTH", password] if password else []
            await src.execute_command("MIGRATE", host, int(port), "", 0, 10_000, "REPLACE", *auth, "KEYS", *names)
            moved += len(names)
            if progress:
                progress(moved)
        # the target first: from then on it answers for the slot, whatever the others still think
        for node in [target, source, *[m for m in everyone if m.address not in (source.address, target.address)]]:
            r = _client(node.address, password)
            try:
                await r.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
            finally:
                await r.aclose()
    finally:
        await src.aclose()
        await dst.aclose()
    return moved
