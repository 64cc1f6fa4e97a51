"""Auction history for analysts: what is recorded about every closed slot (pure rules).

A slot's ``SlotHistory`` is written in the same atomic step as its result
(``Store.save_result(result, history=...)``), so a slot has a history exactly when it has a
result, and nothing about a slot is readable before it closed; the data API (``api/data.py``)
serves it. Everything here is pure: records, ``compute_slot_history`` from a ``SlotResult`` and
the slot's refusals, ``compute_rejection`` from a refused request, tallies, concentration
measures and the stats roll-up. The shell's side (filing refusals as they come, trimming old
slots) is ``api/history.py``.

A bid record is deliberately small: who, what bundle, how much, how much gas, when, what became
of it. The signed evidence and raw transactions stay in the slot's intake log, found by ``seq``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rlp

from auction import constants as C
from auction.bundles import parse_quantity
from auction.errors import BlockspaceError
from auction.hashing import keccak256, to_hex
from auction.transactions import compute_bundle_hash
from auction.types import SlotResult

# Outcomes in the order the API lists them; "rejected" covers refusals at intake (with the stable
# error code) and bids the close rejected (e.g. protected_tx_not_first).
OUTCOMES: tuple[str, ...] = C.OUTCOMES

# Counters kept per searcher (and rollup) over the retained history.
TALLY_FIELDS: tuple[str, ...] = (
    "bids",
    C.OUTCOME_WON,
    C.OUTCOME_LOST,
    C.OUTCOME_CANCELLED,
    C.OUTCOME_REPLACED,
    C.OUTCOME_REJECTED,
    "paid_wei",
    "overpaid_wei",
    "gas_won",
)

# Refusals of one slot that are kept at most (per engine process; the stores cap them too).
MAX_REFUSALS_PER_SLOT = 4096
# A refused request names at most this many transactions we hash for its bundle hash.
_MAX_HASHED_TXS = C.FLASHBOTS_MAX_TXS_PER_BUNDLE


@dataclass(frozen=True, slots=True)
class BidRecord:
    """One bid as analysts see it after its slot closed."""

    rollup: int
    slot: int
    searcher: str
    bundle_hash: str | None  # None when a refused request's transactions were not valid hex
    bid_wei: int | None  # None when a refused request named no readable bid
    gas: int | None  # None for refusals before the transactions were decoded
    received_ms: int
    outcome: str  # one of OUTCOMES
    payment_wei: int = 0
    code: str | None = None  # the stable error code, for rejected bids only
    seq: str | None = None  # position in the slot's intake log (its evidence); None if never logged
    replacement_uuid: str | None = None
    tx_count: int | None = None
    # Every rollup a cross-rollup bundle spans, ascending; () for a single-rollup bundle (and for
    # refusals, whose legs were never derived). Its copy in each spanned rollup is one record.
    rollups: tuple[int, ...] = ()

    @property
    def is_cross(self) -> bool:
        """Whether the bid is a copy of a cross-rollup bundle."""
        return len(self.rollups) > 1

    @property
    def spanned(self) -> tuple[int, ...]:
        """The rollups the bundle spans (just its own for a single-rollup bid)."""
        return self.rollups if self.rollups else (self.rollup,)


def is_record_match(record: BidRecord, *, cross: bool | None, spans: int | None) -> bool:
    """Whether a bid record passes the data API's cross-rollup filters (None: no filter)."""
    if cross is not None and record.is_cross != cross:
        return False
    return spans is None or spans in record.spanned


def compute_cross_revenue(records: Iterable[BidRecord]) -> tuple[int, int]:
    """(revenue, winners) of the cross-rollup bundles among some records.

    A cross-rollup bundle's record in each rollup carries that rollup's share of its payment
    (the shares sum to the payment), so summing records over every rollup of a deployment counts
    each bundle's payment exactly once.
    """
    revenue = winners = 0
    for r in records:
        if r.outcome == C.OUTCOME_WON and r.is_cross:
            revenue += r.payment_wei
            winners += 1
    return revenue, winners


