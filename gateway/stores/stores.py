"""The registry of stores and their terminals, kept in Redis (store_save.lua, terminal_save.lua,
which append store.saved / terminal.saved to the global stream; the ledger keeps them in
`stores` and `store_terminals`)."""

from __future__ import annotations

import msgspec

from gateway.platform.clock import rfc3339
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.redis.keys import GLOBAL
from gateway.platform.services import Services
from gateway.stores.schemas import StoreCreate, StoreList, StoreUpdate, StoreView, TerminalSaved, TerminalView


def _view(record: dict[str, str], terminals: dict[str, str]) -> StoreView:
    return StoreView(
        code=record["code"],
        name=record.get("name", ""),
        time_zone=record.get("time_zone", "America/Sao_Paulo"),
        status=record["status"],
        terminals=[TerminalView(code, status) for code, status in sorted(terminals.items())],
        created_at=rfc3339(int(record["created_at"])),
        updated_at=rfc3339(int(record["updated_at"])),
    )


def _text(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


async def save(svc: Services, code: str, body: StoreCreate | StoreUpdate, by: str = "") -> StoreView:
    create = isinstance(body, StoreCreate)
    fields = {name: getattr(body, name) for name in ("name", "time_zone", "status") if getattr(body, name) is not None}
    k = svc.keys
    res = await svc.run(
        "store_save",
        [k.store(code), k.stores(), k.events(GLOBAL)],
        ["create" if create else "update", svc.now_ms(), svc.protocol(), code, msgspec.json.encode(fields), by],
    )
    if not res["ok"]:
        raise ApiError(res["code"])
    return _view(res["r"], _text(await svc.redis.hgetall(k.store_terminals(code))))


async def save_terminal(svc: Services, store: str, terminal: str, status: str, by: str = "") -> TerminalSaved:
    k = svc.keys
    res = await svc.run(
        "terminal_save",
        [k.store(store), k.store_terminals(store), k.events(GLOBAL)],
        [svc.now_ms(), svc.protocol(), store, terminal, status, by],
    )
    if not res["ok"]:
        raise ApiError(res["code"])
    return TerminalSaved(store, terminal, status)


async def get(svc: Services, code: str) -> StoreView:
    async with svc.redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(svc.keys.store(code))
        pipe.hgetall(svc.keys.store_terminals(code))
        record, terminals = await pipe.execute()
    if not record:
        raise ApiError(ErrorCode.UNKNOWN_STORE)
    return _view(_text(record), _text(terminals))


async def listing(svc: Services) -> StoreList:
    codes = sorted(c.decode() for c in await svc.redis.smembers(svc.keys.stores()))
    return StoreList(stores=[await get(svc, code) for code in codes])
