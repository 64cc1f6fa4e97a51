"""JSON-safe forms of the core types, shared by the stores and the APIs (one representation).

Wei amounts are decimal strings, bytes are 0x-hex, times are integer ms. ``*_to_json`` /
``*_from_json`` round-trip exactly; the decoded forms are trusted (they come from our own store),
re-checking evidence is the committee's job (``auction.bundles``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from auction.sealed import is_opened_bid
from auction.types import (
    Bid,
    BidOutcome,
    Block,
    Cancel,
    Evidence,
    IntakeEvent,
    Leg,
    LegEntry,
    PendingTx,
    PublicTx,
    SealedBid,
    SlotResult,
    Tx,
    WinningBundle,
)


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _unhex(s: str) -> bytes:
    return bytes.fromhex(s[2:])


def tx_to_json(t: Tx) -> dict[str, Any]:
    return {
        "raw": _hex(t.raw),
        "hash": t.hash,
        "type": t.tx_type,
        "chain_id": t.chain_id,
        "sender": t.sender,
        "nonce": t.nonce,
        "gas_limit": t.gas_limit,
        "priority_fee_wei": str(t.priority_fee_wei),
        "max_fee_wei": str(t.max_fee_wei),
        "to": t.to,
        "access_keys": list(t.access_keys),
    }


def tx_from_json(d: dict[str, Any]) -> Tx:
    return Tx(
        raw=_unhex(d["raw"]),
        hash=d["hash"],
        tx_type=d["type"],
        chain_id=d["chain_id"],
        sender=d["sender"],
        nonce=d["nonce"],
        gas_limit=d["gas_limit"],
        priority_fee_wei=int(d["priority_fee_wei"]),
        max_fee_wei=int(d["max_fee_wei"]),
        to=d["to"],
        access_keys=tuple(d["access_keys"]),
    )


def evidence_to_json(e: Evidence) -> dict[str, str]:
    return {"body": e.body.decode("utf-8", "surrogateescape"), "signature": e.signature}


def evidence_from_json(d: dict[str, str]) -> Evidence:
    return Evidence(body=d["body"].encode("utf-8", "surrogateescape"), signature=d["signature"])


def leg_to_json(g: Leg) -> dict[str, Any]:
    return {"rollup": g.rollup, "gas": g.gas, "txs": [tx_to_json(t) for t in g.txs]}


def leg_from_json(d: dict[str, Any]) -> Leg:
    return Leg(rollup=d["rollup"], txs=tuple(tx_from_json(t) for t in d["txs"]), gas=d["gas"])


def bid_to_json(b: Bid) -> dict[str, Any]:
    """A bid as JSON; ``legs`` only for a cross-rollup bundle's copy (a single-rollup bid's
    encoding is what it was before shared sequencing)."""
    out = {
        "kind": "bid",
        "bid_id": b.bid_id,
        "rollup": b.rollup,
        "slot": b.slot,
        "searcher": b.searcher,
        "bundle_hash": b.bundle_hash,
        "txs": [tx_to_json(t) for t in b.txs],
        "bid_wei": str(b.bid_wei),
        "gas": b.gas,
        "received_ms": b.received_ms,
        "evidence": evidence_to_json(b.evidence),
        "replacement_uuid": b.replacement_uuid,
        "reverting_tx_hashes": list(b.reverting_tx_hashes),
        "min_timestamp": b.min_timestamp,
        "max_timestamp": b.max_timestamp,
        "explicit_bid": b.explicit_bid,
    }
    if b.legs:
        out["legs"] = [leg_to_json(g) for g in b.legs]
    return out


def bid_from_json(d: dict[str, Any]) -> Bid:
    return Bid(
        bid_id=d["bid_id"],
        rollup=d["rollup"],
        slot=d["slot"],
        searcher=d["searcher"],
        bundle_hash=d["bundle_hash"],
        txs=tuple(tx_from_json(t) for t in d["txs"]),
        bid_wei=int(d["bid_wei"]),
        gas=d["gas"],
        received_ms=d["received_ms"],
        evidence=evidence_from_json(d["evidence"]),
        replacement_uuid=d["replacement_uuid"],
        reverting_tx_hashes=tuple(d["reverting_tx_hashes"]),
        min_timestamp=d["min_timestamp"],
        max_timestamp=d["max_timestamp"],
        explicit_bid=d["explicit_bid"],
        legs=tuple(leg_from_json(g) for g in d.get("legs", ())),
    )


def cancel_to_json(c: Cancel) -> dict[str, Any]:
    return {
        "kind": "cancel",
        "rollup": c.rollup,
        "searcher": c.searcher,
        "replacement_uuid": c.replacement_uuid,
        "received_ms": c.received_ms,
        "evidence": evidence_to_json(c.evidence),
        "slot": c.slot,
    }


def cancel_from_json(d: dict[str, Any]) -> Cancel:
    return Cancel(
        rollup=d["rollup"],
        searcher=d["searcher"],
        replacement_uuid=d["replacement_uuid"],
        received_ms=d["received_ms"],
        evidence=evidence_from_json(d["evidence"]),
        slot=d.get("slot"),
    )


def public_tx_to_json(p: PublicTx) -> dict[str, Any]:
    return {
        "kind": "public_tx",
        "rollup": p.rollup,
        "tx": tx_to_json(p.tx),
        "received_ms": p.received_ms,
        "protected": p.protected,
    }


def public_tx_from_json(d: dict[str, Any]) -> PublicTx:
    return PublicTx(
        rollup=d["rollup"],
        tx=tx_from_json(d["tx"]),
        received_ms=d["received_ms"],
        protected=d["protected"],
    )


def pending_to_json(p: PendingTx) -> dict[str, Any]:
    return {
        "tx": tx_to_json(p.tx),
        "arrival_slot": p.arrival_slot,
        "seq": p.seq,
        "protected": p.protected,
    }


def pending_from_json(d: dict[str, Any]) -> PendingTx:
    return PendingTx(tx_from_json(d["tx"]), d["arrival_slot"], d["seq"], d["protected"])


def event_to_json(ev: IntakeEvent) -> dict[str, Any]:
    if isinstance(ev, Bid):
        return bid_to_json(ev)
    if isinstance(ev, PublicTx):
        return public_tx_to_json(ev)
    return cancel_to_json(ev)


def event_from_json(d: dict[str, Any]) -> IntakeEvent:
    kind = d["kind"]
    if kind == "bid":
        return bid_from_json(d)
    if kind == "public_tx":
        return public_tx_from_json(d)
    return cancel_from_json(d)


def event_to_bytes(ev: IntakeEvent) -> bytes:
    return orjson.dumps(event_to_json(ev))


def event_from_bytes(data: bytes) -> IntakeEvent:
    return event_from_json(orjson.loads(data))


def sealed_bid_to_json(b: SealedBid) -> dict[str, Any]:
    """A sealed bid as JSON: its public fields and its evidence. The ciphertext is not written
    twice: it is the evidence's ``ciphertext`` parameter, read back from there."""
    return {
        "kind": "sealed_bid",
        "bid_id": b.bid_id,
        "rollup": b.rollup,
        "slot": b.slot,
        "searcher": b.searcher,
        "max_gas": b.max_gas,
        "received_ms": b.received_ms,
        "evidence": evidence_to_json(b.evidence),
        "encapsulation": _hex(b.encapsulation),
        "ciphertext_hash": b.ciphertext_hash,
        "rollups": list(b.rollups),
        "replacement_uuid": b.replacement_uuid,
    }


