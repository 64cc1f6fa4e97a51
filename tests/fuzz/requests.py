"""Valid requests of every JSON-RPC method, and the property every answer must have.

Shared by the JSON-RPC and websocket fuzz tests: the requests are the starting points of their
mutations; ``check_answer`` is the property of each answer.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from hypothesis import event
from hypothesis.control import currently_in_test_context

from api.searcher import bundle_params
from auction.presets import Rollup
from auction.slots import SlotClock
from node.errors import _JSONRPC_CODES
from tests.factories import CHAIN, key, tx

SLOT_MS = 2000
START_SLOT = 1_000
NOW_MS = START_SLOT * SLOT_MS + 5
ROLLUPS = {CHAIN: Rollup(CHAIN), 10: Rollup(10)}
CLOCK = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)

# Stable codes and the numeric JSON-RPC code each maps to (api/errors.py is the one table).
CODE_NUMBERS = {cls.code: number for cls, number in _JSONRPC_CODES.items()}
_STABLE_CODE = re.compile(r"[a-z][a-z0-9_]*")

FUZZER = key(40)  # signs the fuzzed requests
HONEST = key(41)  # checks the engine afterwards
TXS = [tx(FUZZER, kind=k, nonce=n) for k, n in ((2, 1), (1, 2), (0, 3))]
OTHER_TX = tx(FUZZER, chain_id=10, nonce=4)  # a leg on the second rollup: cross-rollup bundles


def hex_of(raw: bytes) -> str:
    return "0x" + raw.hex()


def request(method: str, params: Any, rid: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


# Valid requests of every method the surface serves.
TEMPLATES: list[dict[str, Any]] = [
    request("eth_sendBundle", [bundle_params(TXS[:2], START_SLOT, bid_wei=10**15,
                                             replacement_uuid="12345678-1234-1234-1234-123456789abc",
                                             reverting=[])]),
    request("eth_sendBundle", [{**bundle_params([TXS[2]], START_SLOT + 1),
                                "minTimestamp": 0, "maxTimestamp": 2**40,
                                "revertingTxHashes": []}]),
    request("eth_sendBundle", [bundle_params([TXS[0], OTHER_TX], START_SLOT, bid_wei=10**15,
                                             rollups=[CHAIN, 10])]),
    request("eth_cancelBundle", [{"replacementUuid": "12345678-1234-1234-1234-123456789abc",
                                  "blockNumber": hex(START_SLOT)}]),
    request("flashbots_getBundleStatsV2", [{"bundleHash": "0x" + "ab" * 32,
                                            "blockNumber": hex(START_SLOT)}]),
    request("eth_sendRawTransaction", [hex_of(TXS[0])]),
    request("eth_sendPrivateTransaction", [{"tx": hex_of(TXS[1])}]),
    request("eth_chainId", []),
    request("eth_blockNumber", []),
    request("net_version", []),
    request("web3_clientVersion", []),
]


def check_answer(answer: Any, rid: Any = ..., *, batch: bool = False) -> None:
    """The property of one answer (or of every answer of a batch)."""
    if batch and isinstance(answer, list):
        assert answer, "a batch is answered with at least one object"
        for one in answer:
            check_answer(one)
        return
    assert isinstance(answer, dict)
    assert answer["jsonrpc"] == "2.0" and "id" in answer
    if rid is not ...:
        assert answer["id"] == rid
    assert ("result" in answer) != ("error" in answer)
    if currently_in_test_context():
        event(answer["error"]["data"]["code"] if "error" in answer else "result")
    if "error" in answer:
        err = answer["error"]
        code = err["data"]["code"]
        assert code != "internal_error", "an internal error is a bug"
        assert err["code"] != -32603
        assert isinstance(code, str) and _STABLE_CODE.fullmatch(code)
        assert CODE_NUMBERS.get(code) == err["code"], f"{code} -> {err['code']}"
        assert isinstance(err["message"], str)
    orjson.dumps(answer)
