"""The JSON instance formats of ``blockspace solve`` (documented in docs/solver.md): one rollup
(below), or a shared slot over several rollups (``parse_joint_instance``).

```
{"gas_limit": 30000000,
 "policy": {"max_gas_share_per_searcher": 0.25, "reserved_public_gas": 0,
            "payment_rule": "first_price", "time_budget_ms": 50},
 "bundles": [{"id": "b1", "searcher": "0xab..", "bid": "1200000000000000", "gas": 250000,
              "txs": ["0x<hash>"], "nonces": [["0x<sender>", 7]], "writes": ["<key>"]}],
 "forced": ["b9"]}
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auction.errors import InvalidParams
from ordering.problem import (
    PAYMENT_RULES,
    Item,
    JointInput,
    JointItem,
    JointPacking,
    Leg,
    Packing,
    PackingInput,
    RollupCapacity,
    compute_searcher_gas_cap,
)


@dataclass(frozen=True, slots=True)
class Instance:
    inp: PackingInput
    payment_rule: str
    time_budget_ms: int


def _int(value: Any, what: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise InvalidParams(f"{what} must be an integer")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or value < minimum:
        raise InvalidParams(f"{what} must be an integer >= {minimum}")
    return value


def _conflict_keys(b: dict[str, Any], where: str) -> tuple[str, ...]:
    """A bundle's (or a leg's) conflict keys: its tx hashes, (sender, nonce) pairs and writes."""
    keys: list[str] = []
    for h in b.get("txs") or []:
        if not isinstance(h, str):
            raise InvalidParams(f"{where}.txs entries must be strings")
        keys.append("t" + h.lower())
    for pair in b.get("nonces") or []:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise InvalidParams(f"{where}.nonces entries must be [sender, nonce]")
        keys.append(f"n{pair[0].lower()}:{_int(pair[1], f'{where}.nonces nonce')}")
    for w in b.get("writes") or []:
        if not isinstance(w, str):
            raise InvalidParams(f"{where}.writes entries must be strings")
        keys.append("w" + w.lower())
    return tuple(dict.fromkeys(keys))


def parse_instance(data: Any) -> Instance:
    """Validate an instance document; raise InvalidParams naming the first bad field."""
    if not isinstance(data, dict):
        raise InvalidParams("the instance must be a JSON object")
    gas_limit = _int(data.get("gas_limit"), "gas_limit", minimum=1)
    policy = data.get("policy") or {}
    if not isinstance(policy, dict):
        raise InvalidParams("policy must be an object")
    share = policy.get("max_gas_share_per_searcher", 1.0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise InvalidParams("policy.max_gas_share_per_searcher must be in (0, 1]")
    reserved = _int(policy.get("reserved_public_gas", 0), "policy.reserved_public_gas")
    if reserved >= gas_limit:
        raise InvalidParams("policy.reserved_public_gas must be below gas_limit")
    rule, budget, bundles = _slot_terms(data, policy)
    items: list[Item] = []
    seen: set[str] = set()
    for i, b in enumerate(bundles):
        where = f"bundles[{i}]"
        if not isinstance(b, dict):
            raise InvalidParams(f"{where} must be an object")
        bid_id = b.get("id")
        if not isinstance(bid_id, str) or not bid_id:
            raise InvalidParams(f"{where}.id must be a non-empty string")
        if bid_id in seen:
            raise InvalidParams(f"{where}.id {bid_id!r} is not unique")
        seen.add(bid_id)
        searcher = b.get("searcher", "")
        if not isinstance(searcher, str):
            raise InvalidParams(f"{where}.searcher must be a string")
        bid = _int(b.get("bid"), f"{where}.bid")
        gas = _int(b.get("gas"), f"{where}.gas", minimum=1)
        items.append(Item(bid_id, searcher.lower(), bid, gas, _conflict_keys(b, where)))
    forced = data.get("forced") or []
    if not isinstance(forced, list) or not all(isinstance(f, str) for f in forced):
        raise InvalidParams("forced must be a list of bundle ids")
    capacity = gas_limit - reserved
    inp = PackingInput(
        gas_limit=capacity,
        items=tuple(items),
        max_gas_per_searcher=compute_searcher_gas_cap(capacity, float(share)),
        forced=frozenset(forced),
    )
    return Instance(inp, rule, budget)


def packing_to_json(
    packing: Packing, payments: dict[str, int], seconds: float, unconstrained_wei: int
) -> dict[str, Any]:
    return {
        "included": list(packing.included),
        "revenue": str(packing.revenue_wei),
        "gas_used": packing.gas_used,
        "upper_bound": str(packing.upper_bound_wei),
        "proven_optimal": packing.proven_optimal,
        "payments": {k: str(v) for k, v in payments.items()},
        "unconstrained_revenue": str(unconstrained_wei),
        "solver": packing.solver,
        "seconds": round(seconds, 6),
    }


# --- shared slots: several rollups, cross-rollup bundles -------------------------------------


@dataclass(frozen=True, slots=True)
class JointInstance:
    inp: JointInput
    payment_rule: str
    time_budget_ms: int


def is_joint_document(data: Any) -> bool:
    """A document with a ``rollups`` list is a shared slot (``parse_joint_instance``)."""
    return isinstance(data, dict) and "rollups" in data


def _rollup(r: Any, where: str) -> RollupCapacity:
    """One entry of ``rollups``: id, gas_limit and its own fairness policy."""
    if not isinstance(r, dict):
        raise InvalidParams(f"{where} must be an object")
    rollup_id = _int(r.get("id"), f"{where}.id")
    gas_limit = _int(r.get("gas_limit"), f"{where}.gas_limit", minimum=1)
    policy = r.get("policy") or {}
    if not isinstance(policy, dict):
        raise InvalidParams(f"{where}.policy must be an object")
    share = policy.get("max_gas_share_per_searcher", 1.0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise InvalidParams(f"{where}.policy.max_gas_share_per_searcher must be in (0, 1]")
    reserved = _int(policy.get("reserved_public_gas", 0), f"{where}.policy.reserved_public_gas")
    if reserved >= gas_limit:
        raise InvalidParams(f"{where}.policy.reserved_public_gas must be below gas_limit")
    capacity = gas_limit - reserved
    return RollupCapacity(rollup_id, capacity, compute_searcher_gas_cap(capacity, float(share)))


def _joint_bundle(b: Any, where: str) -> JointItem:
    """One entry of ``bundles``: id, searcher, bid and its legs (one per rollup)."""
    if not isinstance(b, dict):
        raise InvalidParams(f"{where} must be an object")
    bid_id = b.get("id")
    if not isinstance(bid_id, str) or not bid_id:
        raise InvalidParams(f"{where}.id must be a non-empty string")
    searcher = b.get("searcher", "")
    if not isinstance(searcher, str):
        raise InvalidParams(f"{where}.searcher must be a string")
    bid = _int(b.get("bid"), f"{where}.bid")
    raw_legs = b.get("legs")
    if not isinstance(raw_legs, list) or not raw_legs:
        raise InvalidParams(f"{where}.legs must be a non-empty list")
    legs = []
    for j, leg in enumerate(raw_legs):
        at = f"{where}.legs[{j}]"
        if not isinstance(leg, dict):
            raise InvalidParams(f"{at} must be an object")
        rollup = _int(leg.get("rollup"), f"{at}.rollup")
        gas = _int(leg.get("gas"), f"{at}.gas", minimum=1)
        legs.append(Leg(rollup, gas, _conflict_keys(leg, at)))
    return JointItem(bid_id, searcher.lower(), bid, tuple(legs))


def parse_joint_instance(data: Any) -> JointInstance:
    """Validate a shared-slot document; raise InvalidParams naming the first bad field.

    Model rules (a leg on a rollup not listed, two legs on one rollup, a repeated rollup or
    bundle id) are left to ``ordering.reference.check_joint_input``, which ``pack_joint`` runs
    and which raises its own stable codes."""
    if not isinstance(data, dict):
        raise InvalidParams("the instance must be a JSON object")
    raw_rollups = data.get("rollups")
    if not isinstance(raw_rollups, list) or not raw_rollups:
        raise InvalidParams("rollups must be a non-empty list")
    rollups = tuple(_rollup(r, f"rollups[{i}]") for i, r in enumerate(raw_rollups))
    policy = data.get("policy") or {}
    if not isinstance(policy, dict):
        raise InvalidParams("policy must be an object")
    rule, budget, bundles = _slot_terms(data, policy)
    items = tuple(_joint_bundle(b, f"bundles[{i}]") for i, b in enumerate(bundles))
    forced = data.get("forced") or []
    if not isinstance(forced, list) or not all(isinstance(f, str) for f in forced):
        raise InvalidParams("forced must be a list of bundle ids")
    return JointInstance(JointInput(rollups, items, frozenset(forced)), rule, budget)


def joint_packing_to_json(
    packing: JointPacking, payments: dict[str, int], seconds: float, unconstrained_wei: int
) -> dict[str, Any]:
    """The shared slot's answer: one block per rollup (input order), revenue, bound, payments."""
    gas = dict(packing.gas_used_by_rollup)
    return {
        "blocks": [{"rollup": r, "included": list(ids), "gas_used": gas[r]}
                   for r, ids in packing.included_by_rollup],  # fmt: skip
        "revenue": str(packing.revenue_wei),
        "upper_bound": str(packing.upper_bound_wei),
        "proven_optimal": packing.proven_optimal,
        "payments": {k: str(v) for k, v in payments.items()},
        "unconstrained_revenue": str(unconstrained_wei),
        "solver": packing.solver,
        "seconds": round(seconds, 6),
    }


def _slot_terms(data: Mapping[str, Any], policy: Mapping[str, Any]) -> tuple[str, int, list[Any]]:
    """The payment rule, time budget and bundle list both instance forms share."""
    rule = policy.get("payment_rule", "first_price")
    if rule not in PAYMENT_RULES:
        raise InvalidParams(f"policy.payment_rule must be one of {list(PAYMENT_RULES)}")
    budget = _int(policy.get("time_budget_ms", 50), "policy.time_budget_ms", minimum=1)
    bundles = data.get("bundles")
    if not isinstance(bundles, list):
        raise InvalidParams("bundles must be a list")
    return str(rule), budget, bundles
