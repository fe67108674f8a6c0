"""The back office's window on the reconciliation (docs/reconciliation.md, "Over HTTP"): closing files
uploaded, runs of the look-back window or of selected records, the records and their histories,
undo, the cash-closing report and the receivables; and the closings terminals post at the end of a
shift, which reconcile like imported files. The same functions as `convenio reconcile` and
`convenio closing`: these handlers only decode, call one of them and encode."""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from gateway.auth.permissions import ADMIN, MOVEMENTS_READ, Permission
from gateway.platform import clock
from gateway.platform.clock import local_today, utc
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http import params
from gateway.platform.http.endpoint import Call, Endpoint, Link, Reply, who
from gateway.platform.http.schemas import PLAIN, Frozen, Out
from gateway.stores import scope
from ledger.reconciliation import reconcile as rec
from ledger.reconciliation.closing import cash_closing

E = ErrorCode
#: who may post a terminal's closing: the terminal's own key (3185) or the back office
CLOSING_POST = frozenset({Permission.EMPENHO, Permission.ADMIN})
MAX_PROBLEMS = 200  # bad lines named in a refusal; the message says how many in all
_RECORD_ID = re.compile(r"^[1-9][0-9]{0,17}$")  # inside Postgres's bigint

# --- bodies ---------------------------------------------------------------------------------------
FileName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f/\\]+(?!\n)$",
        description="The file's name, for operators (no path).",
        examples=["fechamento-LOJA01-PDV01-2025-11-17.csv"],
    ),
]
LineText = Annotated[str, Meta(max_length=rec.MAX_TEXT, pattern=PLAIN)]
Day = Annotated[str, Meta(pattern=f"^{params.DATE_PATTERN}(?!\\n)$", examples=["2025-11-17"])]


class FileUpload(Frozen):
    """A closing file: its CSV text as `content` (the whole request at most 64 KiB)."""

    name: FileName
    content: Annotated[str, Meta(description="The CSV text: header line, then one sale or return per line.")]


class RunRequest(Frozen):
    """A run of the look-back window as of `date` (default today), or of the `records` selected."""

    date: Day | None = None
    window: Annotated[int, Meta(ge=0, le=366, description="Days of look-back (default 3).")] | None = None
    records: (
        Annotated[
            list[Annotated[int, Meta(ge=1, le=params.MAX_SEQ)]],
            Meta(min_length=1, max_length=rec.MAX_SELECTED, description="Reconcile these records only."),
        ]
        | None
    ) = None


class UndoRequest(Frozen):
    note: Annotated[str, Meta(max_length=rec.MAX_NOTE, pattern=PLAIN, description="Why: kept in the history.")] = ""


class ClosingLine(Frozen):
    """A line of the closing, as the CSV has it without store, terminal and date."""

    convenio: LineText
    amount: Annotated[int, Meta(ge=-rec.MAX_AMOUNT, le=rec.MAX_AMOUNT, description="Centavos; a return negative.")]
    coupon: LineText = ""
    participant: LineText = ""
    type: Literal["SALE", "RETURN", "ADJUSTMENT", "INFO"] = "SALE"
    # "return" is a Python keyword: the field is `return` on the wire
    return_id: Annotated[LineText, Meta(description="A RETURN line's return id.")] = msgspec.field(
        default="", name="return"
    )


class ClosingPost(Frozen):
    """The closing of one store, terminal and business day: every convênio line of the shift."""

    lines: Annotated[
        list[ClosingLine],
        Meta(
            max_length=300,
            description="[] for a day without lines; a longer day goes as a file (POST /v1/reconciliation/files).",
        ),
    ]


# --- answers --------------------------------------------------------------------------------------
class ImportReport(Out):
    file: int
    name: str
    sha256: str
    already_imported: bool
    imported_at: str
    imported_by: str
    lines: int
    sales: int
    informative: int
    sales_amount: int
    returns: int
    returns_amount: int


class ClosingPosted(Out):
    """The posted closing, as the file it was imported as; the same post answers the same."""

    store: str
    terminal: str
    date: str
    file: int
    name: str
    sha256: str
    posted_at: str
    posted_by: str
    lines: int
    sales: int
    informative: int
    sales_amount: int
    returns: int
    returns_amount: int


