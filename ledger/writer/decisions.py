"""The decision log's projection (the retailer's communication log): what each event says was
asked and what was answered, under its protocol; every decision on an empenho, a credit hold, a
password or the registry, approved or declined. Built from the event alone, so it holds only
what the Lua script put there: never a password, a proof, an API key or an integration key."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import asyncpg

from gateway.platform.clock import rfc3339
from gateway.platform.errors import ERRORS, ErrorCode, error_body
from ledger.writer import events
from ledger.writer.events import Event, answer_of
from ledger.writer.fold import Projection, copy, json_text

COLUMNS = (
    "protocol",
    "at",
    "kind",
    "outcome",
    "http_status",
    "error",
    "convenio",
    "participant",
    "empenho_id",
    "request",
    "answer",
)


class Decision(NamedTuple):
    kind: str
    outcome: str  # APPROVED | DECLINED
    http_status: int | None  # None: no request was answered (the sweeper's expiry)
    error: str | None
    convenio: str | None
    participant: str | None
    empenho_id: str | None
    request: dict[str, Any]
    answer: dict[str, Any]


def _declined(kind: str, code: str, protocol: str, d: dict[str, Any], request: dict, **extra: Any) -> Decision:
    status = ERRORS[ErrorCode(code)][0]
    return Decision(
        kind,
        "DECLINED",
        status,
        code,
        d.get("convenio") or None,
        d.get("participant") or None,
        d.get("id"),
        request,
        error_body(code, protocol=protocol, **extra),
    )


def _hold_request(d: dict[str, Any]) -> dict[str, Any]:
    request = {k: d.get(k) for k in ("convenio", "participant", "amount", "terminal", "store", "sale")}
    if d.get("plate"):
        km = d.get("odometer_km")
        request["vehicle"] = {"plate": d["plate"], "odometer_km": int(km) if km else None}
    request["api_key_id"] = d.get("api_key")
    if d.get("order"):
        request["order"] = d["order"]
    return request


def _outcome_body(d: dict[str, Any], status: str, protocol: str) -> dict[str, Any]:
    return {"id": d["id"], "status": status, "amount": d["amount"], "balance": d.get("balance"), "protocol": protocol}


def decision_of(etype: str, protocol: str, d: dict[str, Any]) -> Decision | None:
    """The decision an event records, or None for an event that is not one."""
    who = (d.get("convenio") or None, d.get("participant") or None)
    if etype == "empenho.held":
        a = d["answer"]
        answer = {
            "id": d["id"],
            "status": "PENDING",
            "amount": d["amount"],
            "available": a["available"],
            "expires_at": rfc3339(int(d["expires_at"])),
            "protocol": protocol,
        }
        return Decision("empenho.hold", "APPROVED", 201, None, *who, d["id"], _hold_request(d), answer)
    if etype == "empenho.declined":
        window = d.get("window") or {}
        return _declined(
            "empenho.hold",
            d["error"],
            protocol,
            d,
            _hold_request(d),
            available=d.get("available"),
            scope=window.get("scope"),
            remaining=window.get("remaining"),
        )
    if etype == "empenho.committed":
        request = {"id": d["id"], "coupon": d["coupon"], "amount": d["amount"]}
        body = _outcome_body(d, "COMMITTED", protocol)
        return Decision("empenho.commit", "APPROVED", 200, None, *who, d["id"], request, body)
    if etype == "empenho.commit_refused":
        amount = d.get("amount")
        request = {"id": d["id"], "coupon": d.get("coupon"), "amount": int(amount) if amount else None}
        return _declined("empenho.commit", d["error"], protocol, d, request, status=d.get("status"))
    if etype in ("empenho.cancelled", "empenho.reversed"):
        status = "CANCELLED" if etype == "empenho.cancelled" else "REVERSED"
        request = {"id": d["id"], "reason": d.get("reason") or None}
        return Decision(
            "empenho.cancel", "APPROVED", 200, None, *who, d["id"], request, _outcome_body(d, status, protocol)
        )
    if etype == "empenho.cancel_refused":
        return _declined("empenho.cancel", d["error"], protocol, d, {"id": d["id"]}, status=d.get("status"))
    if etype == "empenho.expired":
        trigger = d.get("trigger", "sweeper")
        if trigger in ("commit", "cancel"):
            # the commit or cancel that found the hold overdue expired it and was refused
            return _declined(
                f"empenho.{trigger}", "EMPENHO_NOT_PENDING", protocol, d, {"id": d["id"]}, status="EXPIRED"
            )
        answer = {"id": d["id"], "status": "EXPIRED", "amount": d["amount"], "protocol": protocol}
        return Decision("empenho.expire", "APPROVED", None, None, *who, d["id"], {"id": d["id"]}, answer)
    if etype in ("empenho.returned", "empenho.return_declined"):
        request = {k: d.get(k) for k in ("id", "amount", "store", "terminal", "refund")}
        request["reason"] = d.get("reason") or None
        request["api_key_id"] = d.get("api_key")
        if etype == "empenho.return_declined":
            a = d.get("answer") or {}
            return _declined(
                "empenho.return",
                d["error"],
                protocol,
                d,
                request,
                returnable=a.get("returnable"),
                status=a.get("status"),
            )
        return Decision("empenho.return", "APPROVED", 201, None, *who, d["id"], request, answer_of(d))
    if etype == "password.verified":
        answer = {"valid": True, "protocol": protocol}
        return Decision("password.verify", "APPROVED", 200, None, *who, None, _who(d), answer)
    if etype == "password.failed":
        answer = {"valid": False, "attempts_left": d.get("attempts_left"), "protocol": protocol}
        return Decision("password.verify", "DECLINED", 200, None, *who, None, _who(d), answer)
    if etype == "password.locked":
        if d.get("answered") == 423:
            return _declined(
                "password.verify", "PASSWORD_LOCKED", protocol, d, _who(d), retry_after=d.get("retry_after")
            )
        answer = {"valid": False, "attempts_left": 0, "protocol": protocol}
        return Decision("password.verify", "DECLINED", 200, None, *who, None, _who(d), answer)
    if etype == "password.refused":
        return _declined("password.verify", d["error"], protocol, d, _who(d), retry_after=d.get("retry_after"))
    if etype.startswith("credit."):
        return _credit(etype, protocol, d)
    return _registry(etype, protocol, d)


def _who(d: dict[str, Any]) -> dict[str, Any]:
    return {"convenio": d.get("convenio"), "participant": d.get("participant")}


def _registry(etype: str, protocol: str, d: dict[str, Any]) -> Decision | None:
    created = etype.endswith(".created") or etype == "vehicle.saved"
    status = 201 if created else 200
    who = (d.get("convenio") or None, d.get("participant") or None)
    if etype in ("convenio.created", "convenio.updated"):
        return Decision(etype, "APPROVED", status, None, *who, None, dict(d["changed"]), dict(d["record"]))
    if etype in ("participant.created", "participant.updated"):
        # the changed fields never carry the password hash (the script moves it out)
        request = {k: v for k, v in d["changed"].items() if k != "pw_hash"}
        return Decision(etype, "APPROVED", status, None, *who, None, request, dict(d["record"]))
    if etype == "vehicle.saved":
        return Decision(etype, "APPROVED", 200, None, *who, None, {"plate": d["vehicle"]["plate"]}, dict(d["vehicle"]))
    if etype == "vehicle.deleted":
        return Decision(etype, "APPROVED", 200, None, *who, None, {"plate": d["plate"]}, {"plate": d["plate"]})
    if etype == "apikey.created":
        request = {"permissions": d["permissions"], "name": d.get("name", ""), "store": d.get("store") or None}
        return Decision(etype, "APPROVED", None, None, None, None, None, request, {"id": d["id"]})
    if etype == "apikey.rotated":
        answer = {"id": d["id"], "previous": d["previous"], "previous_expires_at": d["previous_expires_at"]}
        return Decision(etype, "APPROVED", None, None, None, None, None, {"id": d["previous"]}, answer)
    if etype == "apikey.revoked":
        return Decision(
            etype, "APPROVED", None, None, None, None, None, {"id": d["id"]}, {"id": d["id"], "revoked": True}
        )
    if etype == "integration.key_set":
        return Decision(etype, "APPROVED", 200, None, None, None, None, {}, {"done": True})
    return None


# -- customer credits and credit holds: the customer stands where a participant would ------------
def _credit_hold_request(d: dict[str, Any]) -> dict[str, Any]:
    request = {k: d.get(k) for k in ("customer", "amount", "order", "channel")}
    for k in ("store", "terminal"):
        if d.get(k):
            request[k] = d[k]
    request["api_key_id"] = d.get("api_key")
    return request


def _for_customer(kind: str, status: int | None, customer: str | None, request: dict, answer: dict) -> Decision:
    return Decision(kind, "APPROVED", status, None, None, customer, None, request, answer)


def _customer_declined(
    kind: str, code: str, protocol: str, customer: str | None, request: dict, **extra: Any
) -> Decision:
    status = ERRORS[ErrorCode(code)][0]
    body = error_body(code, protocol=protocol, **extra)
    return Decision(kind, "DECLINED", status, code, None, customer, None, request, body)


def credit_hold_answer(d: dict[str, Any]) -> dict[str, Any]:
    """What a credit hold's placement answered (the credit_holds table keeps it too)."""
    answer = answer_of(d)
    answer["expires_at"] = rfc3339(int(d["expires_at"]))
    return answer


