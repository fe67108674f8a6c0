"""Baseline: a bare Starlette JSON echo, served exactly like the gateway (the framework's ceiling)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def echo(request: Request) -> Response:
    return Response(await request.body(), 201, media_type="application/json")


def create_app() -> Starlette:
    return Starlette(routes=[Route("/echo", echo, methods=["POST"])])