class RecordView(Out):
    id: int
    origin: Literal["FILE", "LEDGER"]
    type: str
    store: str
    terminal: str
    date: str
    coupon: str
    convenio: str
    participant: str
    amount: int
    state: Literal["NOT_RECONCILED", "RECONCILED", "DIVERGENT", "INFORMATIVE", "FAILED"]
    note: str
    window_from: str
    file: int | None = None
    file_name: str | None = None
    line: int | None = None
    empenho: str | None = None
    ledger_amount: int | None = None
    missing: Literal["LEDGER", "FILE"] | None = None
    partner: int | None = None
    last_run_on: str | None = None
    updated_at: str | None = None
    # the wire name is `return`, a keyword in Python
    return_id: str | None = msgspec.field(default=None, name="return")


class RecordList(Out):
    records: list[RecordView]
    next_after: int | None = None


class HistoryEntry(Out):
    seq: int
    at: str
    by: str
    state: str
    note: str


class RecordHistory(Out):
    record: RecordView
    history: list[HistoryEntry]


class Undone(Out):
    undone: list[RecordView]


class RunView(Out):
    date: str
    window: int
    window_start: str
    by: str
    file_records_tried: int
    ledger_sales_seen: int
    ledger_returns_seen: int
    changed: dict[str, int]
    ledger_side_created: int
    receivable_movements: int
    receivable_amount: int
    window_states: dict[str, int]
    records: list[RecordView] | None = None  # a run of selected records: each after the run
    skipped: list[RecordView] | None = None  # ... and those in no state to try


class TotalsView(Out):
    sales: int
    sales_amount: int
    reversals: int
    reversals_amount: int
    returns: int
    returns_amount: int
    pool_returns: int
    pool_returns_amount: int
    credit_returns: int
    credit_returns_amount: int
    net_amount: int


class ConvenioTotals(TotalsView):
    convenio: str


class ParticipantTotals(TotalsView):
    convenio: str
    participant: str


class ReturnTakenView(Out):
    id: str
    at: str
    amount: int
    refund: Literal["POOL", "CREDIT"]
    empenho: str
    coupon: str
    convenio: str
    participant: str
    sale_store: str
    sale_terminal: str
    sale_date: str
    credit_reference: str | None = None
    reason: str | None = None


class FileLines(Out):
    file_lines: int
    file_amount: int
    states: dict[str, int]


class TerminalClosingView(Out):
    store: str
    terminal: str
    totals: TotalsView
    convenios: list[ConvenioTotals]
    participants: list[ParticipantTotals]
    returns: list[ReturnTakenView]
    reconciliation: FileLines
    return_reconciliation: FileLines


class CashClosingView(Out):
    """The cash-closing report (fechamento de caixa) of a business day, per store and terminal."""

    date: str
    totals: TotalsView
    terminals: list[TerminalClosingView]
    store: str | None = None
    terminal: str | None = None


class ReceivableBalance(Out):
    convenio: str
    movements: int
    balance: int


class ReceivableBalances(Out):
    convenios: list[ReceivableBalance]


class ReceivableMovement(Out):
    seq: int
    record: int
    kind: str
    amount: int
    balance: int
    participant: str
    date: str
    store: str
    terminal: str
    coupon: str
    at: str
    by: str
    empenho: str | None = None
    return_id: str | None = msgspec.field(default=None, name="return")
    file: int | None = None
    line: int | None = None


class ReceivableAccount(Out):
    """A convênio's financial account: every movement, oldest first, with the balance after it."""

    convenio: str
    balance: int
    movements: list[ReceivableMovement]


# --- handlers -------------------------------------------------------------------------------------
def _record(r: rec.Record) -> RecordView:
    return msgspec.convert(r.as_dict(), RecordView)


def _refused(exc: rec.BadFile, where: str = "line") -> ApiError:
    problems = [p.as_dict() for p in exc.problems[:MAX_PROBLEMS]]
    more = f" ({len(exc.problems) - MAX_PROBLEMS} more not listed)" if len(exc.problems) > MAX_PROBLEMS else ""
    return ApiError(E.RECONCILIATION_FILE_INVALID, f"{exc}{more}; `problems` names each {where}", problems=problems)


