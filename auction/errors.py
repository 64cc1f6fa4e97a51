"""One exception tree for every rule the engine enforces.

Each error carries a stable string ``code`` (part of the public API: clients match on it) and its
data as attributes. Transports map errors in exactly one place (``node/errors.py``); nothing else
decides how an error looks on the wire.
"""

from __future__ import annotations

# The tree's root and the packer's error live in the bottom layer; they are part of this tree.
from ordering.errors import BlockspaceError as BlockspaceError
from ordering.errors import InfeasibleInstance as InfeasibleInstance

# --- request shape --------------------------------------------------------------------------


class InvalidRequest(BlockspaceError):
    """The request is not a well-formed JSON-RPC call (wrong types, missing fields)."""

    code = "invalid_request"


class ParseError(BlockspaceError):
    """The body is not JSON."""

    code = "parse_error"


class MethodNotFound(BlockspaceError):
    code = "method_not_found"


class InvalidParams(BlockspaceError):
    """A parameter has the wrong type, bad hex, or a value out of range."""

    code = "invalid_params"


class RequestTooLarge(BlockspaceError):
    code = "request_too_large"


# --- authentication -------------------------------------------------------------------------


class MissingSignature(BlockspaceError):
    code = "missing_signature"


class InvalidSignature(BlockspaceError):
    code = "invalid_signature"


# --- transactions and bundles ---------------------------------------------------------------


class InvalidTransaction(BlockspaceError):
    """A raw transaction that does not decode or whose signature does not recover a sender."""

    code = "invalid_transaction"


class UnprotectedTransaction(BlockspaceError):
    """A legacy transaction without an EIP-155 chain id: it could be replayed on any rollup."""

    code = "unprotected_transaction"


class UnknownRollup(BlockspaceError):
    code = "unknown_rollup"


class ChainIdMismatch(BlockspaceError):
    """The transactions of one bundle name different chains."""

    code = "chain_id_mismatch"


class EmptyBundle(BlockspaceError):
    code = "empty_bundle"


class BundleTooLarge(BlockspaceError):
    code = "bundle_too_large"


class DuplicateTransaction(BlockspaceError):
    code = "duplicate_transaction"


class BundleGasTooHigh(BlockspaceError):
    """The bundle alone uses more gas than a block may give to bundles."""

    code = "bundle_gas_too_high"


class BidTooLow(BlockspaceError):
    """The bid is below the rollup's reserve price."""

    code = "bid_too_low"


class BidTooHigh(BlockspaceError):
    """The bid (explicit, or the bundle's priority tips) is above ``constants.MAX_BID_WEI``."""

    code = "bid_too_high"


class ProtectedTransactionMisplaced(BlockspaceError):
    """A protected transaction appears after position 0 of a bundle (front-run or sandwich)."""

    code = "protected_tx_not_first"


class InvalidTimestampRange(BlockspaceError):
    code = "invalid_timestamp_range"


# --- cross-rollup bundles (docs/shared-sequencing.md) -------------------------------------------


class CrossRollupNotAllowedHere(BlockspaceError):
    """A bundle with transactions of several chains sent to one rollup's own endpoint
    (``POST /rollup/{id}``): cross-rollup bundles go to ``POST /`` or ``/ws``."""

    code = "cross_rollup_not_allowed_here"


class LegChainMismatch(BlockspaceError):
    """The bundle's ``rollups`` field names no leg for a chain its transactions are for."""

    code = "leg_chain_mismatch"


class EmptyLeg(BlockspaceError):
    """The bundle's ``rollups`` field names a rollup none of its transactions is for."""

    code = "empty_leg"


class TooManyRollups(BlockspaceError):
    """The bundle spans more rollups than ``Preset.max_rollups_per_bundle``."""

    code = "too_many_rollups"


class FeeTooLow(BlockspaceError):
    """A public tx's priority fee per gas is below the rollup's floor for its public pool."""

    code = "fee_too_low"


class TxGasTooHigh(BlockspaceError):
    """A public tx claims more gas than the rollup lets one public tx have."""

    code = "tx_gas_too_high"


# --- slots ----------------------------------------------------------------------------------


class SlotClosed(BlockspaceError):
    """The target slot's deadline has passed (or it is in the past)."""

    code = "slot_closed"


class SlotTooFarAhead(BlockspaceError):
    code = "slot_too_far_ahead"


class SlotNotFound(BlockspaceError):
    code = "slot_not_found"


class SlotFull(BlockspaceError):
    """The slot holds as many events or bytes as a slot may (docs/decisions.md: slot capacity)."""

    code = "slot_full"


# --- searcher limits ------------------------------------------------------------------------


class SearcherLimitExceeded(BlockspaceError):
    """Per-searcher limit for one slot (bundles, bytes) reached."""

    code = "searcher_limit_exceeded"


class RateLimited(BlockspaceError):
    """Too many requests from one searcher or connection in a short window."""

    code = "rate_limited"


class PublicPoolFull(BlockspaceError):
    """The rollup's pool of pending public transactions is full and the tx does not pay more per
    gas than the cheapest waiting one (or this slot has logged as many as the pool holds)."""

    code = "public_pool_full"


class SenderLimitExceeded(BlockspaceError):
    """The tx's sender already has as many public txs waiting as one sender may."""

    code = "sender_limit_exceeded"


class BundleNotFound(BlockspaceError):
    code = "bundle_not_found"


