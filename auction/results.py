"""Closing a slot: from its intake log (and the public txs carried over) to the block and the
outcome of every bid.

Order of the block: winning bundles (block order of ``ordering.problem``), then the public lane
first-come first-served. Fairness rules are hard constraints:
- ``reserved_public_gas`` is kept from bundles for the public lane;
- public txs that waited ``inclusion_after_slots`` slots or more are *due*: they are in the block
  (the lane grows past its reserve if they need it, and no bundle that conflicts with one may win);
- a bundle carrying a protected tx anywhere but first is rejected (no front-runs or sandwiches);
- ``max_gas_share_per_searcher`` caps each searcher's bundle gas;
- the public pool is bounded (``auction.pool``): txs below the fee floor, over the gas cap or
  too old are dropped, and what stays pending is capped per sender and in all (cheapest evicted).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from auction import constants as C
from auction.book import Book, compute_book
from auction.bundles import compute_bid_id
from auction.crossbook import compute_cross_books
from auction.encoding import compute_bid_set_root, compute_block_hash, compute_pending_root
from auction.pool import compute_kept, is_expired, is_public_tx_admissible
from auction.presets import Rollup
from auction.types import (
    Bid,
    BidOutcome,
    Block,
    LegEntry,
    LoggedEvent,
    PendingTx,
    PublicTx,
    SlotResult,
    Tx,
    WinningBundle,
)
from ordering import packer
from ordering.columns import EncodedLegs
from ordering.problem import (
    PAYMENT_FIRST_PRICE,
    PAYMENT_VCG,
    ComponentPacking,
    Item,
    JointInput,
    JointItem,
    PackingInput,
    RollupCapacity,
    compute_searcher_gas_cap,
)
from ordering.problem import Leg as PackLeg


class EncodedBidCopy(Protocol):
    """One bid's copy for one rollup as the packing reads it (``auction.columnar``)."""

    @property
    def keys(self) -> tuple[str, ...]: ...

    @property
    def leg(self) -> PackLeg: ...

    @property
    def row(self) -> int: ...

    @property
    def item(self) -> JointItem: ...


class SlotEncoder(Protocol):
    """What the close reads of a slot's incremental encoding (``auction.columnar.SlotEncoder``;
    a protocol here, so the rules do not import the module that imports them)."""

    def copy(self, bid: Bid, rollup: int) -> EncodedBidCopy: ...

    def copies(self, bids: Sequence[Bid], rollup: int) -> Sequence[EncodedBidCopy]: ...

    def keys_of(self, bid: Bid, rollup: int) -> tuple[str, ...]: ...

    def compute_encoded(self, rows: Sequence[int], counts: Sequence[int]) -> EncodedLegs | None:
        ...

    def compute_bid_set_root(self, rollup: int, log: Sequence[LoggedEvent]) -> str: ...

    def lost_outcome(self, entry: LoggedEvent) -> BidOutcome: ...

CODE_PROTECTED = "protected_tx_not_first"


def compute_tx_keys(t: Tx) -> tuple[str, ...]:
    """Keys two transactions (or bundles holding them) must not share: its binding keys
    (``compute_tx_binding_keys``), then one per storage location it accesses."""
    return (*compute_tx_binding_keys(t), *("w" + k for k in t.access_keys))


def compute_tx_binding_keys(t: Tx) -> tuple[str, str]:
    """The keys that make two transactions exclusive whatever they access (the first two of
    ``compute_tx_keys``): its hash, and its (sender, nonce)."""
    return ("t" + t.hash, f"n{t.sender}:{t.nonce}")


def compute_conflict_keys(bid: Bid) -> tuple[str, ...]:
    """Keys two bundles must not share: tx hash, (sender, nonce), accessed storage location."""
    keys: list[str] = []
    for t in bid.txs:
        keys.extend(compute_tx_keys(t))
    return tuple(dict.fromkeys(keys))


