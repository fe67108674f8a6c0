"""The integration key (the "palavra chave" every password check must carry): a word a person
chose, so it is stored only as an HMAC keyed with the pepper; a copy of Redis or of the journal
is no help in guessing it offline."""

from __future__ import annotations

import hashlib
import hmac

from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.redis.keys import GLOBAL
from gateway.platform.services import Services


def _digest(svc: Services, integration_key: str) -> str:
    return hmac.new(svc.settings.secret_pepper(), integration_key.encode(), hashlib.sha256).hexdigest()


async def set_key(svc: Services, integration_key: str, only_if_unset: bool, by: str = "") -> bool:
    res = await svc.run(
        "integration_set",
        [svc.keys.integration(), svc.keys.events(GLOBAL)],
        [svc.now_ms(), svc.protocol(), _digest(svc, integration_key), "1" if only_if_unset else "0", by],
    )
    return bool(res["r"]["set"])


async def check(svc: Services, integration_key: str) -> None:
    stored = await svc.redis.hget(svc.keys.integration(), "digest")
    if stored is None or not hmac.compare_digest(stored.decode(), _digest(svc, integration_key)):
        raise ApiError(ErrorCode.INTEGRATION_KEY_INVALID)
