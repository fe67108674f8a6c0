"""The endpoints of the password check and of the integration key it must carry."""

from __future__ import annotations

from gateway.auth import integration
from gateway.auth.password_check import verify_password
from gateway.auth.permissions import Permission
from gateway.auth.schemas import IntegrationKeySet, PasswordCheck, PasswordResult
from gateway.platform.errors import ErrorCode
from gateway.platform.http.endpoint import Call, Endpoint, Reply, who
from gateway.platform.http.schemas import Done

E = ErrorCode
PARTICIPANT = "/v1/convenios/{convenio}/participants/{participant}"


async def check_password(c: Call) -> Reply:
    return Reply(await verify_password(c.svc, c.path["convenio"], c.path["participant"], c.body))


async def put_integration_key(c: Call) -> Reply:
    await integration.set_key(c.svc, c.body.integration_key, only_if_unset=False, by=who(c))
    return Reply(Done())


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        PARTICIPANT + "/password/verify",
        "password_verify",
        "Password check; a valid password yields a single-use proof for the empenho.",
        check_password,
        PasswordResult,
        permissions=frozenset({Permission.PASSWORD_CHECK}),
        request=PasswordCheck,
        errors=(
            E.INTEGRATION_KEY_INVALID,
            E.PASSWORD_LOCKED,
            E.PASSWORD_CHECK_BUSY,
            E.PASSWORD_CHECK_TIMEOUT,
            E.PASSWORD_NOT_SET,
            E.UNKNOWN_CONVENIO,
            E.UNKNOWN_PARTICIPANT,
        ),
    ),
    Endpoint(
        "PUT",
        "/v1/integration/key",
        "integration_key_set",
        'Set the integration key (the retailer\'s "palavra chave") that every password check must carry.',
        put_integration_key,
        Done,
        permissions=frozenset({Permission.INTEGRATION}),
        request=IntegrationKeySet,
        tag="back-office",
    ),
)