# --- fairness (auction/fairness.py) -------------------------------------------------------------


class FairnessViolation(BlockspaceError):
    """A block breaks a fairness rule of the rollup's policy (``data.rule`` names it)."""

    code = "fairness_violation"


class ForcedTxMissing(FairnessViolation):
    """A due public transaction (the inclusion list) is missing from the block."""

    code = "forced_tx_missing"


# --- receipts (auction/receipts.py) and evidence (committee/evidence.py) ----------------------


class EvidenceRefused(BlockspaceError):
    """Base of every reason a receipt or a piece of evidence is refused (docs/accountability.md):
    each subclass's code is stable, and refused evidence changes nothing."""

    code = "evidence_refused"


class MalformedReceipt(EvidenceRefused):
    """A receipt with a missing, unknown, mistyped or out-of-range field (``data.field``)."""

    code = "malformed_receipt"


class MalformedHex(EvidenceRefused):
    """A hex field that is not ``0x`` and the right number of lowercase hex digits."""

    code = "malformed_hex"


class ForgedReceipt(EvidenceRefused):
    """A receipt whose signature does not recover the operator it names (or expected)."""

    code = "forged_receipt"


class WrongOperator(EvidenceRefused):
    """A receipt signed by an address other than the deployment's operator."""

    code = "wrong_operator"


# --- the deposit ledger (auction/ledger.py, docs/accountability.md) ---------------------------


class LedgerRefused(BlockspaceError):
    """Base of every reason a ledger change is refused: each subclass's code is stable, and a
    refused change changes nothing."""

    code = "ledger_refused"


class InvalidAmount(LedgerRefused):
    """An amount that is not a whole number of wei in 1..2**128-1 (``data.max_wei``)."""

    code = "invalid_amount"


class InvalidAccount(LedgerRefused):
    """An account that is not a lowercase 0x address (or a reserved account's name)."""

    code = "invalid_account"


class InsufficientDeposit(LedgerRefused):
    """A bid above the searcher's free balance (balance minus what its open bids could owe)."""

    code = "insufficient_deposit"


class InsufficientBalance(LedgerRefused):
    """A debit larger than the account's balance (no balance is ever negative)."""

    code = "insufficient_balance"


class WithdrawalExceedsFreeBalance(LedgerRefused):
    """A withdrawal larger than the account's free balance."""

    code = "withdrawal_exceeds_free_balance"


class WithdrawalNotReady(LedgerRefused):
    """A withdrawal executed before its delay passed (``data.ready_ms``)."""

    code = "withdrawal_not_ready"


class WithdrawalNotFound(LedgerRefused):
    code = "withdrawal_not_found"


class AlreadyApplied(LedgerRefused):
    """The change's cause (a deposit's reference, a withdrawal, a block, a piece of evidence)
    was applied before: each cause acts once."""

    code = "already_applied"


class StaleBalance(LedgerRefused):
    """A change computed from an account's balance (a slash takes a fraction of it) found the
    balance changed before it applied: the caller reads it again and recomputes."""

    code = "stale_balance"


class EvidenceAlreadyApplied(AlreadyApplied):
    """Evidence whose offence (its evidence id) was slashed before: an offence is slashed once,
    however many times and in whatever form it is proven."""

    code = "evidence_already_applied"


class Unauthorized(BlockspaceError):
    """An operator API call without the operator's bearer token (or with the API disabled)."""

    code = "unauthorized"

# --- encrypted bids (docs/encryption.md) ------------------------------------------------------


class EncryptionRequired(BlockspaceError):
    """A plaintext ``eth_sendBundle`` for a rollup whose policy is ``encryption: required``."""

    code = "encryption_required"


class EncryptionNotServed(BlockspaceError):
    """``bs_sendEncryptedBundle`` to an engine without a committee: no slot key will exist."""

    code = "encryption_not_served"


class PublicFieldsMismatch(BlockspaceError):
    """The call's public fields are not the ones the ciphertext's authenticated header carries
    (``data.field`` names the first that differs)."""

    code = "public_fields_mismatch"


class CiphertextSearcherMismatch(BlockspaceError):
    """The ciphertext names another searcher than the one who signed the call carrying it."""

    code = "ciphertext_searcher_mismatch"


class EncapsulationLimit(BlockspaceError):
    """A searcher's second encapsulation in one slot: every distinct encapsulation costs the
    committee a pairing at close, so a searcher's bids of a slot share one (decision 62)."""

    code = "encapsulation_limit"


class CiphertextReplayed(BlockspaceError):
    """A ciphertext already logged for its slot, sent again in another signed call."""

    code = "ciphertext_replayed"


class OpenedBidMismatch(BlockspaceError):
    """An opened bundle that contradicts its public fields (more gas than ``maxGas``, other
    rollups, another slot or replacement uuid; ``data.field`` names which)."""

    code = "opened_bid_contradicts_public_fields"


# --- system ---------------------------------------------------------------------------------


class StoreUnavailable(BlockspaceError):
    """The bid store did not accept the write; the bid is NOT acknowledged."""

    code = "store_unavailable"


class CloseFenced(BlockspaceError):
    """A write of a slot's close carried a fencing token older than one the store has seen
    for the slot: another engine process took the close lease over (this one stalled past
    it). The write changed nothing; the process follows the stored outcome (docs/redis.md,
    "Close leases and fencing"). Never sent to a client."""

    code = "close_fenced"
