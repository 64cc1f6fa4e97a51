"""Strategies for hostile JSON: arbitrary values, and valid documents with one part changed.

Values include what JSON allows and parsers disagree on: integers far beyond 64 bits (orjson
reads them as floats), negative numbers, floats, deep arrays, unicode, and strings that look
almost like the quantities, hashes and uuids the wire formats use.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

# Field names the wire formats use, so mutations and random objects hit real keys.
FIELD_NAMES = [
    "jsonrpc", "id", "method", "params", "txs", "blockNumber", "bid", "replacementUuid",
    "revertingTxHashes", "minTimestamp", "maxTimestamp", "tx", "bundleHash", "body",
    "signature", "kind", "version", "rollup", "slot", "block", "parent", "carried", "log",
    "seq", "event", "raw", "hash", "gas", "bid_wei", "evidence",
]

big_ints = st.sampled_from([
    2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**127, 2**128, 2**255, 2**256, 2**300, -(2**300),
    -1, -(2**63), 10**400,
])

tricky_strings = st.sampled_from([
    "", "0x", "0X", "0x0", "0x00", "0x1", "0x-1", "0x+1", "0x1_0", " 0x1 ", "0x 1", "0xzz",
    "0x" + "f" * 64, "0x" + "f" * 65, "0x" + "1" * 200, "1" * 4301, "12", "-12", "1e3", "1.5",
    "\u0661\u0662", "\u00b2", "\uff11", "true", "null", "[]", "{}",
    "0x" + "ab" * 32, "0x" + "ab" * 20, "12345678-1234-1234-1234-123456789abc",
    "12345678123412341234123456789abc", "0x" + "00" * 96,
    "\x00", "\u202e", "\U0001f600" * 3,
])

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    big_ints,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    tricky_strings,
)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value (as Python), nested arrays and objects included."""
    keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=6))
    return st.recursive(
        json_scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def to_json_bytes(value: Any) -> bytes:
    """Serialize like a client might: stdlib json writes any int (orjson refuses > 64 bits)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return doc


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


@st.composite
def mutated(
    draw: st.DrawFn, doc: Any, *, under: tuple[Any, ...] = (), max_edits: int = 2
) -> Any:
    """``doc`` after one or a few edits at random places (within ``doc[under...]``): a value
    replaced by any JSON value (or by the same value retyped: wrapped in an array, turned to a
    string or a number), a key or array item dropped, an unknown key or extra item added."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, max_edits))):
        try:
            paths = [(*under, *p) for p in _paths(_get(doc, under))]
        except (KeyError, IndexError, TypeError):
            paths = _paths(doc)  # an earlier edit removed the subtree
        path = draw(st.sampled_from(paths), label="path")
        node = _get(doc, path)
        op = draw(st.sampled_from(["replace", "retype", "drop", "add"]), label="op")
        if op == "replace":
            doc = _set(doc, path, draw(json_values(), label="value"))
        elif op == "retype":
            retyped = draw(st.sampled_from([
                [node], {"value": node}, str(node), json.dumps(node), None, True, 0, 2**300,
                -1, 1.5,
            ]))
            doc = _set(doc, path, retyped)
        elif op == "drop" and path:
            parent = _get(doc, path[:-1])
            del parent[path[-1]]
        elif op == "add":
            if isinstance(node, dict):
                node[draw(st.sampled_from(FIELD_NAMES))] = draw(json_values(), label="value")
            elif isinstance(node, list):
                node.insert(draw(st.integers(0, len(node))), draw(json_values(), label="value"))
    return doc


def differences(before: Any, after: Any, path: tuple[Any, ...] = ()) -> list[str]:
    """Where ``after`` differs from ``before``, one short line each (for failure reports)."""
    if type(before) is type(after) and isinstance(before, dict):
        out = []
        for k in sorted(set(before) | set(after), key=str):
            if k not in after:
                out.append(f"{(*path, k)}: dropped")
            elif k not in before:
                out.append(f"{(*path, k)}: added {repr(after[k])[:80]}")
            else:
                out += differences(before[k], after[k], (*path, k))
        return out
    if type(before) is type(after) and isinstance(before, list) and len(before) == len(after):
        return [d for i, (b, a) in enumerate(zip(before, after, strict=True))
                for d in differences(b, a, (*path, i))]
    if before == after and type(before) is type(after):
        return []
    return [f"{path}: {repr(before)[:60]} -> {repr(after)[:80]}"]