@dataclass(frozen=True, slots=True)
class StatsRow:
    """What the stats roll-up needs of one slot, kept apart from the summary to read it fast."""

    slot: int
    revenue_wei: int
    bids: int
    rejected: int
    winners: int
    gas_used: int
    winning_bids_wei: int
    unconstrained_bids_wei: int
    upper_bound_wei: int
    winners_by_searcher: tuple[tuple[str, int, int], ...]  # (searcher, winning bundles, gas)
    cross_revenue_wei: int = 0  # this rollup's shares of its cross-rollup winners' payments
    cross_winners: int = 0  # block entries of cross-rollup bundles

    def to_json(self) -> list[Any]:
        return [
            self.slot,
            str(self.revenue_wei),
            self.bids,
            self.rejected,
            self.winners,
            self.gas_used,
            str(self.winning_bids_wei),
            str(self.unconstrained_bids_wei),
            str(self.upper_bound_wei),
            [list(w) for w in self.winners_by_searcher],
            str(self.cross_revenue_wei),
            self.cross_winners,
        ]

    @classmethod
    def from_json(cls, d: Sequence[Any]) -> StatsRow:
        return cls(
            slot=d[0],
            revenue_wei=int(d[1]),
            bids=d[2],
            rejected=d[3],
            winners=d[4],
            gas_used=d[5],
            winning_bids_wei=int(d[6]),
            unconstrained_bids_wei=int(d[7]),
            upper_bound_wei=int(d[8]),
            winners_by_searcher=tuple((s, w, g) for s, w, g in d[9]),
            # Rows written before shared sequencing have no cross-rollup fields.
            cross_revenue_wei=int(d[10]) if len(d) > 10 else 0,
            cross_winners=d[11] if len(d) > 11 else 0,
        )


@dataclass(frozen=True, slots=True)
class SlotHistory:
    """Everything recorded about one closed slot; written once, with the slot's result."""

    rollup: int
    slot: int
    summary: dict[str, Any]  # JSON-ready; what /v1/data/slots lists
    block: list[int]  # block order: each winning bundle as its index in ``bids``
    stats: StatsRow
    bids: tuple[BidRecord, ...]  # arrival order
    tallies: dict[str, dict[str, int]]  # per searcher: increments of TALLY_FIELDS


@dataclass(frozen=True, slots=True)
class SlotDetail:
    """A recorded slot as read back: summary (with the committee's word, if any), block, bids."""

    summary: dict[str, Any]
    block: list[int]  # indexes into ``bids``, in block order
    bids: tuple[BidRecord, ...]


# --- records ---------------------------------------------------------------------------------


def bid_record_to_json(r: BidRecord) -> dict[str, Any]:
    """The data API's form of a bid: snake_case, wei as decimal strings, times in ms."""
    return {
        "rollup": r.rollup,
        "slot": r.slot,
        "searcher": r.searcher,
        "bundle_hash": r.bundle_hash,
        "bid_wei": None if r.bid_wei is None else str(r.bid_wei),
        "gas": r.gas,
        "received_ms": r.received_ms,
        "outcome": r.outcome,
        "payment_wei": str(r.payment_wei),
        "code": r.code,
        "seq": r.seq,
        "replacement_uuid": r.replacement_uuid,
        "tx_count": r.tx_count,
        "rollups": list(r.spanned),
        "cross": r.is_cross,
    }


def block_to_json(detail: SlotDetail) -> list[dict[str, Any]]:
    """The block order of a slot: each winning bundle's bid, with its position and bid index."""
    return [
        {"position": position, "bid_index": i, **bid_record_to_json(detail.bids[i])}
        for position, i in enumerate(detail.block)
    ]


