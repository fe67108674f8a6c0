"""What a store-scoped API key may do: act for its store (and its terminal) only.

A key scoped to a store names it in every request that names a store (a hold, a return, a credit
hold): another store, or another terminal than the key's, is STORE_NOT_ALLOWED; so is a commit,
cancel or read of a hold placed at another store (the scripts check the hold's own store). A key
scoped to a store but no terminal may name any ACTIVE terminal registered for that store. The
store itself must be ACTIVE. The ledger therefore records, for a scoped key, the store and
terminal the key stands for: a body can name nothing else.

An unscoped key (back office, integrations, `convenio demo`'s) names any store and terminal, as
free text.

Store and terminal statuses are read from Redis and kept as long as API keys are
(CONVENIO_APIKEY_CACHE), so the check costs no round trip on the hot path most of the time and
blocking a store takes effect within the same time as revoking a key.
"""

from __future__ import annotations

import time

from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http.endpoint import Caller
from gateway.platform.services import Services

_seen: dict[tuple[str, str, str], tuple[float, bool]] = {}


async def _active(svc: Services, store: str, terminal: str) -> bool:
    """The store is ACTIVE and (when a terminal is named) so is that terminal of it."""
    key = (svc.keys.prefix, store, terminal)
    hit = _seen.get(key)
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        return hit[1]
    status = await svc.redis.hget(svc.keys.store(store), "status")
    ok = status == b"ACTIVE"
    if ok and terminal:
        ok = await svc.redis.hget(svc.keys.store_terminals(store), terminal) == b"ACTIVE"
    if len(_seen) > 10_000:
        _seen.clear()
    _seen[key] = (now + svc.settings.apikey_cache_s, ok)
    return ok


async def check(svc: Services, caller: Caller | None, store: str | None, terminal: str | None) -> None:
    """A request naming `store` and `terminal`: allowed for this caller, or STORE_NOT_ALLOWED."""
    if caller is None or caller.store is None:
        return
    if store != caller.store or (caller.terminal is not None and terminal != caller.terminal):
        raise ApiError(ErrorCode.STORE_NOT_ALLOWED)
    # a key for the whole store may name any of its registered terminals; one for a terminal, that one
    if not await _active(svc, caller.store, terminal or caller.terminal or ""):
        raise ApiError(ErrorCode.STORE_NOT_ALLOWED, "The store or terminal is not registered, or is blocked.")


def limits(caller: Caller | None) -> tuple[str, str]:
    """What a commit, cancel or read of a hold passes its script: the store (and terminal) the
    hold must have been placed at; "" for an unscoped caller."""
    if caller is None or caller.store is None:
        return "", ""
    return caller.store, caller.terminal or ""


def reading(caller: Caller | None, name: str, value: str | None) -> str | None:
    """The `store` or `terminal` filter of a read: a key scoped to them reads only its own (naming
    another is STORE_NOT_ALLOWED, on that field); any other caller what it asks for."""
    own = getattr(caller, name, None)
    if own is None:
        return value
    if value is not None and value != own:
        raise ApiError(ErrorCode.STORE_NOT_ALLOWED, f"This API key reads {name} {own} only.", field=name)
    return own


def owns(caller: Caller | None, store: str | None, terminal: str | None) -> bool:
    """Whether the caller may read a hold placed at this store and terminal."""
    if caller is None or caller.store is None:
        return True
    return store == caller.store and (caller.terminal is None or terminal == caller.terminal)