def _now(c: Call) -> datetime.datetime:
    return utc(c.svc.now_ms())


def _record_id(c: Call) -> int:
    raw = c.path["id"]
    if not _RECORD_ID.fullmatch(raw):  # no record has such an id
        raise ApiError(E.UNKNOWN_RECONCILIATION_RECORD)
    return int(raw)


async def upload_file(c: Call) -> Reply:
    async with c.svc.ledger.connection() as conn:
        try:
            done = await rec.import_file(conn, c.body.name, c.body.content.encode(), who(c), _now(c))
        except rec.BadFile as exc:
            raise _refused(exc) from None
    return Reply(msgspec.convert(done.as_dict(), ImportReport), 200 if done.already else 201)


async def run_reconciliation(c: Call) -> Reply:
    body: RunRequest = c.body
    now = _now(c)
    if body.records is not None:
        if body.date is not None or body.window is not None:
            raise params.invalid("records", "`records` runs the selected records: give no `date` nor `window` with it.")
        async with c.svc.ledger.connection() as conn:
            try:
                report, after, skipped = await rec.run_selected(conn, body.records, who(c), now)
            except rec.UnknownRecord as exc:
                raise ApiError(E.UNKNOWN_RECONCILIATION_RECORD, str(exc)) from None
        view = {**report.as_dict(), "records": [r.as_dict() for r in after], "skipped": [r.as_dict() for r in skipped]}
        return Reply(msgspec.convert(view, RunView))
    try:
        on = clock.parse_date(body.date) if body.date is not None else local_today(now)
    except ValueError as exc:
        raise params.invalid("date", str(exc)) from None
    if on > local_today(now):
        raise params.invalid("date", f"{on} has not come yet in America/Sao_Paulo (today is {local_today(now)}).")
    window = rec.DEFAULT_WINDOW if body.window is None else body.window
    async with c.svc.ledger.connection() as conn:
        report = await rec.run(conn, on, window, who(c), now)
    return Reply(msgspec.convert(report.as_dict(), RunView))


def _own_store(c: Call) -> tuple[str | None, str | None]:
    return (
        scope.reading(c.key, "store", params.code(c, "store")),
        scope.reading(c.key, "terminal", params.code(c, "terminal")),
    )


async def list_records(c: Call) -> Reply:
    state = params.choice(c, "state", rec.STATES)
    on, start, end = params.day(c, "date"), params.day(c, "from"), params.day(c, "to")
    if on is not None:  # one day, within from..to when they are given too
        start, end = max(on, start or on), min(on, end or on)
    store, terminal = _own_store(c)
    async with c.svc.ledger.connection() as conn:
        found, after = await rec.page(
            conn,
            convenio=params.code(c, "convenio"),
            state=state,
            start=start,
            end=end,
            store=store,
            terminal=terminal,
            after=params.after_seq(c),
            limit=params.page_size(c),
        )
    return Reply(RecordList([_record(r) for r in found], after))


async def get_record(c: Call) -> Reply:
    record_id = _record_id(c)
    async with c.svc.ledger.connection() as conn:
        try:
            record, rows = await rec.history(conn, record_id)
        except rec.UnknownRecord:
            raise ApiError(E.UNKNOWN_RECONCILIATION_RECORD) from None
    if not scope.owns(c.key, record.store, record.terminal):
        raise ApiError(E.STORE_NOT_ALLOWED)
    return Reply(RecordHistory(_record(record), [msgspec.convert(h, HistoryEntry) for h in rows]))


async def undo_record(c: Call) -> Reply:
    record_id = _record_id(c)
    note = c.body.note if c.body is not None else ""
    async with c.svc.ledger.connection() as conn:
        try:
            undone = await rec.undo(conn, record_id, who(c), _now(c), note)
        except rec.UnknownRecord:
            raise ApiError(E.UNKNOWN_RECONCILIATION_RECORD) from None
        except rec.NotUndoable as exc:
            raise ApiError(E.RECONCILIATION_NOT_UNDOABLE, f"{exc}.") from None
    return Reply(Undone([_record(r) for r in undone]))