def sealed_bid_from_json(d: dict[str, Any]) -> SealedBid:
    evidence = evidence_from_json(d["evidence"])
    params = orjson.loads(evidence.body)["params"]
    call = params[0] if isinstance(params, list) else params
    return SealedBid(
        bid_id=d["bid_id"],
        rollup=d["rollup"],
        slot=d["slot"],
        searcher=d["searcher"],
        max_gas=d["max_gas"],
        received_ms=d["received_ms"],
        evidence=evidence,
        ciphertext=_unhex(call["ciphertext"]),
        encapsulation=_unhex(d["encapsulation"]),
        ciphertext_hash=d["ciphertext_hash"],
        rollups=tuple(d["rollups"]),
        replacement_uuid=d["replacement_uuid"],
    )


def log_entry_to_bytes(ev: IntakeEvent | SealedBid) -> bytes:
    """One entry of a slot's log as stored: a plaintext event or a sealed bid."""
    if isinstance(ev, SealedBid):
        return orjson.dumps(sealed_bid_to_json(ev))
    return event_to_bytes(ev)


def log_entry_from_bytes(data: bytes) -> IntakeEvent | SealedBid:
    d = orjson.loads(data)
    return sealed_bid_from_json(d) if d["kind"] == "sealed_bid" else event_from_json(d)


def winning_bundle_to_json(w: WinningBundle) -> dict[str, Any]:
    """A block entry; ``legs`` only for a cross-rollup bundle (a single-rollup entry is what it
    was before shared sequencing)."""
    out: dict[str, Any] = {
        "bid_id": w.bid_id,
        "bundle_hash": w.bundle_hash,
        "searcher": w.searcher,
        "bid_wei": str(w.bid_wei),
        "payment_wei": str(w.payment_wei),
        "gas": w.gas,
    }
    if w.legs:
        out["legs"] = [{"rollup": g.rollup, "txs": list(g.tx_hashes)} for g in w.legs]
    return out