def compute_clearing_price(block_bundles: Iterable[tuple[int, int]]) -> int | None:
    """The lowest winning bid per unit of gas, in wei (rounded down); None without winners.

    ``block_bundles`` are (bid_wei, gas) of the winning bundles. It is the rate the marginal
    winner offered: every winner bid at least this much per gas.
    """
    rates = [bid // gas for bid, gas in block_bundles if gas > 0]
    return min(rates) if rates else None


def compute_concentration(values: Mapping[str, int]) -> dict[str, Any]:
    """Top-1 and top-2 shares and the Herfindahl index (sum of squared shares, 0..1)."""
    total = sum(values.values())
    if total <= 0:
        return {"total": 0, "top1_share": None, "top2_share": None, "hhi": None, "top": []}
    ranked = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
    shares = [v / total for _, v in ranked]
    return {
        "total": total,
        "top1_share": round(shares[0], 6),
        "top2_share": round(sum(shares[:2]), 6),
        "hhi": round(sum(s * s for s in shares), 6),
        "top": [{"searcher": s, "value": v, "share": round(v / total, 6)} for s, v in ranked[:5]],
    }


def compute_tallies(
    records: Iterable[BidRecord], clearing_price_wei_per_gas: int | None
) -> dict[str, dict[str, int]]:
    """Per-searcher counter increments for a slot's records (negate them to undo the slot).

    ``overpaid_wei`` of a win is what it paid above the clearing price for its gas; it can be
    negative under a payment rule that charges less than the bid (VCG).
    """
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(TALLY_FIELDS, 0))
    for r in records:
        t = out[r.searcher]
        t["bids"] += 1
        t[r.outcome] += 1
        if r.outcome == C.OUTCOME_WON:
            gas = r.gas or 0
            t["paid_wei"] += r.payment_wei
            t["gas_won"] += gas
            if clearing_price_wei_per_gas is not None:
                t["overpaid_wei"] += r.payment_wei - clearing_price_wei_per_gas * gas
    return {s: {k: v for k, v in t.items() if v} for s, t in out.items()}