def _credit(etype: str, protocol: str, d: dict[str, Any]) -> Decision | None:
    customer = d.get("customer")
    if etype == "credit.created":
        c = d["credit"]
        request = {"customer": c["customer"], "reference": c["ref"], "type": c["type"], "amount": c["amount"]}
        answer = {"id": c["id"], "customer": c["customer"], "reference": c["ref"], "protocol": protocol}
        return _for_customer("credit.create", 201, c["customer"], request, answer)
    if etype == "credit.held":
        return _for_customer("credit.hold", 201, customer, _credit_hold_request(d), credit_hold_answer(d))
    if etype == "credit.declined":
        request = _credit_hold_request(d)
        return _customer_declined("credit.hold", d["error"], protocol, customer, request, available=d.get("available"))
    if etype == "credit.committed":
        request = {"id": d["id"], "coupon": d["coupon"], "amount": d["amount"]}
        return _for_customer("credit.commit", 200, customer, request, answer_of(d))
    if etype == "credit.commit_refused":
        amount = d.get("amount")
        request = {"id": d["id"], "coupon": d.get("coupon"), "amount": int(amount) if amount else None}
        return _customer_declined("credit.commit", d["error"], protocol, customer, request, status=d.get("status"))
    if etype in ("credit.cancelled", "credit.reversed"):
        request = {"id": d["id"], "reason": d.get("reason") or None}
        return _for_customer("credit.cancel", 200, customer, request, answer_of(d))
    if etype == "credit.cancel_refused":
        return _customer_declined(
            "credit.cancel", d["error"], protocol, customer, {"id": d["id"]}, status=d.get("status")
        )
    if etype == "credit.expired":
        trigger = d.get("trigger", "sweeper")
        if trigger in ("commit", "cancel"):  # the request that found it overdue was refused
            return _customer_declined(
                f"credit.{trigger}", "CREDIT_HOLD_NOT_PENDING", protocol, customer, {"id": d["id"]}, status="EXPIRED"
            )
        answer = {"id": d["id"], "status": "EXPIRED", "amount": d["amount"], "protocol": protocol}
        return _for_customer("credit.expire", None, customer, {"id": d["id"]}, answer)
    if etype in ("credit.returned", "credit.return_declined"):
        request = {k: d.get(k) or None for k in ("id", "amount", "store", "terminal", "reason")}
        request["api_key_id"] = d.get("api_key")
        if etype == "credit.return_declined":
            a = d.get("answer") or {}
            return _customer_declined(
                "credit.return",
                d["error"],
                protocol,
                customer,
                request,
                returnable=a.get("returnable"),
                status=a.get("status"),
            )
        return _for_customer("credit.return", 201, customer, request, answer_of(d))
    return None


