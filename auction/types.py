"""Plain data of the auction: every value the core computes on, frozen and hashable.

Conventions: addresses and hashes are lowercase ``0x`` hex strings; amounts are Python ints of
wei (``*_wei``); times are integer milliseconds since the Unix epoch (``*_ms``); a rollup is named
by its chain id.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Tx:
    """A decoded, signed Ethereum transaction (legacy, EIP-2930 or EIP-1559)."""

    raw: bytes
    hash: str
    tx_type: int
    chain_id: int | None
    sender: str
    nonce: int
    gas_limit: int
    priority_fee_wei: int  # legacy: gas price; typed 1559: max priority fee per gas
    max_fee_wei: int  # legacy/2930: gas price
    to: str | None
    # Storage locations the access list names, as "<address>:<slot>"; they serve as write keys.
    access_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the searcher signed: the exact bytes and the signature header value.

    Anyone (a committee member, an auditor) can re-check it: recover the address from
    ``signature`` over ``body`` and re-derive the bid from the body.
    """

    body: bytes
    signature: str  # "0x<address>:0x<65-byte signature>", as in X-Flashbots-Signature


@dataclass(frozen=True, slots=True)
class Leg:
    """The part of a bundle on one rollup: that chain's transactions, in the request's order."""

    rollup: int
    txs: tuple[Tx, ...]
    gas: int  # sum of the leg's gas limits


@dataclass(frozen=True, slots=True)
class Bid:
    """One accepted ``eth_sendBundle``: a bundle with its sealed bid for one slot of one rollup.

    A cross-rollup bundle (transactions of several chain ids, docs/shared-sequencing.md) is
    logged once per rollup it spans, each copy the bundle *as seen from that rollup*: ``rollup``,
    ``txs`` and ``gas`` are that rollup's leg; ``bid_id``, ``bundle_hash`` (over every
    transaction of the request), ``searcher``, ``bid_wei`` (the whole bundle's one bid) and
    ``evidence`` are the same in every copy; ``legs`` holds every leg, sorted by rollup. A
    single-rollup bundle has no legs (``()``).
    """

    bid_id: str  # keccak256(signature || body): unique per signed submission
    rollup: int
    slot: int
    searcher: str
    bundle_hash: str  # keccak256(concat(tx hashes)), exactly as Flashbots clients compute it
    txs: tuple[Tx, ...]
    bid_wei: int
    gas: int  # sum of the transactions' gas limits
    received_ms: int
    evidence: Evidence
    replacement_uuid: str | None = None
    reverting_tx_hashes: tuple[str, ...] = ()
    min_timestamp: int | None = None
    max_timestamp: int | None = None
    explicit_bid: bool = False  # True when the searcher gave a `bid` field, else priority tips
    legs: tuple[Leg, ...] = ()  # every leg of a cross-rollup bundle, by rollup; () otherwise

    @property
    def rollups(self) -> tuple[int, ...]:
        """Every rollup the bundle spans, ascending (just its own for a single-rollup bundle)."""
        return tuple(leg.rollup for leg in self.legs) if self.legs else (self.rollup,)

    @property
    def spans(self) -> tuple[int, ...]:
        """The other rollups a cross-rollup bundle spans (``()`` for a single-rollup bundle)."""
        return tuple(leg.rollup for leg in self.legs if leg.rollup != self.rollup)

    @property
    def size_bytes(self) -> int:
        """Bytes of the transactions (what Flashbots' per-bundle limit counts)."""
        return sum(len(t.raw) for t in self.txs)

    @property
    def request_bytes(self) -> int:
        """Bytes of the signed request (what the log keeps and the intake limits count)."""
        return len(self.evidence.body)


@dataclass(frozen=True, slots=True)
class Cancel:
    """One accepted ``eth_cancelBundle``: cancels the searcher's bundles under that uuid, in the
    slot it names (``slot``) or in the slots open when it arrived."""

    rollup: int
    searcher: str
    replacement_uuid: str
    received_ms: int
    evidence: Evidence
    slot: int | None = None

    @property
    def request_bytes(self) -> int:
        return len(self.evidence.body)


@dataclass(frozen=True, slots=True)
class PublicTx:
    """A public (non-bundle) transaction sent with ``eth_sendRawTransaction``, or a protected one
    sent with ``eth_sendPrivateTransaction``: bundles may carry a protected tx only first
    (back-runs yes, front-runs and sandwiches no). The signed tx is its own evidence."""

    rollup: int
    tx: Tx
    received_ms: int
    protected: bool = False


