"""The back office's endpoints of stores and their terminals."""

from __future__ import annotations

from gateway.auth.permissions import ADMIN, READ_REGISTRY
from gateway.platform.errors import ErrorCode
from gateway.platform.http.endpoint import Call, Endpoint, Link, Reply, who
from gateway.stores import stores
from gateway.stores.schemas import StoreCreate, StoreList, StoreUpdate, StoreView, TerminalSave, TerminalSaved

E = ErrorCode
STORE = "/v1/stores/{store}"
_READ = Link("read", "store_get", (("store", "$response.body#/code"),), description="The store and its terminals.")


async def create_store(c: Call) -> Reply:
    return Reply(await stores.save(c.svc, c.body.code, c.body, by=who(c)), 201)


async def update_store(c: Call) -> Reply:
    return Reply(await stores.save(c.svc, c.path["store"], c.body, by=who(c)))


async def get_store(c: Call) -> Reply:
    return Reply(await stores.get(c.svc, c.path["store"]))


async def list_stores(c: Call) -> Reply:
    return Reply(await stores.listing(c.svc))


async def save_terminal(c: Call) -> Reply:
    saved = await stores.save_terminal(c.svc, c.path["store"], c.path["terminal"], c.body.status, by=who(c))
    return Reply(saved)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/v1/stores",
        "store_create",
        "Register a store (loja): its code, name and time zone (its business days).",
        create_store,
        StoreView,
        status=201,
        permissions=ADMIN,
        request=StoreCreate,
        tag="back-office",
        errors=(E.STORE_EXISTS,),
        links=(_READ,),
    ),
    Endpoint(
        "GET",
        "/v1/stores",
        "store_list",
        "Every store with its terminals.",
        list_stores,
        StoreList,
        permissions=READ_REGISTRY,
        tag="back-office",
    ),
    Endpoint(
        "GET",
        STORE,
        "store_get",
        "A store with its terminals.",
        get_store,
        StoreView,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.UNKNOWN_STORE,),
    ),
    Endpoint(
        "PATCH",
        STORE,
        "store_update",
        "Change a store's name, time zone or status (a BLOCKED store's keys can do nothing).",
        update_store,
        StoreView,
        permissions=ADMIN,
        request=StoreUpdate,
        tag="back-office",
        errors=(E.UNKNOWN_STORE,),
        links=(_READ,),
    ),
    Endpoint(
        "PUT",
        STORE + "/terminals/{terminal}",
        "terminal_save",
        "Register a store's terminal (PDV), or block or unblock it.",
        save_terminal,
        TerminalSaved,
        permissions=ADMIN,
        request=TerminalSave,
        body_optional=True,
        tag="back-office",
        errors=(E.UNKNOWN_STORE,),
        links=(Link("store", "store_get", (("store", "$response.body#/store"),)),),
    ),
)