def compute_packing_input(
    rollup: Rollup,
    bids: Sequence[Bid],
    *,
    fair: bool = True,
    lane_gas: int | None = None,
) -> PackingInput:
    """The packing instance of a slot's eligible bids under the rollup's policy."""
    policy = rollup.policy
    reserve = policy.reserved_public_gas if lane_gas is None else lane_gas
    gas_limit = policy.gas_limit - reserve if fair else policy.gas_limit
    items = tuple(
        Item(
            id=b.bid_id,
            searcher=b.searcher,
            bid_wei=b.bid_wei,
            gas=b.gas,
            keys=compute_conflict_keys(b),
        )
        for b in bids
    )
    cap = compute_searcher_gas_cap(gas_limit, policy.max_gas_share_per_searcher) if fair else None
    return PackingInput(gas_limit=gas_limit, items=items, max_gas_per_searcher=cap)


def compute_event_id(entry: LoggedEvent) -> str:
    ev = entry.event
    if isinstance(ev, Bid):
        return ev.bid_id
    if isinstance(ev, PublicTx):
        return ev.tx.hash
    return compute_bid_id(ev.evidence)


def compute_pool(
    rollup: Rollup, slot: int, carried: Sequence[PendingTx], log: Sequence[LoggedEvent]
) -> list[PendingTx]:
    """The public txs this slot may include: those carried over, then its own arrivals, less
    any the pool's rules refuse (below the fee floor, over the gas cap, too old)."""
    policy = rollup.policy
    pool: list[PendingTx] = []
    seen: set[str] = set()
    arrivals = (
        PendingTx(e.event.tx, slot, e.seq, e.event.protected)
        for e in log
        if isinstance(e.event, PublicTx)
    )
    for p in itertools.chain(carried, arrivals):
        if p.tx.hash in seen:
            continue
        seen.add(p.tx.hash)
        # Intake checked these; a log or pool that reached us otherwise is held to them too.
        if is_public_tx_admissible(policy, p.tx) and not is_expired(policy, slot, p):
            pool.append(p)
    return pool


def is_protected_misplaced(bid: Bid, protected: set[str]) -> bool:
    return bool(protected) and any(t.hash in protected for t in bid.txs[1:])


def compute_due(rollup: Rollup, slot: int, pool: Sequence[PendingTx]) -> list[PendingTx]:
    """The inclusion list: due txs that can all be in the block together, oldest first."""
    after = rollup.policy.inclusion_after_slots
    if after <= 0:
        return []
    due, keys, gas = [], set[str](), 0
    for p in pool:
        if slot - p.arrival_slot < after:
            continue
        k = set(compute_tx_binding_keys(p.tx))  # access lists don't bind txs
        # A due tx that cannot fit (gas) or is invalid beside an older due tx stays pending.
        if k & keys or gas + p.tx.gas_limit > rollup.policy.gas_limit:
            continue
        due.append(p)
        keys |= k
        gas += p.tx.gas_limit
    return due


def compute_pending(
    rollup: Rollup, slot: int, pool: Sequence[PendingTx], block_txs: Sequence[Tx]
) -> tuple[PendingTx, ...]:
    """What the pool leaves to the next slot, in first-come first-served order: the txs not in
    the block, not made invalid by a block tx with their (sender, nonce), not too old for the
    next slot, and within the pool's size and per-sender caps (cheapest, then newest, evicted)."""
    policy = rollup.policy
    in_block = {t.hash for t in block_txs}
    block_nonces = {f"n{t.sender}:{t.nonce}" for t in block_txs}
    waiting = [
        p
        for p in pool
        if p.tx.hash not in in_block
        and f"n{p.tx.sender}:{p.tx.nonce}" not in block_nonces
        and not is_expired(policy, slot + 1, p)
    ]
    return compute_kept(policy, waiting)


@dataclass(frozen=True, slots=True)
class SlotPart:
    """One rollup's share of a slot's close: the rollup, its block's parent, its intake log of
    the slot and the public txs carried from the parent."""

    rollup: Rollup
    parent_hash: str
    log: Sequence[LoggedEvent]
    carried: Sequence[PendingTx] = ()


@dataclass(frozen=True, slots=True)
class _RollupClose:
    """What one rollup brings to the slot's packing (after the cross-rollup rules)."""

    part: SlotPart
    book: Book
    pool: list[PendingTx]
    due: list[PendingTx]
    lane_gas: int
    eligible: list[Bid]
    rejected: dict[str, str]

    @property
    def chain_id(self) -> int:
        return self.part.rollup.chain_id

    def capacity(self, fair: bool = True) -> RollupCapacity:
        policy = self.part.rollup.policy
        if not fair:
            return RollupCapacity(self.chain_id, policy.gas_limit, None)
        gas_limit = policy.gas_limit - self.lane_gas
        cap = compute_searcher_gas_cap(gas_limit, policy.max_gas_share_per_searcher)
        return RollupCapacity(self.chain_id, gas_limit, cap)


