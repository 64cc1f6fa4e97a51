"""Protocol constants: fixed for every deployment (presets hold what varies)."""

from __future__ import annotations

from typing import Final

# Flashbots' limits for one bundle; ours are the defaults of the per-rollup policy.
FLASHBOTS_MAX_TXS_PER_BUNDLE: Final = 100
FLASHBOTS_MAX_BUNDLE_BYTES: Final = 300_000

# A JSON-RPC body or websocket frame larger than this is refused before parsing.
MAX_REQUEST_BYTES: Final = 1_048_576

# Intrinsic gas of the cheapest transaction; a tx claiming less cannot be valid.
MIN_TX_GAS: Final = 21_000

# Amounts. Every amount that reaches a uint256 field of the block header (a bid, a payment, the
# revenue) is bounded at intake: a bid, and the priority tips a bundle implies, are at most
# MAX_BID_WEI (2**128 - 1 wei, about 3.4e20 ETH, far above any real supply), and a slot holds
# at most MAX_BIDS_PER_SLOT = 2**24 events, so every per-slot sum stays below 2**152
# (docs/decisions.md).
MAX_BID_WEI: Final = (1 << 128) - 1
MAX_BIDS_PER_SLOT: Final = 1 << 24
# EIP-2681: a transaction's nonce is below 2**64 - 1.
MAX_TX_NONCE: Final = (1 << 64) - 2

# Outcomes a bid can have once its slot has closed.
OUTCOME_WON: Final = "won"
OUTCOME_LOST: Final = "lost"
OUTCOME_CANCELLED: Final = "cancelled"
OUTCOME_REPLACED: Final = "replaced"
OUTCOME_REJECTED: Final = "rejected"
OUTCOMES: Final = (OUTCOME_WON, OUTCOME_LOST, OUTCOME_CANCELLED, OUTCOME_REPLACED, OUTCOME_REJECTED)

# Version byte of the canonical encodings (bid-set root, block hash). Bumped on any change.
ENCODING_VERSION: Final = 1
# A block with a cross-rollup bundle entry: every entry also commits to its legs
# (docs/protocol.md, "Cross-rollup entries"); a block without one keeps version 1's bytes.
ENCODING_VERSION_CROSS: Final = 2

# A rollup's policy on encrypted bids (Policy.encryption; docs/encryption.md).
ENCRYPTION_OPTIONAL: Final = "optional"
ENCRYPTION_REQUIRED: Final = "required"
ENCRYPTION_POLICIES: Final = frozenset({ENCRYPTION_OPTIONAL, ENCRYPTION_REQUIRED})
