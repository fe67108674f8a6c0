"""The decision log over HTTP: any decision, approved or declined, by its protocol; and the log
itself, filtered and paged, for the back office."""

from __future__ import annotations

import re

from gateway.auth.permissions import DECISION_READ, READ_REGISTRY
from gateway.decisions import log
from gateway.decisions.schemas import DecisionPage, DecisionView
from gateway.platform.errors import ErrorCode
from gateway.platform.http import params
from gateway.platform.http.endpoint import Call, Endpoint, Reply
from gateway.stores import scope

E = ErrorCode
#: a decision's kind: "empenho.hold", "password.verify", "participant.updated", ...
KIND = re.compile(r"^[a-z_]{1,32}(?:\.[a-z_]{1,32})?(?!\n)$")
PROTOCOL = re.compile(r"^[A-Za-z0-9]{1,64}$")  # as PATH_PATTERNS["protocol"]


async def get_decision(c: Call) -> Reply:
    return Reply(await log.decision(c.svc, c.path["protocol"]))


async def list_decisions(c: Call) -> Reply:
    f = log.Filter(
        start=params.instant(c, "from"),
        end=params.instant(c, "to"),
        store=scope.reading(c.key, "store", params.code(c, "store")),
        terminal=scope.reading(c.key, "terminal", params.code(c, "terminal")),
        kind=params.matching(c, "kind", KIND, 'a decision\'s kind, such as "empenho.hold"'),
        outcome=params.choice(c, "outcome", log.OUTCOMES),
        convenio=params.code(c, "convenio"),
        participant=params.code(c, "participant"),
    )
    return Reply(await log.page(c.svc, f, params.after_match(c, PROTOCOL), params.page_size(c)))


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/v1/protocols/{protocol}",
        "decision_get",
        "The decision taken under a protocol: what was asked and what was answered (from the ledger).",
        get_decision,
        DecisionView,
        permissions=DECISION_READ,
        errors=(E.UNKNOWN_PROTOCOL, E.LEDGER_UNAVAILABLE),
    ),
    # The whole log shows every store's sales and customers: the registry's readers may list it,
    # not a terminal's key, which looks up only the protocols it was answered.
    Endpoint(
        "GET",
        "/v1/decisions",
        "decision_list",
        "The decision log (the communication log): every decision, approved or declined, with what was "
        "asked and what was answered, newest first, a page at a time. A key scoped to a store (and "
        "terminal) lists only what was decided there. Reads the ledger: a decision appears within moments.",
        list_decisions,
        DecisionPage,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.STORE_NOT_ALLOWED, E.LEDGER_UNAVAILABLE),
        query=(
            params.instant_param("from", "Only decisions at or after this instant (a date: its midnight, UTC)."),
            params.instant_param("to", "Only decisions before this instant (a date: its midnight, UTC)."),
            params.code_param("store", "Only decisions on requests naming this store."),
            params.code_param("terminal", "Only decisions on requests naming this terminal."),
            params.matching_param("kind", KIND, 'Only decisions of this kind, e.g. "empenho.hold", "password.verify".'),
            params.choice_param("outcome", log.OUTCOMES, "Only approved, or only declined, decisions."),
            params.code_param("convenio", "Only decisions on this convênio."),
            params.code_param("participant", "Only decisions on this participant."),
            params.after_match_param(PROTOCOL, "Continue after this decision (the previous page's next_after)."),
            params.page_size_param(),
        ),
    ),
)
