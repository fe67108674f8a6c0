"""Every way a request can fail: one enumeration, one HTTP status table, one default message.

Lua scripts return these codes by name, the HTTP layer maps them to statuses here, and
`/openapi.json` lists them from here; nothing else invents an error code.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.StrEnum):
    # request shape and transport
    INVALID_REQUEST = "INVALID_REQUEST"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    HEADERS_TOO_LARGE = "HEADERS_TOO_LARGE"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    # authentication and permission
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    INTEGRATION_KEY_INVALID = "INTEGRATION_KEY_INVALID"
    STORE_NOT_ALLOWED = "STORE_NOT_ALLOWED"
    # stores and terminals
    UNKNOWN_STORE = "UNKNOWN_STORE"
    STORE_NOT_REGISTERED = "STORE_NOT_REGISTERED"
    STORE_EXISTS = "STORE_EXISTS"
    STORE_NOT_ACCEPTED = "STORE_NOT_ACCEPTED"
    # registry
    UNKNOWN_CONVENIO = "UNKNOWN_CONVENIO"
    UNKNOWN_PARTICIPANT = "UNKNOWN_PARTICIPANT"
    UNKNOWN_VEHICLE = "UNKNOWN_VEHICLE"
    UNKNOWN_API_KEY = "UNKNOWN_API_KEY"
    CONVENIO_EXISTS = "CONVENIO_EXISTS"
    PARTICIPANT_EXISTS = "PARTICIPANT_EXISTS"
    LIMIT_ALLOCATION_EXCEEDED = "LIMIT_ALLOCATION_EXCEEDED"
    SHARING_MODE_LOCKED = "SHARING_MODE_LOCKED"
    # password
    PASSWORD_LOCKED = "PASSWORD_LOCKED"
    PASSWORD_CHECK_BUSY = "PASSWORD_CHECK_BUSY"
    PASSWORD_CHECK_TIMEOUT = "PASSWORD_CHECK_TIMEOUT"
    PASSWORD_NOT_SET = "PASSWORD_NOT_SET"
    # back-office operators (people) and their sessions
    OPERATOR_EXISTS = "OPERATOR_EXISTS"
    OPERATOR_LOGIN_FAILED = "OPERATOR_LOGIN_FAILED"
    OPERATOR_LOCKED = "OPERATOR_LOCKED"
    UNKNOWN_OPERATOR = "UNKNOWN_OPERATOR"
    SESSION_REQUIRED = "SESSION_REQUIRED"
    CSRF_INVALID = "CSRF_INVALID"
    # empenho decisions
    INSUFFICIENT_LIMIT = "INSUFFICIENT_LIMIT"
    PARTICIPANT_BLOCKED = "PARTICIPANT_BLOCKED"
    CONVENIO_BLOCKED = "CONVENIO_BLOCKED"
    PASSWORD_PROOF_REQUIRED = "PASSWORD_PROOF_REQUIRED"
    PASSWORD_PROOF_INVALID = "PASSWORD_PROOF_INVALID"
    VEHICLE_NOT_REGISTERED = "VEHICLE_NOT_REGISTERED"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    UNKNOWN_EMPENHO = "UNKNOWN_EMPENHO"
    EMPENHO_NOT_PENDING = "EMPENHO_NOT_PENDING"
    COMMIT_CONFLICT = "COMMIT_CONFLICT"
    COMMIT_EXCEEDS_HOLD = "COMMIT_EXCEEDS_HOLD"
    # returns (devoluções) of a committed sale, of either kind of hold
    EMPENHO_NOT_COMMITTED = "EMPENHO_NOT_COMMITTED"
    CREDIT_HOLD_NOT_COMMITTED = "CREDIT_HOLD_NOT_COMMITTED"
    RETURN_EXCEEDS_SALE = "RETURN_EXCEEDS_SALE"
    FULLY_RETURNED = "FULLY_RETURNED"
    # limit windows: declines of a hold, each saying what the window still allows
    ORDER_LIMIT_EXCEEDED = "ORDER_LIMIT_EXCEEDED"
    DAILY_LIMIT_EXCEEDED = "DAILY_LIMIT_EXCEEDED"
    MONTHLY_LIMIT_EXCEEDED = "MONTHLY_LIMIT_EXCEEDED"
    # the customers' current accounts: credits, credit holds and orders
    INSUFFICIENT_CREDIT = "INSUFFICIENT_CREDIT"
    CREDIT_REFERENCE_EXISTS = "CREDIT_REFERENCE_EXISTS"
    UNKNOWN_CREDIT_HOLD = "UNKNOWN_CREDIT_HOLD"
    CREDIT_HOLD_NOT_PENDING = "CREDIT_HOLD_NOT_PENDING"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    CREDIT_COMMIT_CONFLICT = "CREDIT_COMMIT_CONFLICT"
    CREDIT_COMMIT_EXCEEDS_HOLD = "CREDIT_COMMIT_EXCEEDS_HOLD"
    # limit-change requests
    UNKNOWN_LIMIT_REQUEST = "UNKNOWN_LIMIT_REQUEST"
    LIMIT_REQUEST_DECIDED = "LIMIT_REQUEST_DECIDED"
    # the ledger
    UNKNOWN_PROTOCOL = "UNKNOWN_PROTOCOL"
    UNKNOWN_DUPLICATA = "UNKNOWN_DUPLICATA"
    # reconciliation of the closings
    RECONCILIATION_FILE_INVALID = "RECONCILIATION_FILE_INVALID"
    UNKNOWN_RECONCILIATION_RECORD = "UNKNOWN_RECONCILIATION_RECORD"
    RECONCILIATION_NOT_UNDOABLE = "RECONCILIATION_NOT_UNDOABLE"
    CLOSING_CONFLICT = "CLOSING_CONFLICT"
    # service health
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    LEDGER_UNAVAILABLE = "LEDGER_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


#: HTTP status and the message a client sees when the raiser gives none.
ERRORS: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.INVALID_REQUEST: (422, "The request is not valid."),
    ErrorCode.BODY_TOO_LARGE: (413, "The request body is larger than 64 KiB."),
    ErrorCode.HEADERS_TOO_LARGE: (431, "The request headers are larger than 16 KiB."),
    ErrorCode.NOT_FOUND: (404, "No such endpoint."),
    ErrorCode.METHOD_NOT_ALLOWED: (405, "Method not allowed on this endpoint."),
    ErrorCode.UNAUTHORIZED: (401, "A valid API key is required (Authorization: Bearer <key>)."),
    ErrorCode.FORBIDDEN: (403, "This API key lacks the permission this endpoint needs."),
    ErrorCode.STORE_NOT_ALLOWED: (
        403,
        "This API key acts for one store (and terminal) only: the request names, or acts on a hold of, another.",
    ),
    ErrorCode.UNKNOWN_STORE: (404, "No store with this code."),
    # a body naming a store that does not exist: the URL's resource is there, the request is not valid
    ErrorCode.STORE_NOT_REGISTERED: (422, "A store the request names is not registered."),
    ErrorCode.STORE_EXISTS: (409, "A store with this code exists already."),
    ErrorCode.STORE_NOT_ACCEPTED: (422, "This convênio is not accepted at this store."),
    ErrorCode.INTEGRATION_KEY_INVALID: (403, "The integration key is not valid."),
    ErrorCode.UNKNOWN_CONVENIO: (404, "No convênio with this code."),
    ErrorCode.UNKNOWN_PARTICIPANT: (404, "No participant with this code in this convênio."),
    ErrorCode.UNKNOWN_VEHICLE: (404, "No vehicle with this plate for this participant."),
    ErrorCode.UNKNOWN_API_KEY: (404, "No API key with this id."),
    ErrorCode.CONVENIO_EXISTS: (409, "A convênio with this code already exists."),
    ErrorCode.PARTICIPANT_EXISTS: (409, "This participant already exists in this convênio."),
    ErrorCode.LIMIT_ALLOCATION_EXCEEDED: (
        422,
        "The participants' limits would add up to more than the convênio's total limit.",
    ),
    ErrorCode.SHARING_MODE_LOCKED: (
        422,
        "The sharing mode cannot change once the convênio has participants.",
    ),
    ErrorCode.PASSWORD_LOCKED: (423, "Too many failed password checks; try again later."),
    ErrorCode.PASSWORD_CHECK_TIMEOUT: (503, "The password check took too long to count; check again."),
    ErrorCode.PASSWORD_CHECK_BUSY: (
        429,
        "Other password checks of this participant are in progress; try again in a moment.",
    ),
    ErrorCode.PASSWORD_NOT_SET: (422, "This participant has no password set."),
    ErrorCode.OPERATOR_EXISTS: (409, "An operator with this login already exists."),
    ErrorCode.OPERATOR_LOGIN_FAILED: (401, "Wrong login or password."),
    ErrorCode.OPERATOR_LOCKED: (423, "Too many failed logins; try again later (`retry_after` seconds)."),
    ErrorCode.UNKNOWN_OPERATOR: (404, "No operator with this login."),
    ErrorCode.SESSION_REQUIRED: (401, "Log in to the back office first (the session is missing or has expired)."),
    ErrorCode.CSRF_INVALID: (403, "The form is stale or came from elsewhere; reload the page and try again."),
    ErrorCode.INSUFFICIENT_LIMIT: (422, "The amount is more than the available limit."),
    ErrorCode.PARTICIPANT_BLOCKED: (422, "The participant is blocked."),
    ErrorCode.CONVENIO_BLOCKED: (422, "The convênio is blocked."),
    ErrorCode.PASSWORD_PROOF_REQUIRED: (422, "A password proof is required to place a hold."),
    ErrorCode.PASSWORD_PROOF_INVALID: (
        422,
        "The password proof is unknown, expired, already used, or for another participant.",
    ),
    ErrorCode.VEHICLE_NOT_REGISTERED: (
        422,
        "The vehicle plate is not registered for this participant.",
    ),
    ErrorCode.ORDER_LIMIT_EXCEEDED: (422, "The amount is more than one order may take (`remaining`)."),
    ErrorCode.DAILY_LIMIT_EXCEEDED: (422, "The amount is more than today's window still allows (`remaining`)."),
    ErrorCode.MONTHLY_LIMIT_EXCEEDED: (422, "The amount is more than this month's window still allows (`remaining`)."),
    ErrorCode.INSUFFICIENT_CREDIT: (422, "The customer's credits do not cover the amount (`available`)."),
    ErrorCode.CREDIT_REFERENCE_EXISTS: (409, "A credit with this reference already exists with other values."),
    ErrorCode.UNKNOWN_CREDIT_HOLD: (404, "No credit hold with this id."),
    ErrorCode.CREDIT_HOLD_NOT_PENDING: (409, "The credit hold is not pending."),
    ErrorCode.UNKNOWN_ORDER: (404, "No credit or empenho was ever used by this order."),
    ErrorCode.CREDIT_COMMIT_CONFLICT: (
        409,
        "The credit hold was already committed with a different coupon or amount.",
    ),
    ErrorCode.CREDIT_COMMIT_EXCEEDS_HOLD: (422, "The commit amount is more than the credit hold's amount."),
    ErrorCode.UNKNOWN_LIMIT_REQUEST: (404, "No limit-change request with this id."),
    ErrorCode.LIMIT_REQUEST_DECIDED: (409, "The limit-change request was already approved or rejected."),
    ErrorCode.IDEMPOTENCY_CONFLICT: (
        409,
        "This Idempotency-Key was already used with a different request.",
    ),
    ErrorCode.UNKNOWN_EMPENHO: (404, "No empenho with this id."),
    ErrorCode.EMPENHO_NOT_PENDING: (409, "The empenho is not pending."),
    ErrorCode.COMMIT_CONFLICT: (
        409,
        "The empenho was already committed with a different coupon or amount.",
    ),
    ErrorCode.COMMIT_EXCEEDS_HOLD: (422, "The commit amount is more than the held amount."),
    ErrorCode.EMPENHO_NOT_COMMITTED: (409, "Only a COMMITTED empenho can be returned (`status` says what it is)."),
    ErrorCode.CREDIT_HOLD_NOT_COMMITTED: (
        409,
        "Only a COMMITTED credit hold can be returned (`status` says what it is).",
    ),
    ErrorCode.RETURN_EXCEEDS_SALE: (422, "The return is more than what is left of the sale to return (`returnable`)."),
    ErrorCode.FULLY_RETURNED: (409, "Everything the sale committed was returned: nothing is left to reverse."),
    ErrorCode.UNKNOWN_PROTOCOL: (
        404,
        "No decision with this protocol in the ledger (a decision reaches it within moments).",
    ),
    ErrorCode.UNKNOWN_DUPLICATA: (404, "No duplicata with this id."),
    ErrorCode.RECONCILIATION_FILE_INVALID: (
        422,
        "The closing was refused whole, nothing imported: `problems` names every bad line.",
    ),
    ErrorCode.UNKNOWN_RECONCILIATION_RECORD: (404, "No reconciliation record with this id."),
    ErrorCode.RECONCILIATION_NOT_UNDOABLE: (
        409,
        "Only a RECONCILED or DIVERGENT record's reconciliation can be undone; the message says what it is.",
    ),
    ErrorCode.CLOSING_CONFLICT: (
        409,
        "A closing with other lines was posted for this store, terminal and day; a correction is imported as a file.",
    ),
    ErrorCode.LEDGER_UNAVAILABLE: (503, "The ledger database is not reachable; retry shortly."),
    ErrorCode.SERVICE_UNAVAILABLE: (503, "A backing service is unavailable; retry shortly."),
    ErrorCode.INTERNAL_ERROR: (
        500,
        "Unexpected error; it was logged. Retrying with the same Idempotency-Key is safe.",
    ),
}

assert set(ERRORS) == set(ErrorCode), "every error code needs a status and a message"


def error_body(code: ErrorCode | str, message: str | None = None, **extra: Any) -> dict[str, Any]:
    """The contract's error body, {"error": {"code", "message", ...}}: what a client is answered and
    what the decision log keeps. Extras that are None are left out."""
    code = ErrorCode(code)
    body = {"code": str(code), "message": message or ERRORS[code][1]}
    body.update({k: v for k, v in extra.items() if v is not None})
    return {"error": body}


class ApiError(Exception):
    """Raised anywhere below a handler; the HTTP layer renders it as the contract's error body."""

    def __init__(
        self,
        code: ErrorCode | str,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.code = ErrorCode(code)
        self.status, default = ERRORS[self.code]
        self.message = message or default
        self.headers = headers or {}
        self.extra = {k: v for k, v in extra.items() if v is not None}
        super().__init__(f"{self.code}: {self.message}")

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, **self.extra)
