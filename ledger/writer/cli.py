"""`convenio ledger`: the ledger writer as a long-running process, or one pass with --once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import click

from gateway.platform.services import Services
from ledger import console
from ledger.writer import writer


@click.command()
@click.option(
    "--consumer",
    default=lambda: f"{socket.gethostname()}-{os.getpid()}",
    show_default="host-pid",
    help="This writer's name in the consumer group; writers share the streams.",
)
@click.option("--once", is_flag=True, help="Store what the streams hold now, then exit.")
def ledger(consumer: str, once: bool) -> None:
    """Run the ledger writer until stopped: every shard's events into the Postgres journal and
    its projections, exactly once (SIGINT/SIGTERM stop it after the batch in hand). Several
    writers share the shards."""
    url = console.settings().database_url
    if once:
        stored = console.call(lambda svc: writer.drain(svc, url, consumer))
        click.echo(f"stored {stored} event(s); the ledger has caught up", err=True)
        return

    async def go(svc: Services) -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        click.echo(f"ledger writer {consumer} running", err=True)
        await writer.run(svc, url, consumer, stopping)

    console.call(go)
    click.echo(f"ledger writer {consumer} stopped", err=True)


COMMANDS = (ledger,)
