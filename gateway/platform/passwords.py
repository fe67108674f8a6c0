"""Participant passwords: argon2id over an HMAC of the password keyed with a server-side pepper.

The pepper lives outside the database, so a stolen hash table cannot be brute-forced even
though a PIN has only 10^4..10^6 values. Hashing costs ~30 ms of CPU, so it runs on a thread
pool (argon2's C code releases the GIL), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: OWASP's minimum row for argon2id: m = 19 MiB, t = 2, p = 1.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1


#: Niceness of the hashing threads. Linux schedules threads, not processes: at nice 10 a hash
#: thread weighs about a tenth of the event loop's thread, so a burst of password checks slows
#: other checks, not the holds and commits on the same core.
HASH_THREAD_NICE = 10


def _yield_to_holds() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed: run as is
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_THREAD_NICE)


class PasswordHasher:
    def __init__(self, pepper: bytes, threads: int) -> None:
        self._pepper = pepper
        self._argon2 = Argon2Hasher(
            time_cost=ARGON2_TIME_COST,
            memory_cost=ARGON2_MEMORY_KIB,
            parallelism=ARGON2_PARALLELISM,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2", initializer=_yield_to_holds)

    def _peppered(self, password: str) -> bytes:
        return hmac.new(self._pepper, password.encode(), hashlib.sha256).digest()

    def hash_sync(self, password: str) -> str:
        return self._argon2.hash(self._peppered(password))

    def verify_sync(self, stored_hash: str, password: str) -> bool:
        try:
            return self._argon2.verify(stored_hash, self._peppered(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.hash_sync, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.verify_sync, stored_hash, password)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
