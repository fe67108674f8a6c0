"""A person's document (CPF, or CNPJ numeric or alphanumeric): checked by its check digits, then
kept only as a keyed digest (lookups), an AES-GCM sealed copy (export) and a masked copy (screens),
so that neither a Redis nor a Postgres dump holds it in clear. The key lives outside both stores
(CONVENIO_DATA_KEY, gateway/platform/config.py)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.platform.config import Settings

#: what a document may be written with besides its characters
_PUNCTUATION = re.compile(r"[.\-/\s]")
_CPF = re.compile(r"[0-9]{11}")
_CNPJ = re.compile(r"[0-9A-Z]{12}[0-9]{2}")
#: binds a sealed copy to its purpose, so a sealed value of another kind cannot be passed off as one
_AAD = b"convenio:document:v1"
_SEALED_PREFIX = "v1."
#: the Redis hash fields (and record keys) that hold a document; the clear `document` is legacy
FIELDS = ("doc_digest", "doc_sealed", "doc_masked")


class InvalidDocument(ValueError):
    """Not a CPF nor a CNPJ; the message never repeats the value."""


def normalize(raw: str) -> str:
    """The document without punctuation, upper case: what is digested and sealed."""
    return _PUNCTUATION.sub("", raw).upper()


def _check_digit(values: list[int], weights: list[int]) -> int:
    rest = sum(v * w for v, w in zip(values, weights, strict=True)) % 11
    return 0 if rest < 2 else 11 - rest


def valid_cpf(digits: str) -> bool:
    if not _CPF.fullmatch(digits) or len(set(digits)) == 1:
        return False
    values = [int(c) for c in digits]
    first = _check_digit(values[:9], list(range(10, 1, -1)))
    second = _check_digit(values[:9] + [first], list(range(11, 1, -1)))
    return values[9:] == [first, second]


_CNPJ_WEIGHTS = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]


def valid_cnpj(chars: str) -> bool:
    """Numeric or alphanumeric CNPJ: each of the first 12 characters counts as its ASCII code
    minus 48 (so digits keep their value), the two check digits are numeric, weights as ever."""
    if not _CNPJ.fullmatch(chars) or len(set(chars)) == 1:
        return False
    values = [ord(c) - 48 for c in chars[:12]]
    first = _check_digit(values, _CNPJ_WEIGHTS)
    second = _check_digit(values + [first], [6, *_CNPJ_WEIGHTS])
    return chars[12:] == f"{first}{second}"


def checked(raw: str) -> str:
    """The normalized document, or InvalidDocument."""
    doc = normalize(raw)
    if len(doc) == 11 and valid_cpf(doc):
        return doc
    if len(doc) == 14 and valid_cnpj(doc):
        return doc
    raise InvalidDocument("not a valid CPF or CNPJ (its check digits do not match)")


def masked(doc: str) -> str:
    """What a screen shows: the middle of the document, never its start or check digits."""
    if len(doc) == 11:
        return f"***.{doc[3:6]}.{doc[6:9]}-**"
    return f"**.{doc[2:5]}.{doc[5:8]}/****-**"


def formatted(doc: str) -> str:
    """The document with its usual punctuation (the export's)."""
    if len(doc) == 11:
        return f"{doc[:3]}.{doc[3:6]}.{doc[6:9]}-{doc[9:]}"
    return f"{doc[:2]}.{doc[2:5]}.{doc[5:8]}/{doc[8:12]}-{doc[12:]}"


@dataclass(frozen=True)
class Sealer:
    """The two keys derived from the data key: one for the lookup digest, one for the sealed copy."""

    digest_key: bytes
    seal_key: bytes

    def digest(self, doc: str) -> str:
        return hmac.new(self.digest_key, doc.encode(), hashlib.sha256).hexdigest()

    def seal(self, doc: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self.seal_key).encrypt(nonce, doc.encode(), _AAD)
        return _SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str) -> str:
        if not sealed.startswith(_SEALED_PREFIX):
            raise InvalidDocument("not a sealed document")
        raw = base64.urlsafe_b64decode(sealed[len(_SEALED_PREFIX) :])
        return AESGCM(self.seal_key).decrypt(raw[:12], raw[12:], _AAD).decode()

    def fields(self, doc: str) -> dict[str, str]:
        """The stored fields of a checked document."""
        return {"doc_digest": self.digest(doc), "doc_sealed": self.seal(doc), "doc_masked": masked(doc)}


def _derive(key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(key)


@functools.lru_cache(maxsize=4)
def _sealer(key: bytes) -> Sealer:
    return Sealer(_derive(key, b"convenio document digest v1"), _derive(key, b"convenio document seal v1"))


def sealer(settings: Settings) -> Sealer:
    """The deployment's sealer; MissingDataKey when no data key is configured."""
    return _sealer(settings.secret_data_key())