async def get_cash_closing(c: Call) -> Reply:
    on = params.day(c, "date") or local_today(_now(c))
    store, terminal = _own_store(c)
    async with c.svc.ledger.connection() as conn:
        report = await cash_closing(conn, on, store, terminal)
    return Reply(msgspec.convert(report.as_dict(), CashClosingView))


async def list_receivables(c: Call) -> Reply:
    async with c.svc.ledger.connection() as conn:
        balances = await rec.receivable_balances(conn)
    return Reply(msgspec.convert({"convenios": balances}, ReceivableBalances))


async def get_receivables(c: Call) -> Reply:
    async with c.svc.ledger.connection() as conn:
        try:
            account = await rec.receivables(conn, c.path["convenio"])
        except rec.UnknownConvenio:
            raise ApiError(E.UNKNOWN_CONVENIO) from None
    return Reply(msgspec.convert(account, ReceivableAccount))


async def post_closing(c: Call) -> Reply:
    store, terminal = c.path["store"], c.path["terminal"]
    day = clock.parse_date(c.path["date"])  # the edge checked its pattern: a day of the calendar
    await scope.check(c.svc, c.key, store, terminal)
    lines = [rec.PostedLine(x.coupon, x.convenio, x.participant, x.amount, x.type, x.return_id) for x in c.body.lines]
    async with c.svc.ledger.connection() as conn:
        try:
            done = await rec.post_closing(conn, store, terminal, day, lines, who(c), _now(c))
        except rec.BadFile as exc:
            raise _refused(exc, "line (line 2 is lines[0])") from None
        except rec.ClosingConflict as exc:
            raise ApiError(E.CLOSING_CONFLICT, f"{exc}.") from None
    view: dict[str, Any] = done.as_dict()
    view.update(store=store, terminal=terminal, date=day.isoformat(), posted_at=view["imported_at"])
    view["posted_by"] = view["imported_by"]
    return Reply(msgspec.convert(view, ClosingPosted))


