"""The JSON instance format of ``blockspace solve`` (documented in docs/solver.md).

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

from dataclasses import dataclass
from typing import Any

from auction.errors import InvalidParams
from ordering.problem import PAYMENT_RULES, Item, Packing, PackingInput, compute_searcher_gas_cap


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
    rule = policy.get("payment_rule", "first_price")
    if rule not in PAYMENT_RULES:
        raise InvalidParams(f"policy.payment_rule must be one of {list(PAYMENT_RULES)}")
    budget = _int(policy.get("time_budget_ms", 50), "policy.time_budget_ms", minimum=1)
    bundles = data.get("bundles")
    if not isinstance(bundles, list):
        raise InvalidParams("bundles must be a list")
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
        items.append(Item(bid_id, searcher.lower(), bid, gas, tuple(dict.fromkeys(keys))))
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
