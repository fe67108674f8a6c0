"""O painel: today's sales and declines by reason (a bar chart: reasons read better as bars), the
ledger writers' lag, the last verify and the night's jobs."""

from __future__ import annotations

import datetime

from starlette.responses import Response

from gateway.backoffice import reads
from gateway.backoffice.pages import Screen, screen
from gateway.platform.clock import day_bounds, local_today, utc
from gateway.platform.streams import ledger_lag
from ledger.month import jobs


def bars(rows: list[tuple[str, int]], width: int = 520, bar: int = 22) -> dict:
    """An SVG bar chart's geometry, drawn by the template (no JavaScript)."""
    top = max((n for _, n in rows), default=0) or 1
    label_w = 230
    return {
        "width": width,
        "height": max(1, len(rows)) * (bar + 6) + 6,
        "bars": [
            {"y": 6 + i * (bar + 6), "w": max(2, int((width - label_w - 50) * n / top)), "label": label, "n": n}
            for i, (label, n) in enumerate(rows)
        ],
        "label_w": label_w,
        "bar": bar,
    }


@screen()
async def home(s: Screen) -> Response:
    today = local_today(utc(s.svc.now_ms()))
    start, end = day_bounds(today)
    figures = await reads.today(s.svc, start, end)
    try:
        lag = await ledger_lag(s.svc)
    except Exception:  # noqa: BLE001 - the panel still shows the rest with Redis away
        lag = None
    async with s.svc.ledger.connection() as conn:
        verify, recent = await jobs.list_runs(conn, "verify", 1), await jobs.list_runs(conn, None, 12)
    return s.render(
        "painel.html",
        today=today,
        f=figures,
        chart=bars(figures["declines"][:10]),
        lag=lag,
        verify=verify[0] if verify else None,
        jobs=recent,
        yesterday=today - datetime.timedelta(days=1),
    )