def winning_bundle_from_json(w: dict[str, Any]) -> WinningBundle:
    return WinningBundle(
        bid_id=w["bid_id"],
        bundle_hash=w["bundle_hash"],
        searcher=w["searcher"],
        bid_wei=int(w["bid_wei"]),
        payment_wei=int(w["payment_wei"]),
        gas=w["gas"],
        legs=tuple(LegEntry(g["rollup"], tuple(g["txs"])) for g in w.get("legs", ())),
    )


def block_to_json(b: Block) -> dict[str, Any]:
    return {
        "rollup": b.rollup,
        "slot": b.slot,
        "parent_hash": b.parent_hash,
        "block_hash": b.block_hash,
        "bid_set_root": b.bid_set_root,
        "carried_root": b.carried_root,
        "pending_root": b.pending_root,
        "public_tx_count": b.public_tx_count,
        "gas_used": b.gas_used,
        "revenue_wei": str(b.revenue_wei),
        "bundles": [winning_bundle_to_json(w) for w in b.bundles],
        "txs": [_hex(t) for t in b.txs],
    }


def block_from_json(d: dict[str, Any]) -> Block:
    return Block(
        rollup=d["rollup"],
        slot=d["slot"],
        parent_hash=d["parent_hash"],
        bundles=tuple(winning_bundle_from_json(w) for w in d["bundles"]),
        txs=tuple(_unhex(t) for t in d["txs"]),
        gas_used=d["gas_used"],
        revenue_wei=int(d["revenue_wei"]),
        bid_set_root=d["bid_set_root"],
        block_hash=d["block_hash"],
        public_tx_count=d["public_tx_count"],
        carried_root=d["carried_root"],
        pending_root=d["pending_root"],
    )


def result_to_json(r: SlotResult, *, with_bids: bool = True) -> dict[str, Any]:
    """A slot result as JSON. ``with_bids=False`` names each outcome's bid by its log seq
    instead of repeating it (bid, transactions, evidence: ~3 KB each): for a store that keeps
    the slot's log as long as its result and passes the log to ``result_from_json``. A bid
    opened from a sealed bid stays inline: the log holds its ciphertext, not the bid."""
    outcomes = []
    for o in r.outcomes:
        row: dict[str, Any] = (
            {"bid": bid_to_json(o.bid)}
            if with_bids or is_opened_bid(o.bid)
            else {"bid_id": o.bid.bid_id}
        )
        row.update(outcome=o.outcome, payment_wei=str(o.payment_wei), seq=o.seq)
        if o.code:
            row["code"] = o.code
        outcomes.append(row)
    return {
        "rollup": r.rollup,
        "slot": r.slot,
        "deadline_ms": r.deadline_ms,
        "block": block_to_json(r.block),
        "outcomes": outcomes,
        "winning_bids_wei": str(r.winning_bids_wei),
        "upper_bound_wei": str(r.upper_bound_wei),
        "unconstrained_bids_wei": str(r.unconstrained_bids_wei),
        "solver": r.solver,
        "solve_ms": r.solve_ms,
        "pending": [pending_to_json(p) for p in r.pending],
        "extra": r.extra,
    }


def _outcome_bid(o: dict[str, Any], logged: Mapping[str, IntakeEvent] | None) -> Bid:
    if "bid" in o:
        return bid_from_json(o["bid"])
    event = logged.get(o["seq"]) if logged is not None else None
    if not isinstance(event, Bid) or event.bid_id != o["bid_id"]:
        raise ValueError(f"outcome {o['seq']}: bid {o['bid_id']} is not in the slot's log")
    return event


def result_from_json(
    d: dict[str, Any], logged: Mapping[str, IntakeEvent] | None = None
) -> SlotResult:
    """Inverse of ``result_to_json``; ``logged`` (the slot's log events by seq) supplies the bids
    of a result written ``with_bids=False``."""
    return SlotResult(
        rollup=d["rollup"],
        slot=d["slot"],
        deadline_ms=d["deadline_ms"],
        block=block_from_json(d["block"]),
        outcomes=tuple(
            BidOutcome(
                _outcome_bid(o, logged),
                o["outcome"],
                int(o["payment_wei"]),
                o["seq"],
                o.get("code", ""),
            )
            for o in d["outcomes"]
        ),
        winning_bids_wei=int(d["winning_bids_wei"]),
        upper_bound_wei=int(d["upper_bound_wei"]),
        unconstrained_bids_wei=int(d["unconstrained_bids_wei"]),
        solver=d["solver"],
        solve_ms=d["solve_ms"],
        pending=tuple(pending_from_json(p) for p in d.get("pending", ())),
        extra=d.get("extra") or {},
    )
