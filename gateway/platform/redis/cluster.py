"""The hot path's client on a Redis Cluster: one pipelined `Resp` per master, each command sent to
the master of its key's hash slot.

Every hot-path command names its key first (`GET key`, `SET key ...`, `EVALSHA sha n key ...`),
and every key of one call carries one hash tag, so a call has exactly one slot. The slot map
comes from `CLUSTER SLOTS` of any node that answers, and is read again when the cluster says it
changed:

- `MOVED slot host:port`: the slot lives elsewhere now (a reshard finished, a replica was
  promoted). The slot is pointed at the new master at once, the whole map is read again in the
  background, and the command is sent there.
- `ASK slot host:port`: the slot is being moved and this key already left. The command goes to
  the target once, preceded by `ASKING` on the same connection; the map does not change.
- `TRYAGAIN` (a multi-key call whose keys are split by a move in progress), `CLUSTERDOWN`
  (a failover in progress) and `LOADING` (a node restarted, reading its data): wait a little and
  send it again (reading the map again after the last two); past the call's deadline it fails
  as a lost connection does, which the terminal sees as 503.
- The node's connection broke or it went silent: read the map again (from the other nodes) and
  send it again, until the call's deadline.

Sending a call again is safe because every script is idempotent by its arguments: a hold or a
credit hold replays its stored answer under its Idempotency-Key, a commit, cancel or return of a
hold already in that state answers as the first time did, the password check's scripts name the
check's protocol, and the plain commands (the Idempotency-Key claim `SET NX GET`, a proof's
`SET`/`DEL`, reads) give the same result twice. tests/test_cluster_failover.py kills a master
under a stream of holds and commits and counts each once, and restarts a node that is still
loading its data when the gateway reaches it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.platform import metrics
from gateway.platform.redis.resp import Resp, mark_and_wait

log = logging.getLogger("convenio.redis")
SLOTS = 16384
#: how long to wait before sending again a call the cluster answered TRYAGAIN or CLUSTERDOWN
_PAUSE_S = 0.05
#: error replies to a call that did not run, so sending it again is safe even when `resend` is
#: off: a multi-key call split by a move (TRYAGAIN), a failover under way (CLUSTERDOWN), a node
#: restarted and still reading its data (LOADING; a master that died comes back so, and the map
#: may still name it until the cluster tells it of its replica's promotion)
_NOT_RUN = ("TRYAGAIN", "CLUSTERDOWN", "LOADING")


def slot_of(key: str | bytes) -> int:
    return key_slot(key.encode() if isinstance(key, str) else key)


def _redirect(exc: ResponseError) -> tuple[str, int, str] | None:
    """("MOVED" | "ASK", slot, "host:port") of a redirection error, else None."""
    parts = str(exc).split(" ")
    if len(parts) == 3 and parts[0] in ("MOVED", "ASK"):
        address = parts[2]
        if address.startswith(":"):  # a node that does not know its own address: the one we asked
            address = "127.0.0.1" + address
        return parts[0], int(parts[1]), address
    return None


class ClusterResp:
    """The `Resp` interface (`command`, `evalsha`, `evalsha_acked`, `replicated`, `aclose`) over
    a cluster.

    `seeds` are the nodes to read the slot map from at first (the `REDIS_URL`'s node and
    CONVENIO_REDIS_CLUSTER_NODES'); later every master the map names is a seed too. `timeout`
    bounds a call from the moment it is made, redirections and retries included."""

    def __init__(
        self,
        seeds: list[tuple[str, int]],
        username: str | None = None,
        password: str | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.seeds = [f"{h}:{p}" for h, p in seeds]
        self.username, self.password = username, password
        self.timeout = timeout
        #: "host:port" -> its pipelined client
        self._nodes: dict[str, Resp] = {}
        #: slot -> "host:port" of its master, None until the map is read
        self._slots: list[str | None] = [None] * SLOTS
        self._refreshing: asyncio.Task | None = None
        #: how many times the map was read, and the calls sent again (for tests and metrics)
        self.refreshes = 0
        self.retries = 0

    @classmethod
    def from_url(cls, url: str, timeout: float = 2.0, more: list[tuple[str, int]] | None = None) -> ClusterResp:
        """On the cluster of the node `url` names (its credentials for every node); `more`
        nodes to read the slot map from when that one does not answer."""
        one = Resp.from_url(url, timeout=timeout)
        seeds = list(dict.fromkeys([(one.host, one.port), *(more or [])]))
        return cls(seeds, one.username, one.password, timeout)

    # -- the interface ------------------------------------------------------------------------------
    async def command(self, *args: str | bytes | int | float) -> Any:
        """A single-key command: its key is its first argument."""
        return await self._call(args[1], (args,))

    async def evalsha(self, sha: str, script: str, keys: list[str], args: list[Any], resend: bool = True) -> Any:
        """EVALSHA on the master of `keys[0]`. `resend=False`: a call whose connection broke
        after it was written is not sent again (the script may have run; see Scripts.NOT_RESENT)."""
        call = ("EVALSHA", sha, len(keys), *keys, *args)
        try:
            return await self._call(keys[0], (call,), resend=resend)
        except NoScriptError:  # a promoted replica has no script cache: load it there
            await self._call(keys[0], (("SCRIPT", "LOAD", script),))
            return await self._call(keys[0], (call,), resend=resend)

    async def evalsha_acked(
        self,
        sha: str,
        script: str,
        keys: list[str],
        args: list[Any],
        replicas: int,
        timeout_ms: int,
        resend: bool = True,
    ) -> tuple[Any, int]:
        """EVALSHA and then `WAIT replicas timeout_ms` on the same connection: the script's reply
        and how many replicas confirmed having its writes (and every write before it)."""
        call = ("EVALSHA", sha, len(keys), *keys, *args)
        wait = ("WAIT", replicas, timeout_ms)
        extra = timeout_ms / 1000
        try:
            reply, acked = await self._call(keys[0], (call, wait), extra_s=extra, resend=resend)
        except NoScriptError:
            await self._call(keys[0], (("SCRIPT", "LOAD", script),))
            reply, acked = await self._call(keys[0], (call, wait), extra_s=extra, resend=resend)
        return reply, acked

    async def replicated(self, mark: str, replicas: int, timeout_ms: int) -> int:
        """How many replicas of the master of `mark`'s slot have every write it made so far."""
        _, acked = await self._call(mark, mark_and_wait(mark, replicas, timeout_ms), extra_s=timeout_ms / 1000)
        return acked

    async def aclose(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
            self._refreshing = None
        nodes, self._nodes = self._nodes, {}
        for node in nodes.values():
            await node.aclose()

    def masters(self) -> list[str]:
        """The masters the slot map names, "host:port", sorted."""
        return sorted({a for a in self._slots if a is not None})

    # -- routing ------------------------------------------------------------------------------------
    def _node(self, address: str) -> Resp:
        node = self._nodes.get(address)
        if node is None:
            host, port = address.rsplit(":", 1)
            node = Resp(host, int(port), username=self.username, password=self.password, timeout=self.timeout)
            self._nodes[address] = node
        return node

    async def _call(
        self, key: str | bytes, commands: tuple[tuple[Any, ...], ...], extra_s: float = 0.0, resend: bool = True
    ) -> Any:
        """Send `commands` (one, or a script and its WAIT) to the master of `key`'s slot; the
        last command's reply, or with two commands both replies."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout + extra_s
        slot = slot_of(key)
        asking: str | None = None
        while True:
            address = asking or self._slots[slot]
            if address is None:
                await self._refresh()
                address = self._slots[slot]
                if address is None:
                    raise RedisConnectionError(f"No Redis Cluster node serves slot {slot}")
            node = self._node(address)
            sent = (("ASKING",), *commands) if asking else commands
            asking = None
            try:
                replies = await node.send_all(sent, extra_s=extra_s)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                if loop.time() + _PAUSE_S >= deadline or not resend:
                    self._refresh_soon()
                    raise
                log.warning("Redis node %s failed (%s); reading the slot map again", address, exc)
                self.retries += 1
                metrics.REDIS_RETRIES.inc()
                await asyncio.sleep(_PAUSE_S)
                await self._refresh(avoid=address)
                continue
            replies = replies[1:] if len(sent) > len(commands) else replies
            # an error reply is an exception object; LOADING's (BusyLoadingError) is no ResponseError
            error = next((r for r in replies if isinstance(r, Exception)), None)
            if error is None:
                return replies[0] if len(replies) == 1 else tuple(replies)
            redirect = _redirect(error) if isinstance(error, ResponseError) else None
            code = str(error).split(" ", 1)[0]
            if redirect is None and code not in _NOT_RUN:
                raise error
            if loop.time() >= deadline:
                # the cluster is still moving: unavailable for now (a 503), not an error of ours
                if isinstance(error, RedisConnectionError):
                    raise error
                raise RedisConnectionError(f"Redis Cluster still answers {code} for slot {slot}") from error
            self.retries += 1
            metrics.REDIS_RETRIES.inc()
            if redirect is None:  # nothing ran: a move, a failover or a node's restart in progress
                await asyncio.sleep(_PAUSE_S)
                if code in ("CLUSTERDOWN", "LOADING"):
                    await self._refresh(avoid=address)
            elif redirect[0] == "MOVED":
                self._slots[redirect[1]] = redirect[2]
                self._refresh_soon()
            else:
                asking = redirect[2]

    # -- the slot map -------------------------------------------------------------------------------
    def _refresh_soon(self) -> None:
        if self._refreshing is None:
            self._refreshing = asyncio.get_running_loop().create_task(self._read_map())
            self._refreshing.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task) -> None:
        if self._refreshing is task:
            self._refreshing = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not read the Redis Cluster slot map: %s", task.exception())

    async def _refresh(self, avoid: str | None = None) -> None:
        """Read the slot map now (joining a reading in progress)."""
        self._refresh_soon()
        task = self._refreshing
        if task is not None:
            await asyncio.wait({task})
            if not task.cancelled() and task.exception() is not None and avoid is None:
                raise task.exception()  # type: ignore[misc]

    async def _read_map(self) -> None:
        known = self.masters()
        candidates = list(dict.fromkeys([*known, *self.seeds, *self._nodes]))
        failures = []
        for address in candidates:
            try:
                shards = await self._node(address).command("CLUSTER", "SLOTS")
            except (RedisConnectionError, RedisTimeoutError, ResponseError) as exc:
                failures.append(f"{address}: {exc}")
                continue
            slots: list[str | None] = [None] * SLOTS
            for start, end, master, *_ in shards:
                host = master[0].decode() or address.rsplit(":", 1)[0]
                target = f"{host}:{master[1]}"
                for s in range(start, end + 1):
                    slots[s] = target
            self._slots = slots
            self.refreshes += 1
            for gone in set(self._nodes) - set(self.masters()) - set(self.seeds):
                await self._nodes.pop(gone).aclose()
            return
        raise RedisConnectionError("No Redis Cluster node answered CLUSTER SLOTS: " + "; ".join(failures))
