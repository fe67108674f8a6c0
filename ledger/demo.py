"""`convenio demo`: the seed's worked example (seed 001), loaded idempotently.

Convênio EMP001 "EMPRESA CONVENIO 001" (individual limits, tolerance R$ 10,00) with
participant CLI001 "CLIENTE 001" (limit R$ 100,00). Its password, integration key and API key
are derived from the server's pepper, so loading the same codes again changes nothing and
prints the same credentials: a script can always start from the example.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from gateway import apikeys, registry
from gateway.core import Gateway
from gateway.errors import ApiError, ErrorCode
from gateway.permissions import Permission
from gateway.schemas import Billing, ConvenioCreate, ParticipantCreate, Rollover

TERMINAL_PERMISSIONS = frozenset(
    {Permission.LIMIT_QUERY, Permission.PASSWORD_CHECK, Permission.EMPENHO, Permission.EMPENHO_CANCEL}
)


def _derive(gw: Gateway, purpose: str) -> str:
    return hmac.new(gw.settings.pepper, f"convenio-demo:{purpose}".encode(), hashlib.sha256).hexdigest()


async def load(gw: Gateway, convenio: str = "EMP001", participant: str = "CLI001") -> dict[str, Any]:
    password = str(int(_derive(gw, f"password:{convenio}:{participant}"), 16) % 1_000_000).zfill(6)
    integration_key = "ik_" + _derive(gw, "integration-key")[:32]
    api_key = "cvk_demo_" + _derive(gw, f"api-key:{convenio}:{participant}")[:40]

    try:
        await registry.save_convenio(
            gw,
            convenio,
            ConvenioCreate(
                code=convenio,
                name="EMPRESA CONVENIO 001",
                total_limit=1_000_000,  # R$ 10.000,00 to share out among participants
                tolerance=1_000,
                shared=False,
                rollover=Rollover(policy="MONTHLY", day=1),
                billing=Billing(automatic=True, period="MONTHLY", payment_method="BOLETO"),
            ),
        )
    except ApiError as exc:
        if exc.code != ErrorCode.CONVENIO_EXISTS:
            raise
    try:
        await registry.save_participant(
            gw,
            convenio,
            participant,
            ParticipantCreate(
                code=participant, name="CLIENTE 001", document="000.000.001-91", limit=10_000, password=password
            ),
        )
    except ApiError as exc:
        if exc.code != ErrorCode.PARTICIPANT_EXISTS:
            raise
    await apikeys.set_integration_key(gw, integration_key, only_if_unset=True)
    await apikeys.create(gw, TERMINAL_PERMISSIONS, name=f"demo terminal {convenio}/{participant}", token=api_key)
    return {
        "convenio": convenio,
        "participant": participant,
        "password": password,
        "integration_key": integration_key,
        "api_key": api_key,
    }
