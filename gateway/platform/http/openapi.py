"""`/openapi.json`, generated from the endpoint table and the same msgspec types the code uses."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from gateway.platform.errors import ERRORS, ErrorCode
from gateway.platform.http.endpoint import Endpoint
from gateway.platform.http.schemas import ErrorBody, Health

_PARAM = re.compile(r"{(\w+)}")


def _error_responses(codes: list[ErrorCode], ref: dict[str, Any]) -> dict[str, Any]:
    by_status: dict[int, list[ErrorCode]] = {}
    for code in codes:
        by_status.setdefault(ERRORS[code][0], []).append(code)
    return {
        str(status): {
            "description": "Error codes: " + ", ".join(f"`{c}`" for c in cs),
            "content": {"application/json": {"schema": ref}},
        }
        for status, cs in sorted(by_status.items())
    }


def document(endpoints: tuple[Endpoint, ...], version: str) -> dict[str, Any]:
    types: list[type] = [ErrorBody, Health]
    for ep in endpoints:
        types += [t for t in (ep.request, ep.response) if t is not None]
    types = list(dict.fromkeys(types))
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    ref = dict(zip(types, schemas, strict=True))
    error_ref = ref[ErrorBody]

    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        params: list[dict[str, Any]] = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in _PARAM.findall(ep.path)
        ]
        params += [
            {
                "name": n,
                "in": "header",
                "required": True,
                "description": d,
                "schema": {"type": "string", "minLength": 1, "maxLength": 128},
            }
            for n, d in ep.headers
        ]
        params += [
            {"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
            for n, d in ep.query
        ]
        codes = list(ep.errors) + [ErrorCode.INVALID_REQUEST, ErrorCode.SERVICE_UNAVAILABLE]
        codes.append(ErrorCode.HEADERS_TOO_LARGE)  # any request, before routing: gateway.header_limit
        if not ep.public:
            codes += [ErrorCode.UNAUTHORIZED, ErrorCode.FORBIDDEN]
        if ep.request is not None:
            codes.append(ErrorCode.BODY_TOO_LARGE)
        op: dict[str, Any] = {
            "operationId": ep.name,
            "summary": ep.summary,
            "tags": [ep.tag],
            "parameters": params,
            "responses": {
                **{
                    str(status): {
                        "description": "Success" if status == ep.status else "Success (also)",
                        "content": {"application/json": {"schema": ref[ep.response]}},
                    }
                    for status in (ep.status, *ep.also)
                },
                **_error_responses(codes, error_ref),
            },
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
