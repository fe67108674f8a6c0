"""The API keys' projection: each key (its digest, never the key), its permissions, scope (store,
terminal), lineage, rotation and revocation, and the integration key's digest; and the stores
with their terminals: so `convenio rebuild` can restore them."""

from __future__ import annotations

from typing import Any, ClassVar

import asyncpg

from gateway.platform.clock import from_ms
from ledger.writer import events
from ledger.writer.events import Event
from ledger.writer.fold import Projection, Table


def _or_none(value: Any) -> Any:
    return value or None


class ApiKeysFold(Projection):
    name: ClassVar[str] = events.API_KEYS

    def __init__(self) -> None:
        self.api_keys = Table("api_keys", ("id",))
        self.integration = Table("integration_key", ("singleton",))
        self.stores = Table("stores", ("code",))
        self.terminals = Table("store_terminals", ("store", "terminal"))

    def _apikey_created(self, e: Event, d: dict[str, Any]) -> None:
        row = {
            "digest": d["digest"],
            "permissions": d["permissions"],
            "name": d.get("name", ""),
            "created_at": e.at,
            "store": _or_none(d.get("store")),
            "terminal": _or_none(d.get("terminal")),
            "lineage": d.get("lineage") or d["id"],
            "previous": _or_none(d.get("previous")),
        }
        self.api_keys.put((d["id"],), row, full=True)

    def _apikey_rotated(self, e: Event, d: dict[str, Any]) -> None:
        self._apikey_created(e, d)
        self.api_keys.put((d["previous"],), {"expires_at": from_ms(d["previous_expires_at"])})

    def _store_saved(self, e: Event, d: dict[str, Any]) -> None:
        r = d["store"]
        row = {
            "name": r.get("name", ""),
            "time_zone": r.get("time_zone") or "America/Sao_Paulo",
            "status": r["status"],
            "created_at": from_ms(r["created_at"]),
            "updated_at": from_ms(r["updated_at"]),
        }
        self.stores.put((r["code"],), row, full=True)

    def _terminal_saved(self, e: Event, d: dict[str, Any]) -> None:
        self.terminals.put((d["store"], d["terminal"]), {"status": d["status"], "updated_at": e.at}, full=True)

    def _apikey_revoked(self, e: Event, d: dict[str, Any]) -> None:
        self.api_keys.put((d["id"],), {"revoked_at": e.at})

    def _integration_key_set(self, e: Event, d: dict[str, Any]) -> None:
        if d.get("digest"):
            self.integration.put((True,), {"digest": d["digest"], "updated_at": e.at}, full=True)

    async def write(self, conn: asyncpg.Connection) -> None:
        await self.api_keys.write(conn)
        await self.integration.write(conn)
        await self.stores.write(conn)  # before their terminals: the foreign key checks each statement
        await self.terminals.write(conn)

    handlers: ClassVar[dict[str, Any]] = {
        "apikey.created": _apikey_created,
        "apikey.revoked": _apikey_revoked,
        "apikey.rotated": _apikey_rotated,
        "store.saved": _store_saved,
        "terminal.saved": _terminal_saved,
        "integration.key_set": _integration_key_set,
    }