def compute_slot_result(
    rollup: Rollup,
    slot: int,
    deadline_ms: int,
    parent_hash: str,
    log: Sequence[LoggedEvent],
    carried: Sequence[PendingTx] = (),
    *,
    price_of_fairness: bool = True,
) -> SlotResult:
    """The slot's result when ``rollup`` is the slot's only rollup (``compute_slot_results``
    with one part; a cross-rollup bundle's copy in ``log`` then misses its other rollups and
    is rejected)."""
    part = SlotPart(rollup, parent_hash, log, carried)
    return compute_slot_results(slot, deadline_ms, [part], price_of_fairness=price_of_fairness)[0]


def compute_slot_results(
    slot: int,
    deadline_ms: int,
    parts: Sequence[SlotPart],
    *,
    price_of_fairness: bool = True,
    encoder: SlotEncoder | None = None,
    outcomes: bool = True,
) -> tuple[SlotResult, ...]:
    """Run the slot's auction over every rollup of the slot together: one result per part,
    ascending rollup. Deterministic: same inputs, same results, bit for bit.

    Each log is replayed into its book, the books are joined by the cross-rollup rule
    (``auction.crossbook``), each rollup's fairness rules select its eligible bids (a
    cross-rollup bundle is eligible, or rejected, in all its rollups or in none), and the slot is
    packed component by component (``ordering.packer.pack_slot``: rollups linked by eligible
    cross-rollup bundles) under one time budget, the largest of the rollups' ``time_budget_ms``.
    A one-rollup slot is exactly the single-rollup auction. ``price_of_fairness=False`` skips the
    analysts' second, unconstrained packing (``unconstrained_bids_wei`` is then the winning
    bids): it is not part of any block, so a committee member need not pay for it. Likewise
    ``outcomes=False`` leaves every result's ``outcomes`` empty (``()``): what became of each
    bid is the slot's history (the engine stores it), not part of any block, and a member that
    compares blocks only need not build it. Neither flag changes a block: the same steps
    pack, price and build it.

    ``encoder`` (``auction.columnar``), when given, holds the slot's bid copies encoded as they
    were logged: the same rules run, reading each copy's conflict keys and leg from it and
    packing from its columns (the same instance, bit for bit; a copy it lacks is encoded on
    the spot).
    """
    ordered = sorted(parts, key=lambda p: p.rollup.chain_id)
    ids = [p.rollup.chain_id for p in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError(f"a rollup has two parts in slot {slot}")
    books = compute_cross_books({p.rollup.chain_id: compute_book(p.log) for p in ordered})
    closes = [_prepare_close(p, slot, books[p.rollup.chain_id], encoder) for p in ordered]
    _join_cross_eligibility(closes)
    budget = max(p.rollup.policy.time_budget_ms for p in ordered)
    inp = compute_slot_input(closes, encoder=encoder)
    components = packer.pack_slot(inp, budget)
    payments = compute_slot_payments(components, {c.chain_id: c for c in closes})
    unconstrained = None
    if price_of_fairness and any(_is_constrained(c) for c in closes):
        free = compute_slot_input(closes, fair=False, encoder=encoder)
        unconstrained = packer.pack_slot(free, budget)
    return tuple(
        _compute_rollup_result(
            c, slot, deadline_ms, components, payments, unconstrained, encoder, outcomes
        )
        for c in closes
    )


def _prepare_close(
    part: SlotPart, slot: int, book: Book, encoder: SlotEncoder | None = None
) -> _RollupClose:
    """One rollup's pool, inclusion list, lane reserve and eligible bids."""
    policy = part.rollup.policy
    pool = compute_pool(part.rollup, slot, part.carried, part.log)
    due = compute_due(part.rollup, slot, pool)
    keys_of: Callable[[Bid], tuple[str, ...]] = compute_conflict_keys
    if encoder is not None:
        keys_of = functools.partial(_encoded_keys, encoder, part.rollup.chain_id)
    eligible, rejected = compute_eligible_bids(book, pool, due, keys_of)
    lane_gas = max(policy.reserved_public_gas, sum(p.tx.gas_limit for p in due))
    return _RollupClose(part, book, pool, due, lane_gas, eligible, rejected)


def _encoded_keys(encoder: SlotEncoder, rollup: int, bid: Bid) -> tuple[str, ...]:
    return encoder.keys_of(bid, rollup)


def _join_cross_eligibility(closes: Sequence[_RollupClose]) -> None:
    """A cross-rollup bundle is rejected in all its rollups when one rule of one rollup rejects
    it (the code of the lowest such rollup), and may win in none when it conflicts with a due
    public tx of one of them (it loses everywhere). Single-rollup bids are untouched."""
    rejected: dict[str, str] = {}
    blocked: set[str] = set()
    for c in closes:  # ascending rollup: the lowest rollup's code is kept
        cross = [e.event for e in c.book.live if e.event.legs]  # type: ignore[union-attr]
        if not cross:
            continue
        eligible = {b.bid_id for b in c.eligible}
        for bid in cross:
            assert isinstance(bid, Bid)
            if bid.bid_id in c.rejected:
                rejected.setdefault(bid.bid_id, c.rejected[bid.bid_id])
            elif bid.bid_id not in eligible:
                blocked.add(bid.bid_id)
    if not rejected and not blocked:  # nothing to join: every close stays as it is
        return
    for c in closes:
        held = {e.event.bid_id for e in c.book.live}  # type: ignore[union-attr]
        c.rejected.update({i: code for i, code in rejected.items() if i in held})
        c.eligible[:] = [b for b in c.eligible if b.bid_id not in rejected
                         and b.bid_id not in blocked]  # fmt: skip


def compute_slot_input(
    closes: Sequence[_RollupClose], *, fair: bool = True, encoder: SlotEncoder | None = None
) -> JointInput:
    """The slot's packing instance: every eligible bid once (a cross-rollup bundle with a leg
    per rollup from each rollup's copy), in rollup then log order; ``fair=False`` lifts the
    fairness rules (full gas, no searcher cap, every live bid that was not rejected). With an
    ``encoder`` the legs are its encoded copies and the instance carries their columns' rows
    (``JointInput.encoded``): the same instance, packed from arrays."""
    if encoder is not None:
        return _compute_encoded_slot_input(closes, fair, encoder)
    legs: dict[str, list[PackLeg]] = {}
    first: dict[str, Bid] = {}
    for c in closes:
        for b in _packed_bids(c, fair):
            first.setdefault(b.bid_id, b)
            legs.setdefault(b.bid_id, []).append(
                PackLeg(c.chain_id, b.gas, compute_conflict_keys(b))
            )
    items = tuple(
        JointItem(id=i, searcher=b.searcher, bid_wei=b.bid_wei, legs=tuple(legs[i]))
        for i, b in first.items()
    )
    return JointInput(tuple(c.capacity(fair) for c in closes), items)


def _packed_bids(c: _RollupClose, fair: bool) -> list[Bid]:
    """The bids of ``c`` the slot packs: the eligible ones, or (``fair=False``) every live bid
    that was not rejected."""
    if fair:
        return c.eligible
    return [e.event for e in c.book.live if e.event.bid_id not in c.rejected]  # type: ignore[union-attr,misc]


def _compute_encoded_slot_input(
    closes: Sequence[_RollupClose], fair: bool, encoder: SlotEncoder
) -> JointInput:
    """``compute_slot_input`` from the encoder's copies: the same items in the same order (a
    bid's first copy, in rollup then log order, places it), each item with one leg the very
    item the encoder built when the copy was logged (the same value: its bid is this object,
    its leg this leg), a cross-rollup bid's built now from its copies' legs; and the columns'
    rows of the legs in that order."""
    at: dict[str, int] = {}  # bid id -> position in ``items``
    items: list[JointItem] = []
    rows: list[int] = []  # of each item's first leg, in item order
    more: dict[int, list[EncodedBidCopy]] = {}  # an item's further copies (cross-rollup)
    firsts: list[Bid] = []
    for k, c in enumerate(closes):
        bids = _packed_bids(c, fair)
        copies = encoder.copies(bids, c.chain_id)
        if not items:  # the first rollup with bids: all new (a book holds a bid id once)
            items = [m.item for m in copies]
            rows = [m.row for m in copies]
            firsts = list(bids)
            if k + 1 < len(closes):  # a later rollup's copy may join them
                at = {b.bid_id: j for j, b in enumerate(bids)}
            continue
        for b, made in zip(bids, copies, strict=True):
            j = at.get(b.bid_id)
            if j is None:
                at[b.bid_id] = len(items)
                items.append(made.item)
                rows.append(made.row)
                firsts.append(b)
            else:
                more.setdefault(j, []).append(made)
    counts = [1] * len(items)
    if more:
        flat: list[int] = []
        done = 0  # items whose rows are in ``flat``
        for j in sorted(more):  # each joined item's further rows right after its first
            others = more[j]
            flat.extend(rows[done : j + 1])
            flat.extend(m.row for m in others)
            done = j + 1
            b = firsts[j]
            counts[j] += len(others)
            legs = (items[j].legs[0], *(m.leg for m in others))
            items[j] = JointItem(id=b.bid_id, searcher=b.searcher, bid_wei=b.bid_wei, legs=legs)
        flat.extend(rows[done:])
        rows = flat
    encoded = encoder.compute_encoded(rows, counts)
    return JointInput(tuple(c.capacity(fair) for c in closes), tuple(items), encoded=encoded)


def _is_constrained(c: _RollupClose) -> bool:
    """Whether a fairness rule may have cost this rollup revenue (else the price is 0)."""
    cap = c.capacity()
    return (
        cap.max_gas_per_searcher is not None
        or cap.gas_limit < c.part.rollup.policy.gas_limit
        or len(c.eligible) < len(c.book.live)
    )


def compute_slot_payments(
    components: Sequence[ComponentPacking], closes: Mapping[int, _RollupClose]
) -> dict[str, int]:
    """What each winner pays for the whole bundle: a component of one rollup under that rollup's
    rule, exactly as a one-rollup slot; in a joint component a winner pays its VCG payment over
    the joint problem when every rollup it spans sells by VCG, else its bid (first price)."""
    out: dict[str, int] = {}
    for comp in components:
        rules = {r.rollup: closes[r.rollup].part.rollup.policy.payment_rule
                 for r in comp.inp.rollups}  # fmt: skip
        vcg = PAYMENT_VCG in rules.values()
        paid = packer.compute_joint_payments(
            comp.inp, comp.packing, PAYMENT_VCG if vcg else PAYMENT_FIRST_PRICE
        )
        if len(set(rules.values())) == 1:  # one rule for every leg: the payment as computed
            out.update(paid)  # (a first price is the bid)
            continue
        by_id = {it.id: it for it in comp.inp.items}
        for i, amount in paid.items():
            item = by_id[i]
            all_vcg = all(rules[leg.rollup] == PAYMENT_VCG for leg in item.legs)
            out[i] = amount if all_vcg else item.bid_wei
    return out


def compute_attribution(total: int, gas_by_rollup: Sequence[tuple[int, int]]) -> dict[int, int]:
    """``total`` wei split over rollups in proportion to their gas (floor), the remainder to the
    lowest rollup id (all of it when no gas): the shares sum to ``total``. How a cross-rollup
    bundle's payment (and bid) is attributed to the blocks of its rollups."""
    rollups = sorted(r for r, _ in gas_by_rollup)
    gas = dict(gas_by_rollup)
    whole = sum(gas.values())
    shares = {r: (total * gas[r] // whole if whole else 0) for r in rollups}
    shares[rollups[0]] += total - sum(shares.values())
    return shares


def _compute_rollup_result(
    c: _RollupClose,
    slot: int,
    deadline_ms: int,
    components: Sequence[ComponentPacking],
    payments: Mapping[str, int],
    unconstrained: Sequence[ComponentPacking] | None,
    encoder: SlotEncoder | None = None,
    outcomes: bool = True,
) -> SlotResult:
    """One rollup's block, outcomes (none unless ``outcomes``) and figures from the slot's
    packing (the bid-set root from the tree ``encoder`` kept over the log as it was appended,
    when given)."""
    r = c.chain_id
    comp = _component_of(components, r)
    packing = comp.packing
    by_id = {b.bid_id: b for b in c.eligible}
    winners = [by_id[i] for i in packing.block(r)]
    paid: dict[str, int] = {}  # this rollup's share of each winner's payment
    winning = 0  # and of the winners' bids
    for b in winners:
        if b.legs:
            gas = [(g.rollup, g.gas) for g in b.legs]
            paid[b.bid_id] = compute_attribution(payments[b.bid_id], gas)[r]
            winning += compute_attribution(b.bid_wei, gas)[r]
        else:
            paid[b.bid_id] = payments[b.bid_id]
            winning += b.bid_wei
    gas_used = dict(packing.gas_used_by_rollup)[r]
    bundle_txs = [t for b in winners for t in b.txs]
    rollup, policy = c.part.rollup, c.part.rollup.policy
    lane = compute_public_lane(c.pool, c.due, bundle_txs, policy.gas_limit - gas_used)
    pending = compute_pending(rollup, slot, c.pool, [*bundle_txs, *lane])
    bid_set_root = None if encoder is None else encoder.compute_bid_set_root(r, c.part.log)
    block = compute_block(rollup, slot, c.part.parent_hash, c.part.log, c.part.carried, winners,
                          paid, lane, pending, bid_set_root=bid_set_root)  # fmt: skip
    return SlotResult(
        rollup=r,
        slot=slot,
        deadline_ms=deadline_ms,
        block=block,
        outcomes=compute_outcomes(c.book, set(paid), paid, c.rejected,
                                  None if encoder is None else encoder.lost_outcome)
        if outcomes else (),
        winning_bids_wei=winning,
        upper_bound_wei=winning + _rollup_gap(comp, r),
        unconstrained_bids_wei=_rollup_unconstrained(c, winning, components, unconstrained),
        solver=packing.solver,
        pending=pending,
    )


def _component_of(components: Sequence[ComponentPacking], rollup: int) -> ComponentPacking:
    return next(p for p in components if any(cap.rollup == rollup for cap in p.inp.rollups))


def _attributed_bids(comp: ComponentPacking, rollup: int) -> int:
    """The bids of a component's winners on ``rollup`` (cross-rollup bids by leg gas)."""
    by_id = {it.id: it for it in comp.inp.items}
    total = 0
    for i in comp.packing.block(rollup):
        legs = [(leg.rollup, leg.gas) for leg in by_id[i].legs]
        bid = by_id[i].bid_wei
        total += compute_attribution(bid, legs)[rollup] if len(legs) > 1 else bid
    return total


def _rollup_gap(comp: ComponentPacking, rollup: int) -> int:
    """This rollup's part of its component's optimality gap (bound minus winning bids), split
    by the gas each rollup's block uses: the parts sum to the component's gap."""
    gap = comp.packing.upper_bound_wei - comp.packing.revenue_wei
    if len(comp.inp.rollups) == 1:
        return gap
    return compute_attribution(gap, comp.packing.gas_used_by_rollup)[rollup]


def _rollup_unconstrained(
    c: _RollupClose,
    winning: int,
    components: Sequence[ComponentPacking],
    unconstrained: Sequence[ComponentPacking] | None,
) -> int:
    """This rollup's part of the slot's best packing without the fairness rules (the price of
    fairness is per slot): its attributed bids in that packing, or its winning bids when the
    unconstrained packing of the slot earned no more than the fair one."""
    if unconstrained is None:
        return winning
    fair_total = sum(p.packing.revenue_wei for p in components)
    free_total = sum(p.packing.revenue_wei for p in unconstrained)
    if free_total <= fair_total:
        return winning
    return _attributed_bids(_component_of(unconstrained, c.chain_id), c.chain_id)


def compute_eligible_bids(
    book: Book,
    pool: Sequence[PendingTx],
    due: Sequence[PendingTx],
    keys_of: Callable[[Bid], tuple[str, ...]] = compute_conflict_keys,
) -> tuple[list[Bid], dict[str, str]]:
    """The live bids that may win, and those rejected with a code. A bundle carrying a protected
    tx after its first is rejected; one that conflicts with a due public tx cannot win (lost).
    ``keys_of`` is ``compute_conflict_keys`` or a cache of it (``auction.columnar``)."""
    protected = {p.tx.hash for p in pool if p.protected}
    due_keys = {k for p in due for k in compute_tx_binding_keys(p.tx)}
    rejected: dict[str, str] = {}
    if not protected and not due_keys:  # no rule can refuse a bid: every live bid may win
        return [e.event for e in book.live], rejected  # type: ignore[misc]
    eligible: list[Bid] = []
    for entry in book.live:
        bid = entry.event
        assert isinstance(bid, Bid)
        if is_protected_misplaced(bid, protected):
            rejected[bid.bid_id] = CODE_PROTECTED
        elif not due_keys or due_keys.isdisjoint(keys_of(bid)):
            eligible.append(bid)
    return eligible, rejected


def compute_public_lane(
    pool: Sequence[PendingTx], due: Sequence[PendingTx], bundle_txs: Sequence[Tx], room: int
) -> list[Tx]:
    """The public lane after the bundles: due txs first (room is reserved for them), then
    first-come first-served, each only if it fits and is not made invalid by a block tx."""
    used_keys = {k for t in bundle_txs for k in compute_tx_binding_keys(t)}
    included_hashes = {t.hash for t in bundle_txs}
    lane: list[Tx] = []
    due_hashes = {p.tx.hash for p in due}
    for p in [*due, *(p for p in pool if p.tx.hash not in due_hashes)]:
        keys = compute_tx_binding_keys(p.tx)
        if p.tx.hash in included_hashes or used_keys.intersection(keys):
            continue
        if p.tx.gas_limit > room:
            continue
        lane.append(p.tx)
        used_keys.update(keys)
        included_hashes.add(p.tx.hash)
        room -= p.tx.gas_limit
    return lane


def compute_block(
    rollup: Rollup,
    slot: int,
    parent_hash: str,
    log: Sequence[LoggedEvent],
    carried: Sequence[PendingTx],
    winners: Sequence[Bid],
    payments: Mapping[str, int],
    lane: Sequence[Tx],
    pending: Sequence[PendingTx],
    *,
    bid_set_root: str | None = None,
) -> Block:
    """The block: the winning bundles in block order, then the lane, with its roots and hash.
    ``bid_set_root``: the root over ``log``'s event ids when the caller kept it (computed here
    otherwise)."""
    if bid_set_root is None:
        bid_set_root = compute_bid_set_root([compute_event_id(e) for e in log])
    bundles = tuple(
        WinningBundle(
            b.bid_id, b.bundle_hash, b.searcher, b.bid_wei, payments[b.bid_id], b.gas,
            tuple(LegEntry(g.rollup, tuple(t.hash for t in g.txs)) for g in b.legs)
            if b.legs else (),
        )
        for b in winners
    )  # fmt: skip
    txs = [t for b in winners for t in b.txs]
    txs.extend(lane)
    fields = dict(
        rollup=rollup.chain_id,
        slot=slot,
        parent_hash=parent_hash,
        bid_set_root=bid_set_root,
        gas_used=sum(t.gas_limit for t in txs),
        revenue_wei=sum(payments.values()),
        bundles=bundles,
        public_tx_count=len(lane),
        carried_root=compute_pending_root(carried),
        pending_root=compute_pending_root(pending),
    )
    block_hash = compute_block_hash(tx_hashes=[t.hash for t in txs], **fields)
    return Block(txs=tuple(t.raw for t in txs), block_hash=block_hash, **fields)  # type: ignore[arg-type]


def compute_outcomes(
    book: Book,
    won: set[str],
    payments: Mapping[str, int],
    rejected: Mapping[str, str],
    lost_outcome: Callable[[LoggedEvent], BidOutcome] | None = None,
) -> tuple[BidOutcome, ...]:
    """What became of every distinct bid of the log, in log order. ``lost_outcome(entry)``:
    ``BidOutcome(bid, OUTCOME_LOST, 0, seq)`` of an entry, made ahead (``auction.columnar``)."""
    outcomes = []
    superseded = book.superseded
    for entry in book.bids:
        bid = entry.event
        assert isinstance(bid, Bid)
        i = bid.bid_id
        if i in won:
            outcomes.append(BidOutcome(bid, C.OUTCOME_WON, payments[i], entry.seq))
        elif i in rejected:
            outcomes.append(BidOutcome(bid, C.OUTCOME_REJECTED, 0, entry.seq, rejected[i]))
        elif i in superseded:
            outcomes.append(BidOutcome(bid, superseded[i], 0, entry.seq))
        elif lost_outcome is not None:
            outcomes.append(lost_outcome(entry))
        else:
            outcomes.append(BidOutcome(bid, C.OUTCOME_LOST, 0, entry.seq))
    return tuple(outcomes)
