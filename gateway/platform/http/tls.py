"""HTTPS served by the gateway itself, and the store a terminal's client certificate was issued for,
from the TLS handshake to the API key's check (docs/tls.md).

uvicorn terminates TLS but puts nothing of the peer's certificate into the ASGI scope (it does not
implement the ASGI TLS extension). So with a client CA the server runs `ClientCertHttpToolsProtocol`:
once per connection, after the handshake, it reads the verified certificate from the transport's
SSL object and parses the store (and terminal) it names; every request's scope carries that as
`scope["extensions"][EXTENSION]`, and the edge holds the API key to it (`bind`). Plain HTTP, and
HTTPS without a client CA, run the usual protocol and never call `bind`: they pay nothing.

A certificate names its store in a subjectAltName URI, `urn:convenio:store:L001`, or one terminal
of it, `urn:convenio:store:L001:terminal:PDV01`; one certificate, one such URI. Subject names are
left to people (CN "Loja 1 PDV01"): a typed URI cannot be mistaken for a department's name.
"""

from __future__ import annotations

import dataclasses
import re
import ssl
from dataclasses import dataclass
from typing import Any

from starlette.types import Scope

from gateway.platform.config import Settings
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http.endpoint import Caller
from gateway.platform.http.header_limit import HeadLimitedHttpToolsProtocol
from gateway.platform.http.schemas import CODE_PATTERN

#: the scope extension that carries the connection's ClientCert
EXTENSION = "convenio.client_cert"
STORE_URI = "urn:convenio:store:"
_TERMINAL = ":terminal:"
_CODE = re.compile(CODE_PATTERN)


@dataclass(frozen=True)
class ClientCert:
    """What a verified client certificate says: the store and terminal it was issued for (None:
    it names none), or why it can stand for no store at all."""

    store: str | None = None
    terminal: str | None = None
    problem: str = ""


def client_cert(peercert: dict[str, Any]) -> ClientCert:
    """The store (and terminal) of a certificate as `SSLObject.getpeercert()` gives it."""
    named = {
        value for kind, value in peercert.get("subjectAltName", ()) if kind == "URI" and value.startswith(STORE_URI)
    }
    if not named:
        return ClientCert()
    if len(named) > 1:
        return ClientCert(problem="The client certificate names more than one store or terminal.")
    store, sep, terminal = named.pop()[len(STORE_URI) :].partition(_TERMINAL)
    if not _CODE.match(store) or (sep and not _CODE.match(terminal)):
        return ClientCert(problem="The client certificate's store URI is malformed.")
    return ClientCert(store, terminal or None)


def bind(key: Caller, scope: Scope) -> Caller:
    """The caller as the connection's certificate allows it to act, or STORE_NOT_ALLOWED.

    A key scoped to a store acts only through a certificate issued for that store (and, when both
    name a terminal, the same one); a store-wide key through a terminal's certificate acts for that
    terminal. An unscoped key through a store's certificate acts for that store, like a scoped key;
    through a certificate that names no store (back office, integrations) it stays unscoped.
    `Caller`s are frozen dataclasses (gateway/auth/apikeys.py ApiKey): narrowing is a copy."""
    cert = scope.get("extensions", {}).get(EXTENSION)
    if cert is None:  # a server started without the protocol below: refuse rather than trust
        raise ApiError(ErrorCode.UNAUTHORIZED, "A client certificate is required.")
    if cert.problem:
        raise ApiError(ErrorCode.STORE_NOT_ALLOWED, cert.problem)
    if key.store is None:
        if cert.store is None:
            return key
        return dataclasses.replace(key, store=cert.store, terminal=cert.terminal)  # type: ignore[type-var]
    if cert.store != key.store:
        issued = f"store {cert.store}" if cert.store else "no store"
        raise ApiError(
            ErrorCode.STORE_NOT_ALLOWED,
            f"The client certificate is issued for {issued}; this API key acts for store {key.store} only.",
        )
    if cert.terminal is None or cert.terminal == key.terminal:
        return key
    if key.terminal is None:
        return dataclasses.replace(key, terminal=cert.terminal)  # type: ignore[type-var]
    raise ApiError(
        ErrorCode.STORE_NOT_ALLOWED,
        f"The client certificate is issued for terminal {cert.terminal}; this API key acts for terminal "
        f"{key.terminal} only.",
    )


class ClientCertHttpToolsProtocol(HeadLimitedHttpToolsProtocol):
    """The gateway's HTTP protocol, with each request's scope carrying the connection's ClientCert.

    asyncio (and uvloop) call `connection_made` once the handshake is done, so the certificate is
    read and parsed once per connection; a request adds one small dict to its scope."""

    _client_cert: ClientCert | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        peercert = ssl_object.getpeercert() if ssl_object is not None else None
        self._client_cert = client_cert(peercert) if peercert else None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._client_cert is not None:
            self.scope["extensions"] = {EXTENSION: self._client_cert}


def server_context(settings: Settings) -> ssl.SSLContext:
    """The server's TLS context: its certificate and key, TLS 1.2 at least, and with a client CA a
    certificate it issued required of every client (a handshake without one is refused)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(settings.tls_cert, settings.tls_key or None)
    if settings.tls_client_ca:
        ctx.load_verify_locations(settings.tls_client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def context_factory(config: object, default: object) -> ssl.SSLContext:
    """uvicorn's `ssl_context_factory`, in each worker: the context of the settings in its
    environment (a function by name, so that uvicorn can hand it to worker processes)."""
    return server_context(Settings.from_env())


def protocol(settings: Settings) -> str:
    """The uvicorn HTTP protocol class to serve these settings with, by name."""
    if settings.tls_client_ca:
        return "gateway.platform.http.tls:ClientCertHttpToolsProtocol"
    return "gateway.platform.http.header_limit:HeadLimitedHttpToolsProtocol"
