"""The one place Redis keys are built.

Every key of a convênio carries its shard's hash tag (`{s7}`), so one script only ever touches
one hash slot: the layout a Redis Cluster needs (the client is one server's today). Process-wide records (API keys, the
integration key) live under the global tag `{g}`, with their own event stream.
"""

from __future__ import annotations

import zlib

#: Buckets of the cross-convênio index: ~15 participants each at a million, well inside a
#: listpack hash (128 entries). Past about eight million participants, raise it (and rebuild).
PCONV_BUCKETS = 65_536

GLOBAL = "g"
#: the consumer group through which ledger writers share the event streams
LEDGER_GROUP = "ledger"


class Keys:
    def __init__(self, prefix: str, shards: int) -> None:
        self.prefix = prefix
        self.shards = shards

    # -- sharding ---------------------------------------------------------------------------
    def shard_of(self, convenio: str) -> int:
        return zlib.crc32(convenio.encode()) % self.shards

    def tag(self, shard: int | str) -> str:
        return f"{self.prefix}:{{s{shard}}}" if shard != GLOBAL else f"{self.prefix}:{{g}}"

    def all_events(self) -> dict[str, str]:
        """Every event stream -> its shard's name ("0".."N-1", and "g" for the global one)."""
        names = [str(s) for s in range(self.shards)] + [GLOBAL]
        return {self.events(n): n for n in names}

    # -- per shard --------------------------------------------------------------------------
    def events(self, shard: int | str) -> str:
        return f"{self.tag(shard)}:events"

    def replicated(self, shard: int | str) -> str:
        """A mark the ledger writers set before `WAIT`: a write of their own on the shard's
        node, so that `WAIT` confirms everything written there before it (the events read)."""
        return f"{self.tag(shard)}:replicated"

    def pending(self, shard: int) -> str:
        """Sorted set of PENDING empenho ids scored by their expiry (ms)."""
        return f"{self.tag(shard)}:pending"

    def convenio(self, convenio: str) -> str:
        return f"{self.tag(self.shard_of(convenio))}:conv:{convenio}"

    def members(self, convenio: str) -> str:
        """Set of the convênio's participant codes."""
        return f"{self.tag(self.shard_of(convenio))}:members:{convenio}"

    def participant(self, convenio: str, participant: str) -> str:
        return f"{self.tag(self.shard_of(convenio))}:part:{convenio}:{participant}"

    def vehicles(self, convenio: str, participant: str) -> str:
        """Hash plate -> JSON of the vehicle (description, last km)."""
        return f"{self.tag(self.shard_of(convenio))}:veh:{convenio}:{participant}"

    def proof(self, convenio: str, proof_digest: str) -> str:
        return f"{self.tag(self.shard_of(convenio))}:proof:{proof_digest}"

    def idempotency(self, convenio: str, api_key_id: str, idem_digest: str) -> str:
        return f"{self.tag(self.shard_of(convenio))}:idem:{api_key_id}:{idem_digest}"

    def empenho(self, shard: int, empenho_id: str) -> str:
        return f"{self.tag(shard)}:emp:{empenho_id}"

    def empenho_history(self, shard: int, empenho_id: str) -> str:
        return f"{self.tag(shard)}:emph:{empenho_id}"

    # -- cross-shard indexes (single-key commands only) -------------------------------------
    def idempotency_claim(self, api_key_id: str, idem_digest: str) -> str:
        """Which request first used an Idempotency-Key, whatever convênio it named."""
        return f"{self.prefix}:idemclaim:{api_key_id}:{idem_digest}"

    def participant_convenios(self, participant: str) -> str:
        """The bucket (a hash: participant code -> its convênio codes, comma-separated) that
        indexes this participant code across convênios; see lua/pconv_add.lua."""
        bucket = zlib.crc32(participant.encode()) % PCONV_BUCKETS
        return f"{self.prefix}:pconv:{bucket:04x}"

    def meta(self) -> str:
        return f"{self.prefix}:meta"

    # -- global tag -------------------------------------------------------------------------
    def api_key(self, digest: str) -> str:
        return f"{self.tag(GLOBAL)}:apikey:{digest}"

    def api_key_ids(self) -> str:
        """Hash api key id -> digest, so a key can be revoked by its id."""
        return f"{self.tag(GLOBAL)}:apikeyids"

    def integration(self) -> str:
        return f"{self.tag(GLOBAL)}:integration"

    # -- stores and their terminals ------------------------------------------------------------
    def store(self, code: str) -> str:
        """Hash of a store: name, time zone, status."""
        return f"{self.tag(GLOBAL)}:store:{code}"

    def store_terminals(self, code: str) -> str:
        """Hash terminal code -> status (ACTIVE | BLOCKED) of a store's terminals."""
        return f"{self.tag(GLOBAL)}:storeterms:{code}"

    def stores(self) -> str:
        """Set of every store's code."""
        return f"{self.tag(GLOBAL)}:stores"

    # -- a customer's password lockout (gateway/auth/password_check.py) ----------------------
    # One count for all the customer's convênios, under the tag of `shard_of(customer)` as their
    # credits are, so the scripts that open and close a check touch one slot.
    def password_lockout(self, customer: str) -> str:
        """Hash of the customer's password failures: failures, locked_until (ms), at (ms)."""
        return f"{self.tag(self.shard_of(customer))}:pwlock:{customer}"

    def password_checks(self, customer: str) -> str:
        """Sorted set of the customer's password checks in progress (protocol -> stale-after ms)."""
        return f"{self.tag(self.shard_of(customer))}:pwchecks:{customer}"

    # -- back-office operators (gateway/operators): their login failures and sessions ----------
    def operator_lockout(self, login: str) -> str:
        """Hash of a login's failed attempts: failures, locked_until (ms)."""
        return f"{self.tag(GLOBAL)}:oplock:{login}"

    def operator_session(self, token_digest: str) -> str:
        """Hash of one back-office session, under the SHA-256 of its cookie's token."""
        return f"{self.tag(GLOBAL)}:opsess:{token_digest}"

    def operator_sessions(self, login: str) -> str:
        """Set of the token digests of an operator's sessions, to end them all at once."""
        return f"{self.tag(GLOBAL)}:opsessions:{login}"

    # -- the customers' current accounts and orders (docs/credits.md) -------------------------
    # A customer's credits live under the tag of `shard_of(customer)`, so a credit hold's
    # script touches one slot and appends to that shard's stream.
    def credits(self, customer: str) -> str:
        """Hash credit id -> JSON record of the customer's credit (remaining included)."""
        return f"{self.tag(self.shard_of(customer))}:ccr:{customer}"

    def credit_refs(self, customer: str) -> str:
        """Hash reference -> credit id: a reference names one credit of the customer."""
        return f"{self.tag(self.shard_of(customer))}:ccref:{customer}"

    def credits_open(self, customer: str) -> str:
        """Set of the customer's credit ids with something remaining."""
        return f"{self.tag(self.shard_of(customer))}:ccopen:{customer}"

    def credit_idempotency(self, customer: str, api_key_id: str, idem_digest: str) -> str:
        """The answer of a credit hold under its Idempotency-Key, beside the customer's credits."""
        return f"{self.tag(self.shard_of(customer))}:cidem:{api_key_id}:{idem_digest}"

    def credit_hold(self, shard: int, hold_id: str) -> str:
        return f"{self.tag(shard)}:chold:{hold_id}"

    def credit_pending(self, shard: int) -> str:
        """Sorted set of PENDING credit hold ids scored by their expiry (ms)."""
        return f"{self.tag(shard)}:cpending"

    def order_holds(self, order: str) -> str:
        """Set of the credit hold ids of an order (cross-shard index: single-key commands only)."""
        return f"{self.prefix}:orderholds:{order}"

    def order_status_params(self) -> str:
        """Hash of the ERP's order-status parameters."""
        return f"{self.tag(GLOBAL)}:orderstatus"

    def order_status_results(self, order: str) -> str:
        """Hash status -> JSON report of processing that order status (replayed on a re-post)."""
        return f"{self.tag(GLOBAL)}:ostatus:{order}"
