"""`/openapi.json`, generated from the endpoint table and the same msgspec types the code uses."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from gateway.platform.errors import ERRORS, ErrorCode
from gateway.platform.http.endpoint import Endpoint, Link
from gateway.platform.http.params import path_schema
from gateway.platform.http.schemas import ErrorBody, ErrorDetail, Health

_PARAM = re.compile(r"{(\w+)}")


def _error_responses(codes: tuple[ErrorCode, ...], detail_ref: dict[str, Any]) -> dict[str, Any]:
    """One response per status, its body the contract's error with `code` one of the codes this
    operation gives with that status (so a client, or a response validator, knows which)."""
    by_status: dict[int, list[ErrorCode]] = {}
    for code in codes:
        by_status.setdefault(ERRORS[code][0], []).append(code)
    return {
        str(status): {
            "description": "Error codes: " + ", ".join(f"`{c}`" for c in cs),
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["error"],
                        "properties": {
                            "error": {"allOf": [detail_ref, {"properties": {"code": {"enum": [str(c) for c in cs]}}}]}
                        },
                    }
                }
            },
        }
        for status, cs in sorted(by_status.items())
    }


def _links(links: tuple[Link, ...], names: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for link in links:
        assert link.to in names, f"a link to {link.to!r}, which no endpoint is"
        obj: dict[str, Any] = {"operationId": link.to}
        if link.parameters:
            obj["parameters"] = dict(link.parameters)
        if link.body is not None:
            obj["requestBody"] = link.body
        if link.description:
            obj["description"] = link.description
        out[link.name] = obj
    return out


def document(endpoints: tuple[Endpoint, ...], version: str) -> dict[str, Any]:
    types: list[type] = [ErrorBody, ErrorDetail, Health]
    for ep in endpoints:
        types += [t for t in (ep.request, ep.response) if t is not None]
    types = list(dict.fromkeys(types))
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    ref = dict(zip(types, schemas, strict=True))
    detail_ref = ref[ErrorDetail]
    names = {ep.name for ep in endpoints}

    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        params: list[dict[str, Any]] = [
            {"name": n, "in": "path", "required": True, "schema": path_schema(n)} for n in _PARAM.findall(ep.path)
        ]
        params += [
            {"name": h.name, "in": "header", "required": True, "description": h.description, "schema": h.schema}
            for h in ep.headers
        ]
        params += [
            {"name": q.name, "in": "query", "required": False, "description": q.description, "schema": q.schema}
            for q in ep.query
        ]
        success: dict[str, Any] = {
            str(status): {
                "description": "Success" if status == ep.status else "Success (also)",
                "content": {"application/json": {"schema": ref[ep.response]}},
            }
            for status in (ep.status, *ep.also)
        }
        if ep.links:
            success[str(ep.status)]["links"] = _links(ep.links, names)
        op: dict[str, Any] = {
            "operationId": ep.name,
            "summary": ep.summary,
            "tags": [ep.tag],
            "parameters": params,
            "responses": {**success, **_error_responses(ep.all_errors(), detail_ref)},
        }
        if ep.permissions:
            op["description"] = "Needs one of the permissions: " + ", ".join(
                str(int(p)) for p in sorted(ep.permissions)
            )
        if not ep.public:
            op["security"] = [{"apiKey": []}]
        if ep.request is not None:
            op["requestBody"] = {
                "required": not ep.body_optional,
                "content": {"application/json": {"schema": ref[ep.request]}},
            }
        paths.setdefault(ep.path, {})[ep.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Convênio authorization gateway",
            "version": version,
            "description": "Checkout terminals' API (contract v1) and the back-office registry. "
            'Amounts are integer centavos. Every error: {"error": {"code", "message", ...}}.',
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "API key"}},
        },
    }
