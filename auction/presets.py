"""Parameters that differ between deployments and tests.

``MAINNET`` is what ``blockspace serve`` uses unless told otherwise; ``MINIMAL`` makes edge cases
cheap to reach in tests (tiny gas limit, few transactions per bundle, short slots).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from auction import constants as C
from ordering.problem import PAYMENT_FIRST_PRICE


@dataclass(frozen=True, slots=True)
class Policy:
    """Per-rollup auction policy: every rule a rollup may tune lives here."""

    gas_limit: int = 30_000_000
    reserve_price_wei: int = 0
    payment_rule: str = PAYMENT_FIRST_PRICE
    # Fairness (hard constraints, enforced by the packer).
    max_gas_share_per_searcher: float = 1.0
    reserved_public_gas: int = 0
    inclusion_after_slots: int = 0  # 0 disables the inclusion list
    # Solver budget, so a slot's deadline always holds.
    time_budget_ms: int = 50
    # Intake limits. Bytes are those of the signed requests (what the log stores and every
    # committee member receives), not only of the transactions in them.
    max_txs_per_bundle: int = C.FLASHBOTS_MAX_TXS_PER_BUNDLE
    max_bundle_bytes: int = C.FLASHBOTS_MAX_BUNDLE_BYTES  # the transactions' bytes
    max_access_keys_per_bundle: int = 4_096  # storage keys named in the access lists
    max_bundles_per_searcher_per_slot: int = 512  # bids and cancels
    max_bytes_per_searcher_per_slot: int = 4 * 1024 * 1024
    # Slot capacity, first come first served (docs/decisions.md): a slot's log holds at most
    # this many bids and cancels and this many bytes of signed requests, so a proposal stays
    # below the signers' limit (committee.signer.MAX_PROPOSAL_BYTES) whoever sends them.
    max_bids_per_slot: int = 32_768
    max_bytes_per_slot: int = 16 * 1024 * 1024
    # The public pool (auction/pool.py; docs/decisions.md, "The public pool's bounds").
    max_pending_public_txs: int = 8_192
    max_public_txs_per_sender: int = 16
    min_public_fee_per_gas_wei: int = 1_000_000  # 0.001 gwei of effective priority fee
    max_public_tx_gas: int = 16_777_216  # 2**24, L1's per-transaction cap (EIP-7825)
    max_public_tx_age_slots: int = 300  # 10 minutes of 2 s slots
    # Encrypted bids (docs/encryption.md): "optional" takes plaintext and encrypted bundles,
    # "required" refuses plaintext eth_sendBundle for this rollup (encryption_required).
    encryption: str = C.ENCRYPTION_OPTIONAL

    def __post_init__(self) -> None:
        # A policy that cannot work is refused when it is made, not found out at a close.
        if self.max_pending_public_txs < 1 or self.max_public_txs_per_sender < 1:
            raise ValueError("the public pool and each sender must be allowed at least one tx")
        if self.min_public_fee_per_gas_wei < 0 or self.max_public_tx_gas < 1:
            raise ValueError("the public fee floor and gas cap must be non-negative and positive")
        if self.max_public_tx_age_slots < max(self.inclusion_after_slots, 0):
            raise ValueError(
                f"max_public_tx_age_slots ({self.max_public_tx_age_slots}) must be at least "
                f"inclusion_after_slots ({self.inclusion_after_slots}): a public tx must stay "
                "pending until it is due"
            )
        if self.encryption not in C.ENCRYPTION_POLICIES:
            raise ValueError(f"encryption must be one of {sorted(C.ENCRYPTION_POLICIES)}")
        # Verify every per-slot sum of bids stays far inside the header's uint256 fields
        if not 1 <= self.max_bids_per_slot <= C.MAX_BIDS_PER_SLOT:
            raise ValueError(f"max_bids_per_slot must be in 1..{C.MAX_BIDS_PER_SLOT}")

    def with_(self, **changes: object) -> Policy:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Rollup:
    """A rollup served by this deployment; its id is its EIP-155 chain id."""

    chain_id: int
    name: str = ""
    policy: Policy = field(default_factory=Policy)


# The most rollups any deployment lets one bundle span (a copy per rollup in one store step).
MAX_ROLLUPS_PER_BUNDLE = 64


@dataclass(frozen=True, slots=True)
class Preset:
    """Deployment-wide timing and intake parameters."""

    slot_ms: int = 2_000
    max_slots_ahead: int = 32
    # Requests per second one searcher may send over one connection before being rate limited.
    searcher_rate_per_s: int = 20_000
    searcher_burst: int = 40_000
    policy: Policy = field(default_factory=Policy)
    # Rollups one cross-rollup bundle may span (docs/shared-sequencing.md): each leg is a copy
    # in another slot log and a constraint of the joint solve.
    max_rollups_per_bundle: int = 4

    def __post_init__(self) -> None:
        # Verify a bundle may span at least its own rollup, and a bounded number of them
        if not 1 <= self.max_rollups_per_bundle <= MAX_ROLLUPS_PER_BUNDLE:
            raise ValueError(
                f"max_rollups_per_bundle must be in 1..{MAX_ROLLUPS_PER_BUNDLE}, "
                f"not {self.max_rollups_per_bundle}"
            )


MAINNET = Preset()

MINIMAL = Preset(
    slot_ms=250,
    max_slots_ahead=4,
    searcher_rate_per_s=1_000,
    searcher_burst=1_000,
    policy=Policy(
        gas_limit=1_000_000,
        max_txs_per_bundle=4,
        max_bundle_bytes=4_096,
        max_access_keys_per_bundle=64,
        max_bundles_per_searcher_per_slot=8,
        max_bytes_per_searcher_per_slot=32_768,
        max_bids_per_slot=64,
        max_bytes_per_slot=262_144,
        time_budget_ms=20,
        max_pending_public_txs=16,
        max_public_txs_per_sender=4,
        min_public_fee_per_gas_wei=10**9,
        max_public_tx_gas=250_000,
        max_public_tx_age_slots=4,
    ),
)

DEFAULT_CHAIN_ID = 167_001
