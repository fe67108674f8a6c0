"""`convenio demo`: the worked example of the retailer's manual, loaded idempotently.

Convênio EMP001 "EMPRESA CONVENIO 001" (individual limits, tolerance R$ 10,00) with
participant CLI001 "CLIENTE 001" (limit R$ 100,00). Its password, integration key and API key
are derived from the server's pepper, so loading the same codes again changes nothing and
prints the same credentials: a script can always start from the example. Its CPF (a valid one,
made up) is stored only where a personal-data key is configured (CONVENIO_DATA_KEY).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from gateway.auth import apikeys, integration
from gateway.auth.permissions import Permission
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.services import Services
from gateway.registry import convenios, participants
from gateway.registry.schemas import Billing, ConvenioCreate, ParticipantCreate, Rollover

#: made up, with valid check digits
DEMO_CPF = "529.982.247-25"
TERMINAL_PERMISSIONS = frozenset(
    {Permission.LIMIT_QUERY, Permission.PASSWORD_CHECK, Permission.EMPENHO, Permission.EMPENHO_CANCEL}
)


def _derive(svc: Services, purpose: str) -> str:
    return hmac.new(svc.settings.pepper, f"convenio-demo:{purpose}".encode(), hashlib.sha256).hexdigest()


async def load(svc: Services, convenio: str = "EMP001", participant: str = "CLI001") -> dict[str, Any]:
    password = str(int(_derive(svc, f"password:{convenio}:{participant}"), 16) % 1_000_000).zfill(6)
    integration_key = "ik_" + _derive(svc, "integration-key")[:32]
    api_key = "cvk_demo_" + _derive(svc, f"api-key:{convenio}:{participant}")[:40]

    try:
        await convenios.save_convenio(
            svc,
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
        await participants.save_participant(
            svc,
            convenio,
            participant,
            ParticipantCreate(
                code=participant,
                name="CLIENTE 001",
                document=DEMO_CPF if svc.settings.data_key else "",
                limit=10_000,
                password=password,
            ),
        )
    except ApiError as exc:
        if exc.code != ErrorCode.PARTICIPANT_EXISTS:
            raise
    await integration.set_key(svc, integration_key, only_if_unset=True)
    await apikeys.create(svc, TERMINAL_PERMISSIONS, name=f"demo terminal {convenio}/{participant}", token=api_key)
    return {
        "convenio": convenio,
        "participant": participant,
        "password": password,
        "integration_key": integration_key,
        "api_key": api_key,
    }