def compute_searcher_summary(
    searcher: str, rollup: int | None, tally: Mapping[str, int]
) -> dict[str, Any]:
    """The data API's view of a searcher from its counters."""
    won, lost = tally.get(C.OUTCOME_WON, 0), tally.get(C.OUTCOME_LOST, 0)
    return {
        "searcher": searcher,
        "rollup": rollup,
        "bids": tally.get("bids", 0),
        "outcomes": {o: tally.get(o, 0) for o in OUTCOMES},
        "wins": won,
        # Of the bids still in the auction when the slot closed, the share that won.
        "win_rate": round(won / (won + lost), 6) if won + lost else None,
        "total_paid_wei": str(tally.get("paid_wei", 0)),
        "gas_won": tally.get("gas_won", 0),
        "average_overpayment_wei": (str(tally.get("overpaid_wei", 0) // won) if won else None),
    }


# --- one slot ---------------------------------------------------------------------------------


def compute_slot_history(
    result: SlotResult,
    refusals: Sequence[BidRecord],
    *,
    recorded_ms: int,
    gas_limit: int,
) -> SlotHistory:
    """The history of a closed slot: its result's bids and block, plus the refusals at intake."""
    block = result.block
    records, order = compute_slot_records(result, refusals)
    clearing = compute_clearing_price((w.bid_wei, w.gas) for w in block.bundles)
    outcomes = Counter(r.outcome for r in records)
    wins: Counter[str] = Counter()
    gas_by: Counter[str] = Counter()
    for w in block.bundles:
        wins[w.searcher] += 1
        gas_by[w.searcher] += w.gas
    summary = compute_slot_summary(
        result, records, outcomes, wins, clearing, recorded_ms=recorded_ms, gas_limit=gas_limit
    )
    cross_revenue, cross_winners = compute_cross_revenue(records)
    stats = StatsRow(
        slot=result.slot,
        revenue_wei=block.revenue_wei,
        bids=len(records),
        rejected=outcomes.get(C.OUTCOME_REJECTED, 0),
        winners=len(block.bundles),
        gas_used=block.gas_used,
        winning_bids_wei=result.winning_bids_wei,
        unconstrained_bids_wei=result.unconstrained_bids_wei,
        upper_bound_wei=result.upper_bound_wei,
        winners_by_searcher=tuple((s, wins[s], gas_by[s]) for s in sorted(wins)),
        cross_revenue_wei=cross_revenue,
        cross_winners=cross_winners,
    )
    return SlotHistory(
        rollup=result.rollup,
        slot=result.slot,
        summary=summary,
        block=order,
        stats=stats,
        bids=records,
        tallies=compute_tallies(records, clearing),
    )


def compute_slot_records(
    result: SlotResult, refusals: Sequence[BidRecord]
) -> tuple[tuple[BidRecord, ...], list[int]]:
    """A closed slot's bid records in arrival order (its result's outcomes and the refusals at
    intake), and its block as indexes into them."""
    logged = [
        BidRecord(
            rollup=result.rollup,
            slot=result.slot,
            searcher=o.bid.searcher,
            bundle_hash=o.bid.bundle_hash,
            bid_wei=o.bid.bid_wei,
            gas=o.bid.gas,
            received_ms=o.bid.received_ms,
            outcome=o.outcome,
            payment_wei=o.payment_wei,
            code=o.code or None,
            seq=o.seq or None,
            replacement_uuid=o.bid.replacement_uuid,
            tx_count=len(o.bid.txs),
            rollups=o.bid.rollups if o.bid.legs else (),
        )
        for o in result.outcomes
    ]
    # Refusals are filed per (rollup, slot); keep only this slot's, in case a store mixes them.
    refused = [r for r in refusals if r.rollup == result.rollup and r.slot == result.slot]
    # Arrival order; sorted() is stable, so ties keep log order, then refusal order.
    everything = [*logged, *refused]
    ids = [o.bid.bid_id for o in result.outcomes] + [None] * len(refused)
    arrival = sorted(range(len(everything)), key=lambda i: everything[i].received_ms)
    records = tuple(everything[i] for i in arrival)
    # The block order as indexes into the slot's bids: the records already hold every field.
    index_of = {ids[i]: n for n, i in enumerate(arrival) if ids[i] is not None}
    return records, [index_of[w.bid_id] for w in result.block.bundles]


def compute_slot_summary(
    result: SlotResult,
    records: Sequence[BidRecord],
    outcomes: Mapping[str, int],
    wins: Mapping[str, int],
    clearing: int | None,
    *,
    recorded_ms: int,
    gas_limit: int,
) -> dict[str, Any]:
    """The summary row of a closed slot (``/v1/data/slots``): amounts as decimal strings."""
    block = result.block
    win_conc = compute_concentration(wins)
    cross_revenue, cross_winners = compute_cross_revenue(records)
    return {
        "rollup": result.rollup,
        "slot": result.slot,
        "deadline_ms": result.deadline_ms,
        "recorded_ms": recorded_ms,
        "block_hash": block.block_hash,
        "parent_hash": block.parent_hash,
        "bid_set_root": block.bid_set_root,
        "gas_used": block.gas_used,
        "gas_limit": gas_limit,
        "public_tx_count": block.public_tx_count,
        "revenue_wei": str(block.revenue_wei),
        "winning_bids_wei": str(result.winning_bids_wei),
        "upper_bound_wei": str(result.upper_bound_wei),
        "unconstrained_bids_wei": str(result.unconstrained_bids_wei),
        # What the fairness rules cost: the best block without them minus the chosen block.
        "price_of_fairness_wei": str(result.unconstrained_bids_wei - result.winning_bids_wei),
        # How far the solver's block may be from the best: its certified bound minus its value.
        "optimality_gap_wei": str(result.upper_bound_wei - result.winning_bids_wei),
        "clearing_price_wei_per_gas": None if clearing is None else str(clearing),
        "bids": len(records),
        "winners": len(block.bundles),
        "searchers": len({r.searcher for r in records}),
        "outcomes": {o: outcomes.get(o, 0) for o in OUTCOMES},
        "wins_top1_share": win_conc["top1_share"],
        "wins_hhi": win_conc["hhi"],
        "solver": result.solver,
        "solve_ms": result.solve_ms,
        # This rollup's shares of the payments of its cross-rollup winners, and how many.
        "cross_revenue_wei": str(cross_revenue),
        "cross_winners": cross_winners,
    }


def clearing_price_of(summary: Mapping[str, Any]) -> int | None:
    """The clearing price a stored summary recorded (to undo its tallies on trim)."""
    value = summary.get("clearing_price_wei_per_gas")
    return None if value is None else int(value)


# --- refusals at intake ------------------------------------------------------------------------


def peek_chain_id(raw: bytes) -> int | None:
    """The chain id a raw transaction names, without checking its signature; None if unreadable.

    Only used to file a refused bundle under its rollup; an accepted one is fully decoded.
    """
    try:
        if raw and raw[0] in (1, 2):
            fields = rlp.decode(raw[1:])
            return int.from_bytes(fields[0], "big")
        fields = rlp.decode(raw)
        v = int.from_bytes(fields[6], "big")
        return (v - 35) // 2 if v >= 35 else None
    except Exception:  # any malformed input simply has no readable chain id
        return None


def compute_rejection(
    params: Any,
    *,
    searcher: str,
    code: str,
    received_ms: int,
    default_rollup: int,
    endpoint_rollup: int | None,
    served: Collection[int] = (),
) -> BidRecord | None:
    """The history record of a refused ``eth_sendBundle``; None when its target slot is unknown.

    It reads what it can of the params (target slot, transactions, bid, replacement uuid) and
    never raises: refused input is arbitrary. It is filed under the endpoint's rollup, else
    under the lowest of ``served`` its transactions name (a refused cross-rollup bundle is filed
    once), else the first transaction's chain, else ``default_rollup``.
    """
    if isinstance(params, list) and len(params) == 1:
        params = params[0]
    if not isinstance(params, Mapping):
        return None
    try:
        slot = parse_quantity(params.get("blockNumber"), "blockNumber")
    except BlockspaceError:
        return None
    if slot is None:
        return None
    rollup = endpoint_rollup if endpoint_rollup is not None else default_rollup
    bundle_hash: str | None = None
    tx_count: int | None = None
    txs = params.get("txs")
    if isinstance(txs, list):
        tx_count = len(txs)
        raws = _raw_txs(txs)
        if raws:
            bundle_hash = compute_bundle_hash([to_hex(keccak256(r)) for r in raws])
            if endpoint_rollup is None:
                rollup = compute_refusal_rollup(raws, served) or default_rollup
    try:
        bid_wei = parse_quantity(params.get("bid"), "bid", allow_decimal_string=True)
    except BlockspaceError:
        bid_wei = None
    uuid = params.get("replacementUuid")
    uuid_hex = uuid.lower().replace("-", "") if isinstance(uuid, str) else ""
    return BidRecord(
        rollup=rollup,
        slot=slot,
        searcher=searcher,
        bundle_hash=bundle_hash,
        bid_wei=bid_wei,
        gas=None,
        received_ms=received_ms,
        outcome=C.OUTCOME_REJECTED,
        code=code,
        replacement_uuid=uuid_hex if _is_uuid_hex(uuid_hex) else None,
        tx_count=tx_count,
    )


def compute_refusal_rollup(raws: Sequence[bytes], served: Collection[int]) -> int | None:
    """The rollup a refused bundle without an endpoint is filed under: the lowest served chain
    its transactions name, else the first transaction's chain (None if unreadable)."""
    chains = [peek_chain_id(r) for r in raws]
    named = [c for c in chains if c is not None and c in served]
    return min(named) if named else chains[0]


def _raw_txs(txs: list[Any]) -> list[bytes]:
    """The raw bytes of every transaction, or [] if any is not 0x-hex or there are too many."""
    if not txs or len(txs) > _MAX_HASHED_TXS:
        return []
    out = []
    for item in txs:
        if not isinstance(item, str) or not item.startswith(("0x", "0X")) or len(item) % 2:
            return []
        try:
            out.append(bytes.fromhex(item[2:]))
        except ValueError:
            return []
    return out


def _is_uuid_hex(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


# --- stats -------------------------------------------------------------------------------------


# Slots per pre-aggregated stats bucket (Redis): a range reads whole buckets and at most
# 2 x (STATS_BUCKET_SLOTS - 1) single-slot rows at its edges.
STATS_BUCKET_SLOTS = 100

# Additive totals of a stats part, in the order StatsPart holds them.
STATS_TOTALS: tuple[str, ...] = (
    "slots",
    "bids",
    "rejected",
    "winners",
    "gas_used",
    "revenue_wei",
    "winning_bids_wei",
    "unconstrained_bids_wei",
    "upper_bound_wei",
    "cross_revenue_wei",
    "cross_winners",
)


@dataclass(frozen=True, slots=True)
class StatsPart:
    """The stats of some slots (one slot, or a bucket of them): every field adds up."""

    totals: dict[str, int]  # STATS_TOTALS
    wins: dict[str, int]  # winning bundles per searcher
    gas: dict[str, int]  # winning bundle gas per searcher

    @classmethod
    def of_row(cls, row: StatsRow) -> StatsPart:
        totals = {
            "slots": 1,
            "bids": row.bids,
            "rejected": row.rejected,
            "winners": row.winners,
            "gas_used": row.gas_used,
            "revenue_wei": row.revenue_wei,
            "winning_bids_wei": row.winning_bids_wei,
            "unconstrained_bids_wei": row.unconstrained_bids_wei,
            "upper_bound_wei": row.upper_bound_wei,
            "cross_revenue_wei": row.cross_revenue_wei,
            "cross_winners": row.cross_winners,
        }
        return cls(
            totals,
            {s: w for s, w, _ in row.winners_by_searcher},
            {s: g for s, _, g in row.winners_by_searcher},
        )


def compute_stats(
    parts: Iterable[StatsPart],
    *,
    failed_slots: int,
    first_slot: int | None,
    last_slot: int | None,
) -> dict[str, Any]:
    """Roll up slots: revenue, bids, winners, concentration of wins and of gas, fairness."""
    totals: Counter[str] = Counter()
    wins: Counter[str] = Counter()
    gas: Counter[str] = Counter()
    for part in parts:
        totals.update(part.totals)
        wins.update(part.wins)
        gas.update(part.gas)
    winning, unconstrained = totals["winning_bids_wei"], totals["unconstrained_bids_wei"]
    pof = unconstrained - winning
    revenue, cross_revenue = totals["revenue_wei"], totals["cross_revenue_wei"]
    return {
        "slots": totals["slots"],
        "first_slot": first_slot,
        "last_slot": last_slot,
        "revenue_wei": str(totals["revenue_wei"]),
        "bids": totals["bids"],
        "rejected": totals["rejected"],
        "winners": totals["winners"],
        "winning_searchers": sum(1 for v in wins.values() if v),
        "gas_used": totals["gas_used"],
        "wins_concentration": compute_concentration(+wins),
        "gas_concentration": compute_concentration(+gas),
        "winning_bids_wei": str(winning),
        "unconstrained_bids_wei": str(unconstrained),
        "price_of_fairness_wei": str(pof),
        "price_of_fairness_ratio": round(pof / unconstrained, 6) if unconstrained else None,
        "optimality_gap_wei": str(totals["upper_bound_wei"] - winning),
        "failed_slots": failed_slots,
        "cross_revenue_wei": str(cross_revenue),
        "cross_revenue_share": round(cross_revenue / revenue, 6) if revenue > 0 else None,
        "cross_winners": totals["cross_winners"],
    }
