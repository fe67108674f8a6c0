"""Conciliação: upload a terminal's closing file, run the reconciliation (a day, or the records
chosen), the records by state, date, store and terminal, a record's history, undo. Fechamento de
caixa: per store, terminal and day. The states in the seed's words: Não conciliado, Conciliado,
Divergente, Informativo, Falha."""

from __future__ import annotations

import datetime

from starlette.responses import Response

from gateway.auth.permissions import ADMIN, READ_REGISTRY
from gateway.backoffice import format as fmt
from gateway.backoffice.pages import Screen, back, screen
from gateway.platform.clock import local_today, utc
from ledger.reconciliation import reconcile as rec
from ledger.reconciliation.closing import cash_closing

ESTADOS = {
    rec.NOT_RECONCILED: "Não conciliado",
    rec.RECONCILED: "Conciliado",
    rec.DIVERGENT: "Divergente",
    rec.INFORMATIVE: "Informativo",
    rec.FAILED: "Falha",
}
MAX_FILE = 1024 * 1024  # what the form parser takes in one part


def _day(text: str) -> datetime.date | None:
    if not text:
        return None
    try:
        return fmt.parse_data(text)
    except ValueError:
        return None


@screen(*READ_REGISTRY)
async def records(s: Screen) -> Response:
    state = s.query("situacao") or None
    if state not in (None, *rec.STATES):
        state = None
    on, store, terminal = _day(s.query("data")), s.query("loja") or None, s.query("pdv") or None
    async with s.svc.ledger.connection() as conn:
        found, total = await rec.records(conn, state=state, on=on, store=store, terminal=terminal, limit=200)
    return s.render(
        "conciliacao.html",
        found=found,
        total=total,
        estados=ESTADOS,
        state=state or "",
        on=on.isoformat() if on else "",
        store=store or "",
        terminal=terminal or "",
        today=local_today(utc(s.svc.now_ms())).isoformat(),
        may_run=s.can(*ADMIN),
    )


@screen(*ADMIN)
async def upload(s: Screen) -> Response:
    file = s.uploads.get("arquivo")
    if file is None or not getattr(file, "filename", ""):
        return s.render("erro.html", 422, erro="Escolha o arquivo de fechamento (CSV).")
    data = await file.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        return s.render("erro.html", 413, erro="Arquivo maior que 1 MiB: divida-o por dia ou PDV.")
    async with s.svc.ledger.connection() as conn:
        try:
            done = await rec.import_file(conn, file.filename[:200], data, s.actor, utc(s.svc.now_ms()))
        except rec.BadFile as exc:
            return s.render("erro.html", 422, erro=f"Arquivo recusado, nada foi importado: {exc}")
    if done.already:
        return back("/conciliacao", f"O arquivo {done.name} já tinha sido importado: nada mudou.")
    return back("/conciliacao", f"Arquivo {done.name} importado: {done.lines} linha(s), {done.sales} venda(s).")


@screen(*ADMIN)
async def run(s: Screen) -> Response:
    on = _day(s.field("data")) or local_today(utc(s.svc.now_ms()))
    chosen = [int(x) for x in s.checked.get("registro", []) if x.isdigit()]
    async with s.svc.ledger.connection() as conn:
        try:
            if chosen:
                report, _, _ = await rec.run_selected(conn, sorted(set(chosen))[:1000], s.actor, utc(s.svc.now_ms()))
            else:
                report = await rec.run(conn, on, rec.DEFAULT_WINDOW, s.actor, utc(s.svc.now_ms()))
        except rec.ReconciliationError as exc:
            return s.render("erro.html", 422, erro=str(exc))
    changed = ", ".join(f"{n} {ESTADOS.get(k, k).lower()}" for k, n in report.changed.items()) or "nada mudou"
    return back(f"/conciliacao?data={on.isoformat()}", f"Conciliação executada: {changed}.")


@screen(*READ_REGISTRY)
async def history(s: Screen) -> Response:
    record_id = int(s.request.path_params["record"])
    async with s.svc.ledger.connection() as conn:
        try:
            record, steps = await rec.history(conn, record_id)
        except rec.ReconciliationError as exc:
            return s.render("erro.html", 404, erro=str(exc))
    return s.render("registro.html", r=record, steps=steps, estados=ESTADOS, may_undo=s.can(*ADMIN))


@screen(*ADMIN)
async def undo(s: Screen) -> Response:
    record_id = int(s.request.path_params["record"])
    async with s.svc.ledger.connection() as conn:
        try:
            await rec.undo(conn, record_id, s.actor, utc(s.svc.now_ms()), s.field("nota")[:256])
        except rec.ReconciliationError as exc:
            return s.render("erro.html", 422, erro=str(exc))
    return back(f"/conciliacao/{record_id}", "Conciliação desfeita.")


@screen(*READ_REGISTRY)
async def closing(s: Screen) -> Response:
    on = _day(s.query("data")) or local_today(utc(s.svc.now_ms()))
    store, terminal = s.query("loja") or None, s.query("pdv") or None
    async with s.svc.ledger.connection() as conn:
        report = (await cash_closing(conn, on, store, terminal)).as_dict()
        receivables = await rec.receivable_balances(conn)
    return s.render(
        "fechamento.html", r=report, on=on, store=store or "", terminal=terminal or "", receivables=receivables
    )
