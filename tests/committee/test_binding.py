"""Decision 18's invariant: whatever intake accepts, every committee member can bind.

A searcher controls every byte of its signed request; if intake accepted a spelling that a
member's binding check reads differently, one losing bid would make the whole slot unsignable
(the review found transaction hex with spaces in it: ``bytes.fromhex`` skipped them at intake,
the member compared text). Here every field of a real signed request is spelled at random
(case, prefixes, number forms, padding, JSON escapes and whitespace between tokens); each spelling
is either refused by intake with a stable code, or gives a Bid that passes both the cheap binding
check and the full re-derivation.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.searcher import SearcherKey
from auction.bundles import compute_bid
from auction.errors import BlockspaceError
from auction.types import Evidence
from committee.checks import check_bid_binding, check_bid_derivation
from committee.errors import InvalidEvidence
from committee.proposal import Proposal
from tests.committee.slots import CLOCK, ROLLUP, SLOT, config_of, raw_tx, rollup_of

K = SearcherKey.from_seed(41)
RAW = raw_tx(K, nonce=7)
NOW = SLOT * 2000 + 5


def hex_spelling(data: bytes, case: str, prefix: str, junk: str) -> str:
    digits = data.hex()
    digits = {"lower": digits, "upper": digits.upper(),
              "mixed": "".join(c.upper() if i % 3 else c for i, c in enumerate(digits))}[case]
    return prefix + digits[:4] + junk + digits[4:]


def number_spelling(value: int, form: str) -> str:
    return {"int": str(value), "hex": f'"{hex(value)}"', "HEX": f'"0X{value:X}"',
            "dec": f'"{value}"', "escaped": '"\\u0030x' + f'{value:x}"',
            "padded": f'"0x000{value:x}"'}[form]


spellings = st.fixed_dictionaries({
    "case": st.sampled_from(["lower", "upper", "mixed"]),
    "prefix": st.sampled_from(["0x", "0X"]),
    "junk": st.sampled_from(["", " ", "\t", "\n", "  ", "\u00a0"]),
    "slot_form": st.sampled_from(["int", "hex", "HEX", "escaped", "padded"]),
    "bid_form": st.sampled_from(["int", "hex", "HEX", "dec", "escaped", "padded"]),
    "space": st.sampled_from(["", " ", "\n\t "]),
})


def request_body(s: dict[str, str]) -> bytes:
    sp = s["space"]
    tx = hex_spelling(RAW, s["case"], s["prefix"], s["junk"])
    return (
        f'{{{sp}"jsonrpc":"2.0",{sp}"id":1,"method":"eth_sendBundle","params":[{{'
        f'"txs":[{sp}"{tx}"{sp}],"blockNumber":{number_spelling(SLOT, s["slot_form"])},'
        f'"bid":{number_spelling(10**15, s["bid_form"])}}}]}}'
    ).encode()


@settings(max_examples=150, deadline=None)
@given(spelling=spellings)
def test_whatever_intake_accepts_every_member_binds(spelling: dict[str, str]) -> None:
    import orjson

    body = request_body(spelling)
    evidence = Evidence(body, K.sign_body(body))
    try:
        params = orjson.loads(body)["params"]
        bid = compute_bid(params, searcher=K.address, evidence=evidence,
                          rollups={ROLLUP: rollup_of()}, clock=CLOCK, now_ms=NOW,
                          max_slots_ahead=32)
    except (BlockspaceError, orjson.JSONDecodeError):
        return  # refused at intake, with a stable code: nothing reaches a member
    head = Proposal(bytes(32), ROLLUP, SLOT, None, None, (), ())  # type: ignore[arg-type]
    check_bid_binding(bid, head)
    check_bid_derivation(config_of(None), bid)  # type: ignore[arg-type]


def test_transaction_hex_with_whitespace_is_refused_at_intake() -> None:
    body = request_body({"case": "lower", "prefix": "0x", "junk": "  ", "slot_form": "hex",
                         "bid_form": "dec", "space": ""})
    import orjson

    with pytest.raises(BlockspaceError) as refused:
        compute_bid(orjson.loads(body)["params"], searcher=K.address,
                    evidence=Evidence(body, K.sign_body(body)), rollups={ROLLUP: rollup_of()},
                    clock=CLOCK, now_ms=NOW, max_slots_ahead=32)
    assert refused.value.code == "invalid_params"


def test_a_member_still_refuses_transactions_that_differ_from_the_signed_ones() -> None:
    import dataclasses

    body = request_body({"case": "lower", "prefix": "0x", "junk": "", "slot_form": "hex",
                         "bid_form": "dec", "space": ""})
    import orjson

    bid = compute_bid(orjson.loads(body)["params"], searcher=K.address,
                      evidence=Evidence(body, K.sign_body(body)), rollups={ROLLUP: rollup_of()},
                      clock=CLOCK, now_ms=NOW, max_slots_ahead=32)
    other = dataclasses.replace(bid.txs[0], raw=raw_tx(K, nonce=8))
    head = Proposal(bytes(32), ROLLUP, SLOT, None, None, (), ())  # type: ignore[arg-type]
    with pytest.raises(InvalidEvidence):
        check_bid_binding(dataclasses.replace(bid, txs=(other,)), head)