class DecisionFold(Projection):
    """One batch's decisions, as rows of the decision log."""

    name: ClassVar[str] = events.DECISIONS

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def _logged(self, e: Event, d: dict[str, Any]) -> None:
        x = decision_of(e.type, e.protocol, d)
        if x is not None:
            self.rows.append(
                (
                    e.protocol,
                    e.at,
                    x.kind,
                    x.outcome,
                    x.http_status,
                    x.error,
                    x.convenio,
                    x.participant,
                    x.empenho_id,
                    json_text(x.request),
                    json_text(x.answer),
                )
            )

    async def write(self, conn: asyncpg.Connection) -> None:
        await copy(conn, "decisions", COLUMNS, self.rows)

    handlers: ClassVar[dict[str, Any]] = dict.fromkeys(
        (
            "convenio.created",
            "convenio.updated",
            "participant.created",
            "participant.updated",
            "vehicle.saved",
            "vehicle.deleted",
            "apikey.created",
            "apikey.revoked",
            "apikey.rotated",
            "integration.key_set",
            "password.verified",
            "password.failed",
            "password.locked",
            "password.refused",
            "empenho.held",
            "empenho.declined",
            "empenho.committed",
            "empenho.commit_refused",
            "empenho.cancelled",
            "empenho.reversed",
            "empenho.cancel_refused",
            "empenho.expired",
            "empenho.returned",
            "empenho.return_declined",
            "credit.created",
            "credit.held",
            "credit.declined",
            "credit.committed",
            "credit.commit_refused",
            "credit.cancelled",
            "credit.reversed",
            "credit.cancel_refused",
            "credit.expired",
            "credit.returned",
            "credit.return_declined",
        ),
        _logged,
    )
