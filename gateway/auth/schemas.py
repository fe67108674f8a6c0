"""Bodies of the password check and of the integration key."""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, UnsetType

from gateway.platform.http.schemas import Frozen, Out


class PasswordCheck(Frozen):
    password: Annotated[str, Meta(min_length=1, max_length=128)]
    integration_key: Annotated[str, Meta(min_length=1, max_length=256)]


class PasswordResult(Out):
    valid: bool
    proof: str | UnsetType = UNSET
    expires_in: int | UnsetType = UNSET
    attempts_left: int | UnsetType = UNSET
    protocol: str | UnsetType = UNSET


class IntegrationKeySet(Frozen):
    integration_key: Annotated[str, Meta(min_length=8, max_length=256)]
