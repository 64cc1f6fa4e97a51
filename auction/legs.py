"""A bundle's legs: one per rollup its transactions are for (docs/shared-sequencing.md).

A bundle's rollups come from its transactions' chain ids; its leg on a rollup is that chain's
transactions in the order the request lists them. A bundle of one chain is a single-rollup
bundle, exactly as before shared sequencing; one of several chains is a cross-rollup bundle,
logged once per rollup it spans, each copy the bundle as seen from that rollup
(``compute_bid_copies``). The rules here run inside ``auction.bundles.compute_bid``, in the
order written. Pure.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping, Sequence
from typing import Any

from auction.errors import (
    ChainIdMismatch,
    CrossRollupNotAllowedHere,
    EmptyLeg,
    InvalidParams,
    LegChainMismatch,
    TooManyRollups,
    UnknownRollup,
)
from auction.presets import Rollup
from auction.types import Bid, Tx

# The default of ``Preset.max_rollups_per_bundle`` (for callers that do not name one).
DEFAULT_MAX_ROLLUPS_PER_BUNDLE = 4
_MAX_CHAIN_ID = (1 << 256) - 1


def parse_stated_rollups(value: Any, max_rollups: int) -> frozenset[int] | None:
    """The optional ``rollups`` field of ``eth_sendBundle``: the chain ids the searcher means
    the bundle to span (None when absent). Checked before anything is decoded."""
    if value is None:
        return None
    # Verify it is a non-empty list of at most max_rollups distinct chain ids
    if not isinstance(value, list) or not value:
        raise InvalidParams("rollups must be a non-empty list of chain ids", field="rollups")
    if len(value) > max_rollups:
        raise TooManyRollups(
            f"rollups names {len(value)} rollups; a bundle may span at most {max_rollups}",
            limit=max_rollups,
        )
    stated: set[int] = set()
    for i, item in enumerate(value):
        chain_id = _chain_id(item, i)
        if chain_id in stated:
            raise InvalidParams(f"rollups names {chain_id} twice", field="rollups", index=i)
        stated.add(chain_id)
    return frozenset(stated)


def _chain_id(item: Any, index: int) -> int:
    """One entry of ``rollups``: a chain id as a JSON number or a hex string."""
    if isinstance(item, bool) or not isinstance(item, (int, str)):
        raise InvalidParams("a chain id must be a number or a hex string", field="rollups")
    try:
        out = item if isinstance(item, int) else int(item, 16) if item[:2] in ("0x", "0X") else -1
    except ValueError:
        out = -1
    if not 0 <= out <= _MAX_CHAIN_ID:
        raise InvalidParams("rollups holds a chain id that is not valid", field="rollups",
                            index=index)
    return out


def compute_decode_limits(rollups: Mapping[int, Rollup], max_rollups: int) -> tuple[int, int]:
    """Transactions and bytes a request may hold before anything is decoded: what its legs
    could hold together on the loosest rollups (each leg is checked against its own rollup's
    policy after decoding). One served rollup: that rollup's limits, as before."""
    loosest = min(max_rollups, len(rollups))
    txs = sorted((r.policy.max_txs_per_bundle for r in rollups.values()), reverse=True)
    size = sorted((r.policy.max_bundle_bytes for r in rollups.values()), reverse=True)
    return sum(txs[:loosest]), sum(size[:loosest])