# --- the table ------------------------------------------------------------------------------------
_FILTERS = (
    params.choice_param("state", rec.STATES, "Only records in this state."),
    params.day_param("date", "Only records of this business day."),
    params.day_param("from", "Only records of this business day or later."),
    params.day_param("to", "Only records of this business day or earlier."),
    params.code_param("convenio", "Only this convênio's records."),
    params.code_param("store", "Only this store's records."),
    params.code_param("terminal", "Only this terminal's records."),
    params.after_seq_param("Continue after this record id (the previous page's next_after)."),
    params.page_size_param(),
)
_RECORD = (("id", "$response.body#/records/0/id"),)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/v1/reconciliation/files",
        "reconciliation_file_upload",
        "Import a closing file (fechamento de caixa), its CSV text in `content` (docs/reconciliation.md; the "
        "request at most 64 KiB): 201 with the import report, or 200 when this very file was imported before "
        "(nothing changes). A file with any bad line is refused whole: 422 RECONCILIATION_FILE_INVALID, "
        "`problems` naming every bad line (line 1 is the header).",
        upload_file,
        ImportReport,
        status=201,
        also=(200,),
        permissions=ADMIN,
        request=FileUpload,
        tag="back-office",
        errors=(E.RECONCILIATION_FILE_INVALID, E.LEDGER_UNAVAILABLE),
    ),
    Endpoint(
        "POST",
        "/v1/reconciliation/runs",
        "reconciliation_run",
        "Run the reconciliation as of a business day (default today) with its look-back window (default 3 "
        "days), as the nightly scheduler does; or, with `records`, of those records only (Conciliar). The "
        "same run again changes nothing.",
        run_reconciliation,
        RunView,
        permissions=ADMIN,
        request=RunRequest,
        body_optional=True,
        tag="back-office",
        errors=(E.UNKNOWN_RECONCILIATION_RECORD, E.LEDGER_UNAVAILABLE),
    ),
    Endpoint(
        "GET",
        "/v1/reconciliation/records",
        "reconciliation_record_list",
        "The reconciliation records (each line of the closings, and each committed sale or return no closing "
        "reported), in id order, a page at a time.",
        list_records,
        RecordList,
        permissions=MOVEMENTS_READ,
        tag="back-office",
        errors=(E.STORE_NOT_ALLOWED, E.LEDGER_UNAVAILABLE),
        query=_FILTERS,
        links=(Link("first", "reconciliation_record_get", _RECORD),),
    ),
    Endpoint(
        "GET",
        "/v1/reconciliation/records/{id}",
        "reconciliation_record_get",
        "A reconciliation record with its history: when, who, state and note of every change.",
        get_record,
        RecordHistory,
        permissions=MOVEMENTS_READ,
        tag="back-office",
        errors=(E.UNKNOWN_RECONCILIATION_RECORD, E.STORE_NOT_ALLOWED, E.LEDGER_UNAVAILABLE),
        links=(Link("undo", "reconciliation_record_undo", (("id", "$response.body#/record/id"),)),),
    ),
    Endpoint(
        "POST",
        "/v1/reconciliation/records/{id}/undo",
        "reconciliation_record_undo",
        "Undo a RECONCILED or DIVERGENT record's reconciliation (Excluir Conciliação): it goes back to "
        "NOT_RECONCILED with the other side's record of the sale, the receivable gets the counter-movement, "
        "and the next run tries it again.",
        undo_record,
        Undone,
        permissions=ADMIN,
        request=UndoRequest,
        body_optional=True,
        tag="back-office",
        errors=(E.UNKNOWN_RECONCILIATION_RECORD, E.RECONCILIATION_NOT_UNDOABLE, E.LEDGER_UNAVAILABLE),
    ),
    Endpoint(
        "GET",
        "/v1/cash-closing",
        "cash_closing",
        "The cash-closing report (fechamento de caixa) of a business day (default today), per store and "
        "terminal: sales, reversals, returns, the totals per convênio and per participant, the net the "
        "convênio is charged, and how far the closing has been reconciled.",
        get_cash_closing,
        CashClosingView,
        permissions=MOVEMENTS_READ,
        tag="back-office",
        errors=(E.STORE_NOT_ALLOWED, E.LEDGER_UNAVAILABLE),
        query=(
            params.day_param("date", "The business day (default today, America/Sao_Paulo)."),
            params.code_param("store", "Only this store."),
            params.code_param("terminal", "Only this terminal."),
        ),
    ),
    Endpoint(
        "GET",
        "/v1/receivables",
        "receivable_list",
        "Each convênio's receivable (its financial account that reconciled sales move): balance and number "
        "of movements.",
        list_receivables,
        ReceivableBalances,
        permissions=MOVEMENTS_READ,
        tag="back-office",
        errors=(E.LEDGER_UNAVAILABLE,),
        links=(Link("first", "receivable_get", (("convenio", "$response.body#/convenios/0/convenio"),)),),
    ),
    Endpoint(
        "GET",
        "/v1/convenios/{convenio}/receivables",
        "receivable_get",
        "The convênio's receivable: every movement (a reconciled sale, an undo, a reversal after the "
        "reconciliation, a reconciled return), oldest first, with the balance after it.",
        get_receivables,
        ReceivableAccount,
        permissions=MOVEMENTS_READ,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.LEDGER_UNAVAILABLE),
    ),
    Endpoint(
        "PUT",
        "/v1/stores/{store}/terminals/{terminal}/closings/{date}",
        "closing_post",
        "Post the closing of a terminal's business day (what its closing file would hold), to be reconciled "
        "like an imported file. The same lines again change nothing and answer the same; other lines for the "
        "same store, terminal and day are 409 CLOSING_CONFLICT (a correction is imported as a file). A key "
        "scoped to a store posts for its own store (and terminal) only.",
        post_closing,
        ClosingPosted,
        permissions=CLOSING_POST,
        request=ClosingPost,
        tag="back-office",
        errors=(E.STORE_NOT_ALLOWED, E.RECONCILIATION_FILE_INVALID, E.CLOSING_CONFLICT, E.LEDGER_UNAVAILABLE),
    ),
)
