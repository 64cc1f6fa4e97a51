"""Engine settings from environment variables (``BLOCKSPACE_*``) and command-line flags."""

from __future__ import annotations

import sys
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from auction.presets import DEFAULT_CHAIN_ID, MAINNET, MINIMAL, Preset, Rollup

# Where `blockspace serve --workers N` hands the settings to its worker processes.
SETTINGS_ENV = "BLOCKSPACE_SETTINGS_JSON"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BLOCKSPACE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8545, ge=0, le=65535)
    slot_ms: int = Field(default=2000, ge=250, le=12_000)
    store: str = "memory"
    rollups: list[int] = Field(default_factory=lambda: [DEFAULT_CHAIN_ID])
    preset: str = "mainnet"
    genesis_ms: int = 0  # 0: aligned to the Unix epoch (slot = now // slot_ms)
    redis_appendfsync: str = "everysec"  # everysec | always | unmanaged
    # Replicas that must confirm a bid (WAIT) before it is acknowledged (docs/redis.md): None
    # means 1 on a Redis Cluster, 0 on a single server. A bid not confirmed within the timeout
    # is refused with store_unavailable (it may be logged; a resend is idempotent).
    redis_wait_replicas: int | None = Field(default=None, ge=0)
    redis_wait_timeout_ms: int = Field(default=500, ge=1, le=60_000)
    max_slots_ahead: int | None = None
    log_level: str = "info"
    # Policy overrides applied to every rollup.
    gas_limit: int | None = None
    max_gas_share_per_searcher: float | None = None
    reserve_price_wei: int | None = None
    payment_rule: str | None = None
    # History retention (issue 5): trim whole slots older than this many slots and/or days.
    history_retention_slots: int | None = Field(default=None, ge=1)
    history_retention_days: float | None = Field(default=None, gt=0)
    # Policy override: public txs due for the inclusion list after this many slots.
    inclusion_after_slots: int | None = Field(default=None, ge=0)
    # Signing committee (issue 4, docs/committee.md). ``serve`` signs blocks when ``committee``
    # (the public committee file) is set; ``signers`` are the members' URLs, member 1 first.
    committee: str | None = None
    signers: list[str] = Field(default_factory=list)
    # A slot may be signed until its deadline + this (default: one slot).
    signing_window_ms: int | None = Field(default=None, ge=50)
    max_clock_skew_ms: int = Field(default=250, ge=0, le=60_000)
    # HTTP limits (issue 9, finding 12; node/server.py, docs/protocol.md): a request must arrive
    # whole within the read timeout of its first byte; idle keep-alive connections close after
    # http_keep_alive_s; connections over either cap get 503 and are closed (per process).
    http_read_timeout_s: float = Field(default=10.0, gt=0, le=600)
    http_keep_alive_s: float = Field(default=5.0, gt=0, le=600)
    http_max_connections: int = Field(default=4096, ge=1)
    http_max_connections_per_client: int = Field(default=256, ge=1)
    signer_evidence_sample: int = Field(default=16, ge=0)  # losing bids a member fully re-derives
    # Streaming re-checks (docs/committee.md, "Streaming"): the coordinator pushes the open
    # slot's log to the members as it grows; each member checks each event once as it arrives,
    # "full" (re-derive every bid) or "sample" (bind each, re-derive winners and a sample).
    # On by default (decision 161); off, members check the whole log at the deadline.
    committee_streaming: bool = True
    signer_stream_check: Literal["full", "sample"] = "full"
    # The operator's address a member pins (docs/accountability.md): every proposal must carry
    # its signature. Unset, a member checks the address a proposal names and keeps it.
    signer_operator: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    # How many newest slots a member keeps endorsements and signed event lists for.
    signer_kept_slots: int = Field(default=256, ge=1)
    # Signed requests at least this large are decoded in a worker thread, off the event loop.
    decode_offload_bytes: int = Field(default=32 * 1024, ge=0)
    # The operator key that signs receipts (docs/accountability.md): a file holding the 32-byte
    # secp256k1 secret as 0x hex, or the hex itself in BLOCKSPACE_OPERATOR_KEY. Neither: the
    # engine makes a throwaway key at start and logs its address (demos and tests only).
    operator_key_file: str | None = None
    operator_key: SecretStr | None = None
    # Sign a receipt for every acknowledged event (off only to measure what receipts cost).
    receipts: bool = True
    # Sign the receipts acknowledged together once, over their batch (version 2, with a Merkle
    # path each; docs/accountability.md); false: one signature per receipt (version 1).
    receipt_batches: bool = True
    # Searcher deposits (docs/accountability.md): off keeps intake as it was; on, a bid above the
    # searcher's free balance is refused (insufficient_deposit) and signed blocks' payments are
    # debited. Withdrawals execute after withdrawal_delay_ms. The operator API (deposits,
    # withdrawals, stakes) needs the bearer token BLOCKSPACE_OPERATOR_TOKEN; without one it
    # refuses every call (unauthorized).
    deposits: bool = False
    withdrawal_delay_ms: int = Field(default=600_000, ge=0)
    operator_token: SecretStr | None = None
    # Slashing from evidence (POST /v1/evidence): the fraction of the offender's stake taken, and
    # the reporter's share of what was taken (the rest is burned), in basis points.
    slash_fraction_bps: int = Field(default=1000, ge=0, le=10_000)
    reporter_share_bps: int = Field(default=5000, ge=0, le=10_000)

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        if v.startswith("redis+cluster://"):
            from node.stores.redis import parse_cluster_nodes  # the one parser of the syntax

            parse_cluster_nodes(v)  # ValueError names the bad node
            return v
        if v != "memory" and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "store must be 'memory', a redis:// URL or redis+cluster://host:port,host:port"
            )
        return v

    @field_validator("redis_appendfsync")
    @classmethod
    def _fsync(cls, v: str) -> str:
        if v not in ("everysec", "always", "unmanaged"):
            raise ValueError("redis_appendfsync must be everysec, always or unmanaged")
        return v

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str) -> str:
        if v not in ("mainnet", "minimal"):
            raise ValueError("preset must be mainnet or minimal")
        return v

    @model_validator(mode="after")
    def _policy(self) -> Settings:
        # The overrides must make a policy that works (e.g. a public tx stays pending until due).
        self.rollup_configs()
        return self

    def base_preset(self) -> Preset:
        return MINIMAL if self.preset == "minimal" else MAINNET

    def rollup_configs(self) -> dict[int, Rollup]:
        policy = self.base_preset().policy
        overrides = {
            k: getattr(self, k)
            for k in (
                "gas_limit",
                "max_gas_share_per_searcher",
                "reserve_price_wei",
                "payment_rule",
                "inclusion_after_slots",
            )
            if getattr(self, k) is not None
        }
        if overrides:
            policy = policy.with_(**overrides)
        return {
            cid: Rollup(chain_id=cid, name=f"rollup-{cid}", policy=policy) for cid in self.rollups
        }


def settings_from_flags(prog: str, flags: dict[str, Any]) -> Settings | None:
    """Settings from the environment overridden by the flags that were given (not None); on a
    bad value, print one line per problem to stderr, prefixed with ``prog``, and return None."""
    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(x) for x in err["loc"])
            print(f"{prog}: {field}: {err['msg']}", file=sys.stderr)
        return None