def compute_legs(
    txs: Sequence[Tx],
    rollups: Mapping[int, Rollup],
    *,
    endpoint_rollup: int | None,
    stated: frozenset[int] | None,
    max_rollups: int,
) -> list[tuple[Rollup, tuple[Tx, ...]]]:
    """The bundle's legs, by rollup: each served rollup with its transactions, in request order.
    Raises the refusal of a bundle whose chains are not ones it may span here."""
    by_chain: dict[int | None, list[Tx]] = {}
    for t in txs:
        by_chain.setdefault(t.chain_id, []).append(t)
    # Verify every transaction names a chain
    if None in by_chain:
        raise UnknownRollup("a transaction names no chain", chain_id=None)
    chain_ids = sorted(c for c in by_chain if c is not None)
    # Verify the bundle spans at most max_rollups rollups
    if len(chain_ids) > max_rollups:
        raise TooManyRollups(
            f"the transactions are for {len(chain_ids)} chains; a bundle may span at most "
            f"{max_rollups}",
            limit=max_rollups,
        )
    # Verify a rollup's own endpoint gets bundles of its chain only
    if endpoint_rollup is not None and len(chain_ids) > 1:
        raise CrossRollupNotAllowedHere(
            f"the transactions are for chains {chain_ids}; this endpoint serves only "
            f"{endpoint_rollup}: send cross-rollup bundles to POST / or /ws",
            chain_ids=chain_ids,
        )
    # Verify the rollups the searcher stated are exactly the transactions' chains
    if stated is not None:
        unstated = [c for c in chain_ids if c not in stated]
        if unstated:
            raise LegChainMismatch(
                f"transactions are for chain {unstated[0]}, which rollups does not name",
                chain_id=unstated[0],
            )
        empty = sorted(stated.difference(chain_ids))
        if empty:
            raise EmptyLeg(f"rollups names {empty[0]} but no transaction is for it",
                           chain_id=empty[0])
    # Verify every chain is served here, and is the endpoint's
    for chain_id in chain_ids:
        if chain_id not in rollups:
            raise UnknownRollup(f"chain id {chain_id} is not served here", chain_id=chain_id)
    if endpoint_rollup is not None and chain_ids[0] != endpoint_rollup:
        raise ChainIdMismatch(
            f"transactions are for chain {chain_ids[0]}, this endpoint serves {endpoint_rollup}"
        )
    return [(rollups[c], tuple(by_chain[c])) for c in chain_ids]


def compute_bid_copy(bid: Bid, rollup: int | None) -> Bid:
    """The copy of ``bid`` logged in ``rollup``'s slot: that rollup's leg as ``rollup``, ``txs``
    and ``gas``, every other field shared. A single-rollup bid is its own only copy; a rollup
    the bundle does not span (or None) gives the copy of its lowest rollup."""
    if not bid.legs:
        return bid
    leg = next((g for g in bid.legs if g.rollup == rollup), bid.legs[0])
    return dataclasses.replace(bid, rollup=leg.rollup, txs=leg.txs, gas=leg.gas)


# Every field a bundle's copies share (all but the leg's own: ``rollup``, ``txs``, ``gas``).
_shared_fields = operator.attrgetter(
    *(f.name for f in dataclasses.fields(Bid) if f.name not in {"rollup", "txs", "gas"})
)


def is_bid_copy(bid: Bid, of: Bid) -> bool:
    """Whether ``bid == compute_bid_copy(of, bid.rollup)``: ``bid`` is the copy of ``of``'s
    bundle for ``bid``'s rollup. The same answer without building the copy (a member checks
    every copy of every cross-rollup bundle of the slot this way, at the deadline)."""
    if not of.legs:
        return bid == of
    if bid.__class__ is not of.__class__:
        return False
    leg = next((g for g in of.legs if g.rollup == bid.rollup), None)
    if leg is None:  # ``of`` gives its lowest rollup's copy, which is not for bid's rollup
        return False
    return bid.gas == leg.gas and bid.txs == leg.txs and _shared_fields(bid) == _shared_fields(of)


def compute_bid_copies(bid: Bid) -> tuple[Bid, ...]:
    """Every copy of the bundle, one per rollup it spans, by rollup (``(bid,)`` for a
    single-rollup bid). Any copy gives the same copies."""
    if not bid.legs:
        return (bid,)
    return tuple(compute_bid_copy(bid, leg.rollup) for leg in bid.legs)
