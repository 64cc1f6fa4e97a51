"""Fuzzing cross-rollup bundle params (issue 13): the chains of the transactions, their order,
the ``rollups`` field (any JSON value), the endpoint and the per-bundle rollup bound.

Property: ``compute_intake_event`` returns a ``Bid`` or a ``Refused`` with a stable code, never
anything else; an accepted bundle's legs are exactly its transactions' chains (each in request
order), every chain is served, ``rollups`` (when a list) names exactly them, a rollup's own
endpoint only ever takes its chain, and every copy is the copy for its rollup, from any other.
The JSON-RPC surface fuzz (test_jsonrpc.py, test_websocket_frames.py) also mutates a valid
cross-rollup template (tests/fuzz/requests.py).
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.searcher import bundle_params
from auction.intake import IntakeContext, Refused, compute_intake_event
from auction.legs import compute_bid_copies, compute_bid_copy
from auction.presets import MINIMAL, Rollup
from auction.types import Bid
from node.errors import _JSONRPC_CODES
from tests.factories import CHAIN, key, signed_request, tx
from tests.fuzz.budget import fuzz, timeout_s
from tests.fuzz.json_values import json_values
from tests.fuzz.requests import CLOCK, NOW_MS, START_SLOT
from tests.fuzz.signed_txs import sign_fields

pytestmark = pytest.mark.timeout(timeout_s(120))

SIGNER = key(42)
SERVED = {CHAIN: Rollup(CHAIN), 10: Rollup(10), 8453: Rollup(8453, policy=MINIMAL.policy)}
CHAINS = (CHAIN, 10, 8453, 1)  # 1 is not served
# A few signed transactions per chain (signing in every example would be slow)
POOL = [(c, tx(SIGNER, chain_id=c, nonce=n)) for c in CHAINS for n in range(3)]
HUGE_CHAIN = sign_fields(2, [2**100, 0, 1, 10**9, 21_000, b"\x11" * 20, 0, b"", []], 2**100)[0]
CODES = {cls.code for cls in _JSONRPC_CODES}

chain_ids = st.one_of(st.sampled_from([*CHAINS, 0, 2**64, 2**100]), st.integers(-5, 2**70))
rollups_fields = st.one_of(
    st.none(),
    st.lists(st.one_of(chain_ids, chain_ids.map(hex), st.sampled_from(["0x", "0xzz", "10"])),
             max_size=6),
    json_values(),
)


SERVED_PICKS = [i for i, (c, _) in enumerate(POOL) if c in SERVED]


@st.composite
def stated_rollups(draw: st.DrawFn, chains: list[int]) -> Any:
    """Mostly the right ``rollups`` (or none), else a near miss or anything at all."""
    kind = draw(st.sampled_from(["none", "right", "right", "near", "any"]))
    if kind == "none":
        return None
    if kind == "right":
        return [draw(st.sampled_from([c, hex(c)])) for c in draw(st.permutations(chains))]
    if kind == "near":
        extra = draw(chain_ids)
        return draw(st.sampled_from([chains[1:], [*chains, extra], [*chains[:-1], extra]]))
    return draw(rollups_fields)


@fuzz(250)
@given(
    data=st.data(),
    picks=st.one_of(
        st.lists(st.sampled_from(SERVED_PICKS), min_size=1, max_size=8, unique=True),
        st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=8, unique=True),
    ),
    huge=st.integers(0, 19).map(lambda n: n == 0),
    endpoint=st.sampled_from([None, None, None, CHAIN, 10]),
    context_rollup=st.sampled_from(sorted(SERVED)),
    max_rollups=st.sampled_from([4, 4, 3, 2, 1]),
    bid=st.one_of(st.none(), st.integers(0, 2**130)),
)
def test_cross_params_are_accepted_consistently_or_refused_with_a_code(
    data: st.DataObject, picks: list[int], huge: bool, endpoint: int | None,
    context_rollup: int, max_rollups: int, bid: int | None,
) -> None:
    stated = data.draw(stated_rollups(sorted({POOL[i][0] for i in picks})), label="rollups")
    raws = [POOL[i][1] for i in picks] + ([HUGE_CHAIN] if huge else [])
    params = bundle_params(raws, START_SLOT, bid_wei=bid)
    if stated is not None:
        params["rollups"] = stated
    try:
        body, sig = signed_request(SIGNER, "eth_sendBundle", [params])
    except TypeError:  # orjson cannot write an integer beyond 64 bits: not a request
        return
    ctx = IntakeContext(rollups=SERVED, clock=CLOCK, max_slots_ahead=4,
                        default_rollup=context_rollup, endpoint_rollup=endpoint,
                        max_rollups_per_bundle=max_rollups)
    event = compute_intake_event(body, sig, NOW_MS, ctx)
    if isinstance(event, Refused):
        assert event.error.code in CODES, event.error.code
        hypothesis.event(event.error.code)
        return
    hypothesis.event("accepted, legs" if isinstance(event, Bid) and event.legs else "accepted")
    assert isinstance(event, Bid)
    chains = sorted({POOL[i][0] for i in picks})
    # Verify the legs are the transactions' chains, all served, each in request order
    assert not huge and set(chains) <= set(SERVED) and len(chains) <= max_rollups
    assert event.rollups == tuple(chains)
    if len(chains) > 1:
        assert endpoint is None
        for leg in event.legs:
            mine = [POOL[i][1] for i in picks if POOL[i][0] == leg.rollup]
            assert [t.raw for t in leg.txs] == mine
    elif endpoint is not None:
        assert chains == [endpoint]
    if isinstance(stated, list):
        assert len(stated) == len(chains)
    # Verify the copy is the context's rollup's when spanned, and every copy gives all copies
    assert event.rollup == (context_rollup if context_rollup in chains else chains[0])
    copies = compute_bid_copies(event)
    assert [c.rollup for c in copies] == chains
    assert all(compute_bid_copies(c) == copies and compute_bid_copy(c, event.rollup) == event
               for c in copies)
