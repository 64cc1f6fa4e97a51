"""Accountability evidence: censorship (a receipt whose event a signed slot left out) and
member equivocation (two partials of one member for two slot roots of one slot), each
checked offline against the public committee info, with a stable code for every refusal."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.bundles import compute_bid_id
from auction.ciphertext import CiphertextLeaf, compute_ciphertext_root
from auction.errors import EvidenceRefused
from auction.hashing import keccak256, to_hex
from auction.receipts import (
    KIND_BID,
    KIND_CANCEL,
    KIND_SEALED_BID,
    Receipt,
    compute_operator_key,
    sign_receipt,
)
from auction.results import compute_event_id
from auction.slotroot import compute_slot_root
from auction.types import Bid
from committee import threshold
from committee.evidence import (
    KIND_CENSORSHIP,
    KIND_MEMBER_EQUIVOCATION,
    SignedPartial,
    compute_censorship_evidence,
    compute_equivocation_evidence,
    verify_evidence,
)
from committee.records import SignedBlock, compute_signed_slot, compute_slot_leaves
from committee.signing import compute_slot_signing_root
from tests.committee.conftest import Dealt
from tests.committee.slots import (
    ROLLUP,
    SLOT,
    key,
    log_of,
    proposal_of,
    raw_tx,
    signed_bid,
    signed_cancel,
    signing_root_of,
)

OPERATOR = compute_operator_key(bytes([9]) * 32)
STRANGER = compute_operator_key(bytes([10]) * 32)

def own_bid(i: int) -> Bid:
    """A signed bid of searcher ``i`` with its own nonce: the shared nonce counter of
    ``tests.committee.slots`` is left alone (other modules' slots depend on its sequence)."""
    return signed_bid(key(i), txs=[raw_tx(key(i), nonce=7_000 + i)])



def receipt_of(committee_id: bytes, bid: Bid, *, slot: int = SLOT, rollup: int = ROLLUP,
               received_ms: int | None = None) -> Any:
    receipt = Receipt(
        committee_id=committee_id, rollup=rollup, slot=slot, event_id=bid.bid_id, kind=KIND_BID,
        request_hash=to_hex(keccak256(bid.evidence.body)),
        received_ms=bid.received_ms if received_ms is None else received_ms,
    )
    return sign_receipt(receipt, OPERATOR)


@pytest.fixture(scope="module")
def slot(dealt: Dealt) -> tuple[SignedBlock, list[str], Bid, Bid]:
    """A signed slot whose log kept three bids and a cancel and left out the victim's bid."""
    kept = [own_bid(i) for i in range(3)]
    events = [*kept, signed_cancel(key(0), "11111111-1111-4111-8111-111111111111")]
    victim = own_bid(7)
    log = log_of(events)
    block = proposal_of(dealt.committee, log).block
    root = signing_root_of(dealt.committee, block)
    partials = tuple((s.index, threshold.partial_sign(s, root)) for s in dealt.shares[:7])
    signature = threshold.combine(partials, dealt.committee.t, dealt.committee.n)
    [signed] = compute_signed_slot([block], dealt.committee.committee_id, signature, partials,
                                   deadline_ms=1, published_ms=2)
    return signed, [compute_event_id(e) for e in log], victim, kept[1]


def censorship_doc(dealt: Dealt, signed_slot: Any, bid: Bid | None = None,
                   **receipt_kw: Any) -> Any:
    signed, ids, victim, _ = signed_slot
    receipt = receipt_of(dealt.committee.committee_id, bid or victim, **receipt_kw)
    return compute_censorship_evidence(receipt, signed, ids)


def refusal(doc: Any, dealt: Dealt, **kw: Any) -> str:
    with pytest.raises(EvidenceRefused) as info:
        verify_evidence(orjson.loads(orjson.dumps(doc)), dealt.committee, **kw)
    return info.value.code


def test_a_receipt_missing_from_its_signed_slot_is_censorship(dealt: Dealt, slot: Any) -> None:
    verdict = verify_evidence(censorship_doc(dealt, slot), dealt.committee,
                              operator=OPERATOR.address)
    assert verdict.kind == KIND_CENSORSHIP
    assert verdict.offender == f"operator {OPERATOR.address}"
    assert (verdict.rollup, verdict.slot) == (ROLLUP, SLOT)
    # The id names the offence: another receipt for the same event gives the same id
    again = verify_evidence(censorship_doc(dealt, slot, received_ms=12345), dealt.committee)
    assert again.evidence_id == verdict.evidence_id


def test_an_included_event_is_not_censorship(dealt: Dealt, slot: Any) -> None:
    included = slot[3]
    assert refusal(censorship_doc(dealt, slot, included), dealt) == "event_included"


def test_an_included_cancel_is_not_censorship(dealt: Dealt, slot: Any) -> None:
    signed, ids, _, _ = slot
    cancel = signed_cancel(key(0), "11111111-1111-4111-8111-111111111111")
    receipt = sign_receipt(Receipt(
        committee_id=dealt.committee.committee_id, rollup=ROLLUP, slot=SLOT,
        event_id=compute_bid_id(cancel.evidence), kind=KIND_CANCEL,
        request_hash=to_hex(keccak256(cancel.evidence.body)), received_ms=cancel.received_ms,
    ), OPERATOR)
    doc = compute_censorship_evidence(receipt, signed, ids)
    assert refusal(doc, dealt) == "event_included"


@pytest.mark.parametrize("kw,code", [
    ({"slot": SLOT + 1}, "wrong_slot"),
    ({"rollup": ROLLUP + 1}, "wrong_rollup"),
])
def test_a_receipt_for_another_slot_or_rollup_is_refused(dealt: Dealt, slot: Any,
                                                        kw: dict[str, int], code: str) -> None:
    assert refusal(censorship_doc(dealt, slot, **kw), dealt) == code


def test_a_receipt_for_another_committee_is_refused(dealt: Dealt, slot: Any) -> None:
    signed, ids, victim, _ = slot
    doc = compute_censorship_evidence(receipt_of(bytes(32), victim), signed, ids)
    assert refusal(doc, dealt) == "wrong_committee"


def test_a_forged_receipt_and_another_operator_are_refused(dealt: Dealt, slot: Any) -> None:
    doc = censorship_doc(dealt, slot)
    forged = copy.deepcopy(doc)
    forged["receipt"]["operator"] = STRANGER.address
    assert refusal(forged, dealt) == "forged_receipt"
    assert refusal(doc, dealt, operator=STRANGER.address) == "wrong_operator"


def test_an_unsigned_or_tampered_block_is_not_certified(dealt: Dealt, slot: Any) -> None:
    doc = censorship_doc(dealt, slot)
    bad_sig = copy.deepcopy(doc)
    sig = bytearray.fromhex(bad_sig["signed_block"]["signature"][2:])
    sig[-1] ^= 1
    bad_sig["signed_block"]["signature"] = "0x" + sig.hex()
    assert refusal(bad_sig, dealt) == "block_not_certified"
    # A block with another bid-set root (a slot never signed as such): the hash no longer fits
    other_root = copy.deepcopy(doc)
    other_root["signed_block"]["bid_set_root"] = "0x" + "00" * 32
    assert refusal(other_root, dealt) == "block_not_certified"


def test_the_event_list_must_be_the_committed_one(dealt: Dealt, slot: Any) -> None:
    doc = censorship_doc(dealt, slot)
    ids = doc["event_ids"]
    assert refusal(doc | {"event_ids": ids[:-1]}, dealt) == "event_list_mismatch"
    assert refusal(doc | {"event_ids": ids[::-1]}, dealt) == "event_list_mismatch"
    victim = doc["receipt"]["event_id"]
    assert refusal(doc | {"event_ids": [*ids, victim]}, dealt) == "event_list_mismatch"
    assert refusal(doc | {"event_ids": [*ids, ids[0]]}, dealt) == "duplicate_items"
    assert refusal(doc | {"event_ids": [ids[0].upper()]}, dealt) == "malformed_hex"


@pytest.mark.parametrize("change,code", [
    ({"kind": "operator_nap"}, "unknown_evidence_kind"),
    ({"version": 2}, "unsupported_evidence_version"),
    ({"format": "other"}, "malformed_evidence"),
    ({"extra": 1}, "malformed_evidence"),
    ({"signed_block": {"kind": "blockspace-signed-block"}}, "malformed_evidence"),
])
def test_malformed_documents_are_refused_with_their_code(dealt: Dealt, slot: Any,
                                                         change: dict[str, Any], code: str) -> None:
    assert refusal(censorship_doc(dealt, slot) | change, dealt) == code


# --- member equivocation ----------------------------------------------------------------------


def two_partials(dealt: Dealt, member: int = 3) -> tuple[SignedPartial, SignedPartial]:
    share = dealt.shares[member - 1]
    roots = [compute_slot_root(compute_slot_leaves([proposal_of(
        dealt.committee, log_of([own_bid(i)])).block])) for i in (1, 2)]
    return tuple(  # type: ignore[return-value]
        SignedPartial(r, threshold.partial_sign(
            share, compute_slot_signing_root(dealt.committee.committee_id, SLOT, r)))
        for r in roots
    )


def test_two_partials_for_two_slot_roots_are_equivocation(dealt: Dealt) -> None:
    first, second = two_partials(dealt)
    cid = dealt.committee.committee_id
    verdict = verify_evidence(compute_equivocation_evidence(cid, SLOT, 3, first, second),
                              dealt.committee)
    assert (verdict.kind, verdict.offender, verdict.slot) == (KIND_MEMBER_EQUIVOCATION,
                                                              "member 3", SLOT)
    swapped = verify_evidence(compute_equivocation_evidence(cid, SLOT, 3, second, first),
                              dealt.committee)
    assert swapped.evidence_id == verdict.evidence_id


def test_equivocation_refusals_have_stable_codes(dealt: Dealt) -> None:
    first, second = two_partials(dealt)
    cid = dealt.committee.committee_id

    def code(*args: Any) -> str:
        return refusal(compute_equivocation_evidence(*args), dealt)

    assert code(cid, SLOT, 3, first, first) == "same_signing_root"
    assert code(cid, SLOT, 4, first, second) == "partial_does_not_verify"  # not member 4's
    assert code(cid, SLOT + 1, 3, first, second) == "partial_does_not_verify"  # other slot
    assert code(bytes(32), SLOT, 3, first, second) == "wrong_committee"
    assert code(cid, SLOT, 11, first, second) == "unknown_member"
    bad = compute_equivocation_evidence(cid, SLOT, 3, first, second)
    bad["first"]["partial"] = "0x12"
    assert refusal(bad, dealt) == "malformed_evidence"


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_any_flipped_byte_of_an_equivocation_is_refused(dealt: Dealt, data: st.DataObject) -> None:
    first, second = two_partials_cached(dealt)
    which = data.draw(st.sampled_from(["first", "second"]))
    item = first if which == "first" else second
    raw = bytearray(item.slot_root + item.partial)
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    flipped = SignedPartial(bytes(raw[:32]), bytes(raw[32:]))
    pair = (flipped, second) if which == "first" else (first, flipped)
    doc = compute_equivocation_evidence(dealt.committee.committee_id, SLOT, 3, *pair)
    with pytest.raises(EvidenceRefused):
        verify_evidence(doc, dealt.committee)


_CACHE: dict[int, tuple[SignedPartial, SignedPartial]] = {}


def two_partials_cached(dealt: Dealt) -> tuple[SignedPartial, SignedPartial]:
    if id(dealt) not in _CACHE:
        _CACHE[id(dealt)] = two_partials(dealt)
    return _CACHE[id(dealt)]


def test_a_signed_blocks_own_partials_can_prove_equivocation(dealt: Dealt, slot: Any) -> None:
    """The honest partial comes from a published signed block, the other from elsewhere."""
    signed: SignedBlock = slot[0]
    member, honest = signed.partials[2]
    other_root = b"\x42" * 32
    share = dealt.shares[member - 1]
    other = threshold.partial_sign(
        share, compute_slot_signing_root(signed.committee_id, signed.block.slot, other_root))
    doc = compute_equivocation_evidence(
        signed.committee_id, signed.block.slot, member, SignedPartial(signed.slot_root, honest),
        SignedPartial(other_root, other))
    assert verify_evidence(doc, dealt.committee).offender == f"member {member}"


def sealed_slot(dealt: Dealt, block: Any, committed: list[tuple[str, bytes]] | None
                ) -> SignedBlock:  # fmt: skip
    """``block`` signed in a slot whose slot root binds the ciphertext set ``committed``
    ((bid id, ciphertext) pairs), or none (``None``)."""
    cid = dealt.committee.committee_id
    root = (compute_ciphertext_root(cid, SLOT, [CiphertextLeaf(i, c) for i, c in committed])
            if committed is not None else None)  # fmt: skip
    message = compute_slot_signing_root(cid, SLOT, compute_slot_root(
        compute_slot_leaves([block]), root))
    partials = tuple((s.index, threshold.partial_sign(s, message)) for s in dealt.shares[:7])
    signature = threshold.combine(partials, dealt.committee.t, dealt.committee.n)
    [signed] = compute_signed_slot([block], cid, signature, partials, deadline_ms=1,
                                   published_ms=2, ciphertext_root=root)  # fmt: skip
    return signed


def sealed_receipt(dealt: Dealt, bid_id: str) -> Any:
    receipt = Receipt(
        committee_id=dealt.committee.committee_id, rollup=ROLLUP, slot=SLOT, event_id=bid_id,
        kind=KIND_SEALED_BID, request_hash=to_hex(keccak256(b"the encrypted call")),
        received_ms=5,
    )
    return sign_receipt(receipt, OPERATOR)


def leaves_of(pairs: list[tuple[str, bytes]]) -> list[dict[str, str]]:
    return [{"bid_id": i, "ciphertext_sha256": to_hex(hashlib.sha256(c).digest())}
            for i, c in pairs]  # fmt: skip


def test_an_encrypted_bid_left_out_of_the_committed_set_is_censorship(dealt: Dealt,
                                                                       slot: Any) -> None:
    block = slot[0].block
    ids = slot[1]
    committed = [("0x" + "aa" * 32, b"ciphertext one"), ("0x" + "bb" * 32, b"ciphertext two")]
    signed = sealed_slot(dealt, block, committed)
    victim = "0x" + "cc" * 32
    doc = compute_censorship_evidence(sealed_receipt(dealt, victim), signed, ids,
                                      leaves_of(committed))  # fmt: skip
    verdict = verify_evidence(orjson.loads(orjson.dumps(doc)), dealt.committee)
    assert verdict.kind == "censorship" and victim in verdict.detail
    # A bid in the committed set was processed (opened, or refused at opening): no offence
    doc = compute_censorship_evidence(sealed_receipt(dealt, committed[0][0]), signed, ids,
                                      leaves_of(committed))  # fmt: skip
    assert refusal(doc, dealt) == "event_included"
    # The list must be the set the signed slot root binds: one left out, or none given
    doc = compute_censorship_evidence(sealed_receipt(dealt, committed[0][0]), signed, ids,
                                      leaves_of(committed[1:]))  # fmt: skip
    assert refusal(doc, dealt) == "event_list_mismatch"
    doc = compute_censorship_evidence(sealed_receipt(dealt, victim), signed, ids)
    assert refusal(doc, dealt) == "malformed_evidence"


def test_an_acknowledged_encrypted_bid_in_a_slot_that_committed_none_is_censorship(
    dealt: Dealt, slot: Any
) -> None:
    signed, ids = slot[0], slot[1]  # signed without a ciphertext root: no set committed
    victim = "0x" + "dd" * 32
    doc = compute_censorship_evidence(sealed_receipt(dealt, victim), signed, ids, [])
    assert verify_evidence(orjson.loads(orjson.dumps(doc)), dealt.committee).kind == (
        "censorship")
    # A list claiming a set the block did not commit to is refused
    doc = compute_censorship_evidence(sealed_receipt(dealt, victim), signed, ids,
                                      leaves_of([(victim, b"x")]))  # fmt: skip
    assert refusal(doc, dealt) == "event_list_mismatch"


def test_a_ciphertext_root_other_than_signed_is_not_certified(dealt: Dealt, slot: Any) -> None:
    committed = [("0x" + "aa" * 32, b"ciphertext one")]
    signed = sealed_slot(dealt, slot[0].block, committed)
    forged = dataclasses.replace(signed, slot_proof=dataclasses.replace(
        signed.slot_proof, ciphertext_root=b"\x01" * 32))
    doc = compute_censorship_evidence(sealed_receipt(dealt, "0x" + "cc" * 32), forged, slot[1],
                                      leaves_of(committed))  # fmt: skip
    assert refusal(doc, dealt) == "block_not_certified"
