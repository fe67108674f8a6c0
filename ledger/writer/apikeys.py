"""The API keys' projection: each key (its digest, never the key), its permissions and revocation,
and the integration key's digest, so `convenio rebuild` can restore them."""

from __future__ import annotations

from typing import Any, ClassVar

import asyncpg

from ledger.writer import events
from ledger.writer.events import Event
from ledger.writer.fold import Projection, Table


class ApiKeysFold(Projection):
    name: ClassVar[str] = events.API_KEYS

    def __init__(self) -> None:
        self.api_keys = Table("api_keys", ("id",))
        self.integration = Table("integration_key", ("singleton",))

    def _apikey_created(self, e: Event, d: dict[str, Any]) -> None:
        row = {"digest": d["digest"], "permissions": d["permissions"], "name": d.get("name", ""), "created_at": e.at}
        self.api_keys.put((d["id"],), row, full=True)

    def _apikey_revoked(self, e: Event, d: dict[str, Any]) -> None:
        self.api_keys.put((d["id"],), {"revoked_at": e.at})

    def _integration_key_set(self, e: Event, d: dict[str, Any]) -> None:
        if d.get("digest"):
            self.integration.put((True,), {"digest": d["digest"], "updated_at": e.at}, full=True)

    async def write(self, conn: asyncpg.Connection) -> None:
        await self.api_keys.write(conn)
        await self.integration.write(conn)

    handlers: ClassVar[dict[str, Any]] = {
        "apikey.created": _apikey_created,
        "apikey.revoked": _apikey_revoked,
        "integration.key_set": _integration_key_set,
    }