@dataclass(frozen=True, slots=True)
class SealedBid:
    """One accepted ``bs_sendEncryptedBundle``: a bundle encrypted to the committee's slot key,
    of which the engine knows only the public fields (docs/encryption.md). Its evidence is the
    signed call, which carries the ciphertext; the bundle and its bid are opened after the
    deadline, through the same intake rules as a plaintext bundle (``committee.opening``).

    It is logged once, in ``rollup``'s log: the public ``rollups`` it names, its endpoint's
    rollup if it names none. ``encapsulation`` (C1 || V) is what opening pays a pairing for:
    intake takes one per searcher per slot (decision 62).
    """

    bid_id: str  # keccak256(signature || body), as a plaintext bid's
    rollup: int
    slot: int
    searcher: str
    max_gas: int  # the public upper bound on the bundle's gas
    received_ms: int
    evidence: Evidence
    ciphertext: bytes
    encapsulation: bytes
    ciphertext_hash: str  # keccak256(ciphertext): one ciphertext is logged once per slot
    rollups: tuple[int, ...] = ()  # the public ``rollups`` field, as stated; () if absent
    replacement_uuid: str | None = None

    @property
    def request_bytes(self) -> int:
        """Bytes of the signed request (what the log keeps and the intake limits count)."""
        return len(self.evidence.body)


IntakeEvent = Bid | Cancel | PublicTx


@dataclass(frozen=True, slots=True)
class PendingTx:
    """A public transaction waiting for inclusion; served first-come first-served, by
    (arrival_slot, seq)."""

    tx: Tx
    arrival_slot: int
    seq: str
    protected: bool = False


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An intake event with the position the store gave it in its slot's log (``<ms>-<seq>``)."""

    seq: str
    event: IntakeEvent


@dataclass(frozen=True, slots=True)
class LoggedSealedBid:
    """A sealed bid with its position in its slot's log. Sealed bids share the log (and its
    seqs) with the plaintext events, but the stores hand them out apart (``read_sealed_log``):
    nothing can be done with one before the slot key exists, and a reader that replays
    plaintext events never meets one. Seqs order the two kinds together."""

    seq: str
    event: SealedBid


@dataclass(frozen=True, slots=True)
class BidOutcome:
    """A bid as revealed after its slot closed."""

    bid: Bid
    outcome: str  # one of constants.OUTCOMES
    payment_wei: int = 0
    seq: str = ""
    code: str = ""  # why a bid was rejected at close (e.g. protected_tx_not_first)


@dataclass(frozen=True, slots=True)
class LegEntry:
    """One leg of a cross-rollup bundle as a block names it: its rollup and its transactions'
    hashes in order (what that rollup's block must carry for the bundle)."""

    rollup: int
    tx_hashes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WinningBundle:
    """A block's entry for a winning bundle. For a cross-rollup bundle (docs/shared-sequencing.md)
    the entry is the same bundle in the block of every rollup it spans: the same ``bid_id``,
    ``bundle_hash``, ``searcher``, ``bid_wei`` and ``legs`` (every leg, by rollup), with this
    rollup's leg gas as ``gas`` and its share of the payment as ``payment_wei``."""

    bid_id: str
    bundle_hash: str
    searcher: str
    bid_wei: int
    payment_wei: int
    gas: int
    legs: tuple[LegEntry, ...] = ()  # every leg of a cross-rollup bundle; () otherwise

    @property
    def rollups(self) -> tuple[int, ...]:
        """The rollups a cross-rollup bundle spans, ascending (``()`` for a single-rollup one)."""
        return tuple(leg.rollup for leg in self.legs)


@dataclass(frozen=True, slots=True)
class Block:
    """The ordered block of one slot of one rollup, before or after committee signing."""

    rollup: int
    slot: int
    parent_hash: str
    bundles: tuple[WinningBundle, ...]
    txs: tuple[bytes, ...]  # raw transactions in block order: bundles, then the public lane
    gas_used: int
    revenue_wei: int
    bid_set_root: str
    block_hash: str  # signing root over the canonical encoding (auction.encoding)
    public_tx_count: int = 0  # the last public_tx_count of ``txs`` are the public lane
    carried_root: str = "0x" + "00" * 32  # the pending public txs this slot started from
    pending_root: str = "0x" + "00" * 32  # the pending public txs it leaves to the next slot


@dataclass(frozen=True, slots=True)
class SlotResult:
    """Everything decided at a slot's close: the block and the fate of every bid."""

    rollup: int
    slot: int
    deadline_ms: int
    block: Block
    outcomes: tuple[BidOutcome, ...]
    winning_bids_wei: int  # the packer's objective: sum of the winning bids
    upper_bound_wei: int  # certified bound on the objective (== winning_bids_wei when optimal)
    unconstrained_bids_wei: int  # the objective without fairness constraints (price of fairness)
    solver: str = "greedy"
    solve_ms: float = 0.0
    pending: tuple[PendingTx, ...] = ()  # public txs left waiting after this block
    extra: dict[str, object] = field(default_factory=dict, compare=False)
