"""The member's rules as pure functions: every refusal code, reached by one tampering each."""

from __future__ import annotations

import dataclasses

import pytest

from api.searcher import SearcherKey
from auction.bundles import compute_bid_id
from auction.encoding import ZERO_HASH, compute_pending_root
from auction.errors import BlockspaceError, FairnessViolation, ForcedTxMissing
from auction.presets import MAINNET
from auction.slots import compute_deadline_ms
from auction.types import Bid, Evidence, LoggedEvent, PendingTx, WinningBundle
from committee import threshold
from committee.checks import (
    KnownBlock,
    MemberConfig,
    check_block,
    check_evidence,
    check_fairness,
    check_membership,
    check_parent,
    check_shape,
    check_timing,
    compute_expected_result,
)
from committee.errors import (
    BidSetMismatch,
    BlockMismatch,
    InvalidEvidence,
    Locked,
    MalformedProposal,
    NotMember,
    PoolMismatch,
    Refusal,
    SlotExpired,
    SlotNotClosed,
    UnknownParent,
)
from committee.proposal import Proposal, decode_proposal
from tests.committee.conftest import Dealt
from tests.committee.slots import (
    CLOCK,
    ROLLUP,
    SKEW_MS,
    SLOT,
    WINDOW_MS,
    after_close,
    certify,
    config_of,
    encode_part,
    key,
    log_of,
    proposal_of,
    public_tx,
    raw_tx,
    rehash,
    result_of,
    signed_bid,
    signed_cancel,
    with_block,
)

NO_SAMPLE: frozenset[str] = frozenset()


def run_all(config: MemberConfig, p: Proposal, *, known: KnownBlock | None = None,
            now_ms: int | None = None, sample: frozenset[str] = NO_SAMPLE) -> None:
    """Every pure check in the member's order (protection aside)."""
    check_shape(p)
    check_membership(config, p)
    check_timing(config, p, after_close(p.slot) if now_ms is None else now_ms)
    check_parent(config, p, known)
    check_evidence(config, p, sample)
    check_block(config, p, compute_expected_result(config, p))
    check_fairness(config.rollups[p.rollup], p, p.block)


def refusal(config: MemberConfig, p: Proposal, **kwargs: object) -> BlockspaceError:
    """What a member refuses ``p`` with: a committee Refusal, or a core rule (fairness)."""
    with pytest.raises((Refusal, FairnessViolation)) as excinfo:
        run_all(config, p, **kwargs)  # type: ignore[arg-type]
    return excinfo.value


@pytest.fixture(scope="module")
def slot_bids() -> list:
    """Five searchers, one of them with two competing versions (uuid replacement)."""
    bids = [signed_bid(key(i), bid_wei=10**15 * (i + 1)) for i in range(4)]
    bids.append(signed_bid(key(9), bid_wei=10**14, uuid="11111111-2222-3333-4444-555555555555"))
    bids.append(signed_bid(key(9), bid_wei=10**16, uuid="11111111-2222-3333-4444-555555555555"))
    return bids


@pytest.fixture(scope="module")
def honest(dealt: Dealt, slot_bids: list) -> Proposal:
    return proposal_of(dealt.committee, log_of(slot_bids))


@pytest.fixture(scope="module")
def config(dealt: Dealt) -> MemberConfig:
    return config_of(dealt.committee)


# --- the honest path --------------------------------------------------------------------------


def test_honest_proposal_passes_every_check(config: MemberConfig, honest: Proposal) -> None:
    assert len(honest.block.bundles) >= 4
    run_all(config, honest)


def test_proposal_survives_the_wire(config: MemberConfig, honest: Proposal) -> None:
    decoded = decode_proposal(encode_part(honest))
    assert decoded.parts == (honest,) and decoded.slot == honest.slot
    run_all(config, decoded.parts[0])


# --- 1. shape and membership ------------------------------------------------------------------


def test_block_hash_not_matching_fields_is_malformed(config: MemberConfig, honest: Proposal):
    lie = dataclasses.replace(honest, block=dataclasses.replace(honest.block, gas_used=1))
    assert refusal(config, lie).code == "malformed_proposal"


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[]", b'{"kind": "blockspace-proposal"}', b'{"kind": "x", "version": 1}'],
)
def test_garbage_proposal_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedProposal):
        decode_proposal(data)


def test_mistyped_log_field_is_malformed(honest: Proposal) -> None:
    text = encode_part(honest).replace(b'"gas":60000', b'"gas":"60000"', 1)
    with pytest.raises(MalformedProposal):
        decode_proposal(text)


def test_other_committee_is_not_member(dealt: Dealt, honest: Proposal) -> None:
    other, _ = threshold.deal(4, 3, b"\x07" * 32)
    assert refusal(config_of(other), honest).code == "not_member"


def test_unserved_rollup_is_not_member(config: MemberConfig, honest: Proposal) -> None:
    config2 = dataclasses.replace(config, rollups={10: config.rollups[ROLLUP]})
    with pytest.raises(NotMember):
        check_membership(config2, honest)


# --- 2. timing --------------------------------------------------------------------------------


def test_open_slot_is_not_signed(config: MemberConfig, honest: Proposal) -> None:
    deadline = compute_deadline_ms(CLOCK, SLOT)
    with pytest.raises(SlotNotClosed):
        check_timing(config, honest, deadline - SKEW_MS - 1)
    check_timing(config, honest, deadline - SKEW_MS)  # within the skew bound


def test_slot_past_signing_deadline_is_refused(config: MemberConfig, honest: Proposal) -> None:
    deadline = compute_deadline_ms(CLOCK, SLOT)
    check_timing(config, honest, deadline + WINDOW_MS)
    with pytest.raises(SlotExpired):
        check_timing(config, honest, deadline + WINDOW_MS + 1)


# --- 4. parent --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain(dealt: Dealt, slot_bids: list) -> tuple[Proposal, Proposal]:
    """Slot SLOT (genesis child) and SLOT + 2 on top of it (SLOT + 1 failed)."""
    first = proposal_of(dealt.committee, log_of(slot_bids))
    cert = certify(dealt.committee, dealt.group_secret, first.block)
    later_bids = [signed_bid(key(20 + i), SLOT + 2, bid_wei=10**15) for i in range(3)]
    second = proposal_of(dealt.committee, log_of(later_bids, SLOT + 2), SLOT + 2, parent=cert)
    return first, second


def test_member_back_from_downtime_adopts_a_signed_newer_parent(config, chain) -> None:
    first, second = chain
    adopted = check_parent(config, second, known=None)
    assert adopted == KnownBlock(SLOT, first.block.block_hash, first.block.pending_root)
    older = KnownBlock(SLOT - 5, "0x" + "ab" * 32, ZERO_HASH)
    assert check_parent(config, second, older) == adopted
    run_all(config, second, known=older)


def test_known_parent_needs_no_signature_check(config, chain) -> None:
    first, second = chain
    known = KnownBlock(SLOT, first.block.block_hash, first.block.pending_root)
    assert check_parent(config, second, known) is None


def test_parent_with_bad_signature_is_unknown(config, chain) -> None:
    _, second = chain
    assert second.parent is not None
    forged = dataclasses.replace(second.parent, signature=second.parent.signature[:-1] + b"\x00")
    with pytest.raises(UnknownParent):
        check_parent(config, dataclasses.replace(second, parent=forged), None)


def test_parent_older_than_the_head_is_refused_as_locked(config, chain) -> None:
    _, second = chain
    newer = KnownBlock(SLOT + 1, "0x" + "cd" * 32, ZERO_HASH)
    refused = refusal(config, second, known=newer)
    assert refused.code == "locked"
    assert refused.data["known_block_hash"] == newer.block_hash


def test_parentless_block_when_a_head_is_known_is_refused_as_locked(config, honest) -> None:
    known = KnownBlock(SLOT - 1, "0x" + "cd" * 32, ZERO_HASH)
    with pytest.raises(Locked):
        check_parent(config, honest, known)


def test_a_sibling_of_the_head_is_refused_even_with_the_same_parent(config, chain) -> None:
    first, second = chain
    # The member signed a block at SLOT + 1 on ``first`` (its head); ``second`` (SLOT + 2) has
    # the same parent: signing it too would make two children of one parent.
    signed = KnownBlock(SLOT + 1, "0x" + "ef" * 32, ZERO_HASH)
    with pytest.raises(Locked):
        check_parent(config, second, signed)


def test_a_completion_request_may_be_signed_late(config, honest) -> None:
    deadline = compute_deadline_ms(CLOCK, SLOT)
    late = deadline + WINDOW_MS + 60_000
    with pytest.raises(SlotExpired):
        check_timing(config, honest, late)
    check_timing(config, dataclasses.replace(honest, completion=True), late)


def test_carried_pool_must_be_the_parents_pending(config, chain) -> None:
    _, second = chain
    stray = public_tx(key(40), SLOT)
    extra = (PendingTx(stray.tx, SLOT, "1-0"),)
    assert refusal(config, dataclasses.replace(second, carried=extra)).code == "pool_mismatch"
    with pytest.raises(PoolMismatch):
        check_parent(config, dataclasses.replace(second, carried=extra), None)


# --- 5. evidence ------------------------------------------------------------------------------


def test_winner_with_forged_signature_is_refused(dealt, config, slot_bids) -> None:
    forged = signed_bid(key(30), bid_wei=10**18)  # the best bid: it wins
    bad_sig = forged.evidence.signature[:-4] + ("00" if forged.evidence.signature[-4:-2] != "00"
                                                 else "11") + forged.evidence.signature[-2:]
    evidence = Evidence(forged.evidence.body, bad_sig)
    lie = dataclasses.replace(forged, evidence=evidence, bid_id=compute_bid_id(evidence))
    p = proposal_of(dealt.committee, log_of([*slot_bids, lie]))
    assert lie.bid_id in {w.bid_id for w in p.block.bundles}
    r = refusal(config, p)
    assert r.code == "invalid_evidence" and r.data["bid_id"] == lie.bid_id


def outbid(k: SearcherKey) -> tuple[Bid, Bid]:
    """A 1-wei bid and a rival of the same searcher on the same (sender, nonce) bidding more:
    the first loses whatever else the slot holds (not by chance of the txs' bytes)."""
    loser = signed_bid(k, bid_wei=1, txs=[raw_tx(k, nonce=7)])
    rival = signed_bid(k, bid_wei=10**18, txs=[raw_tx(k, nonce=7, tip_gwei=3)])
    return loser, rival


def test_bid_without_evidence_is_refused_even_when_losing(dealt, config, slot_bids) -> None:
    loser, rival = outbid(key(31))
    stripped = dataclasses.replace(loser, evidence=Evidence(b"", ""))
    p = proposal_of(dealt.committee, log_of([*slot_bids, rival, stripped]))
    assert stripped.bid_id not in {w.bid_id for w in p.block.bundles}
    assert refusal(config, p).code == "invalid_evidence"


def test_losing_bid_amount_must_be_the_signed_one(dealt, config, slot_bids) -> None:
    # Understating a bid (so that it loses) contradicts the searcher's signed `bid` field.
    real = signed_bid(key(32), bid_wei=10**17, txs=[raw_tx(key(32), nonce=7)])
    understated = dataclasses.replace(real, bid_wei=1)
    # A rival on the same (sender, nonce) outbids it, so it loses whatever else is in the slot
    rival = signed_bid(key(32), bid_wei=10**18, txs=[raw_tx(key(32), nonce=7, tip_gwei=3)])
    p = proposal_of(dealt.committee, log_of([*slot_bids, rival, understated]))
    assert understated.bid_id not in {w.bid_id for w in p.block.bundles}
    r = refusal(config, p)
    assert r.code == "invalid_evidence" and "amount" in r.message


def test_sampled_loser_is_fully_rederived(dealt, config, slot_bids) -> None:
    # A lie about a field only the transactions' decoding gives (a tx's gas, and so the bid's)
    # passes the cheap binding checks, and is caught when the loser is in the member's sample.
    real, rival = outbid(key(33))
    tx = dataclasses.replace(real.txs[0], gas_limit=real.txs[0].gas_limit + 1)
    lie = dataclasses.replace(real, txs=(tx,), gas=real.gas + 1)
    p = proposal_of(dealt.committee, log_of([*slot_bids, rival, lie]))
    assert lie.bid_id not in {w.bid_id for w in p.block.bundles}
    check_evidence(config, p, NO_SAMPLE)
    with pytest.raises(InvalidEvidence) as excinfo:
        check_evidence(config, p, frozenset({lie.bid_id}))
    assert excinfo.value.data["field"] == "txs"


def test_a_losers_gas_must_be_its_transactions_even_unsampled(dealt, config, slot_bids) -> None:
    real = signed_bid(key(33), bid_wei=1)
    lie = dataclasses.replace(real, gas=real.gas + 1)
    p = proposal_of(dealt.committee, log_of([*slot_bids, lie]))
    with pytest.raises(InvalidEvidence, match="gas"):
        check_evidence(config, p, NO_SAMPLE)


def test_forged_replacement_is_refused(dealt, config, slot_bids) -> None:
    # A fake later version under a searcher's uuid would silently replace its real bid.
    victim = slot_bids[-1]
    fake = signed_bid(key(34), bid_wei=1, uuid="11111111-2222-3333-4444-555555555555")
    fake = dataclasses.replace(fake, searcher=victim.searcher)
    p = proposal_of(dealt.committee, log_of([*slot_bids, fake]))
    assert refusal(config, p).code == "invalid_evidence"


def test_forged_cancel_is_refused_and_a_real_one_passes(dealt, config, slot_bids) -> None:
    owner = key(9)
    real = signed_cancel(owner, "11111111-2222-3333-4444-555555555555")
    run_all(config, proposal_of(dealt.committee, log_of([*slot_bids, real])))
    forged = dataclasses.replace(
        signed_cancel(key(35), real.replacement_uuid), searcher=owner.address
    )
    p = proposal_of(dealt.committee, log_of([*slot_bids, forged]))
    assert refusal(config, p).code == "invalid_evidence"


def test_bid_for_another_slot_is_refused(dealt, config, slot_bids) -> None:
    other = signed_bid(key(36), SLOT + 1)
    p = proposal_of(dealt.committee, log_of([*slot_bids, other]))
    assert refusal(config, p).code == "invalid_evidence"


# --- 6. the block is the slot function's ------------------------------------------------------


def test_non_optimal_block_is_refused(config, honest) -> None:
    best = max(honest.block.bundles, key=lambda w: w.bid_wei)
    kept = tuple(w for w in honest.block.bundles if w != best)
    lie = with_block(honest, dataclasses.replace(
        honest.block, bundles=kept, revenue_wei=sum(w.payment_wei for w in kept)))
    r = refusal(config, lie)
    assert r.code == "block_mismatch" and r.data["expected_block_hash"] == honest.block.block_hash


def test_reordered_block_is_refused(config, honest) -> None:
    b = honest.block
    swapped = (b.bundles[1], b.bundles[0], *b.bundles[2:])
    txs = (b.txs[1], b.txs[0], *b.txs[2:])
    lie = with_block(honest, dataclasses.replace(b, bundles=swapped, txs=txs))
    r = refusal(config, lie)
    assert r.code == "block_mismatch" and r.data["field"] == "bundles"


def test_wrong_payment_is_refused(config, honest) -> None:
    b = honest.block
    cheap = WinningBundle(**{**dataclasses.asdict(b.bundles[0]), "payment_wei": 1})
    lie = with_block(honest, dataclasses.replace(b, bundles=(cheap, *b.bundles[1:])))
    assert refusal(config, lie).code == "block_mismatch"


def test_bid_set_root_must_commit_to_the_log(config, honest) -> None:
    lie = with_block(honest, dataclasses.replace(honest.block, bid_set_root="0x" + "12" * 32))
    with pytest.raises(BidSetMismatch):
        run_all(config, lie)


def test_dropped_log_event_changes_the_root(config, honest) -> None:
    # Censoring a bid from the log: the header's root no longer matches the log sent.
    lie = dataclasses.replace(honest, log=honest.log[1:])
    assert refusal(config, lie).code in ("bid_set_mismatch", "invalid_evidence")


# --- 7. fairness ------------------------------------------------------------------------------


def test_member_policy_not_coordinators_decides_fairness(dealt, slot_bids) -> None:
    # The coordinator packs with no searcher cap; the member's own policy caps at 10 %.
    hog = [signed_bid(key(50), bid_wei=10**18, gas=2_000_000) for _ in range(3)]
    p = proposal_of(dealt.committee, log_of([*slot_bids, *hog]))
    capped = config_of(dealt.committee, policy=MAINNET.policy.with_(max_gas_share_per_searcher=0.1))
    r = refusal(capped, p)
    assert isinstance(r, FairnessViolation) and r.data["rule"] == "searcher_cap"


def test_missing_due_public_tx_is_refused(dealt) -> None:
    # A public tx that waited a slot is due (inclusion list); dropping it from the lane is
    # refused with the specific reason.
    policy = MAINNET.policy.with_(inclusion_after_slots=1)
    waiting = public_tx(key(60), SLOT - 1, policy=policy)
    carried = (PendingTx(waiting.tx, SLOT - 1, "1-0"),)
    parent_block = rehash(dataclasses.replace(
        result_of(log_of([]), SLOT - 1, policy=policy).block,
        pending_root=compute_pending_root(carried),
    ))
    cert = certify(dealt.committee, dealt.group_secret, parent_block)
    bids = [signed_bid(key(61 + i), bid_wei=10**15, policy=policy) for i in range(2)]
    p = proposal_of(dealt.committee, log_of(bids), parent=cert, carried=carried, policy=policy)
    config = config_of(dealt.committee, policy=policy)
    assert p.block.public_tx_count == 1
    run_all(config, p)
    b = p.block
    lie = with_block(p, dataclasses.replace(
        b, txs=b.txs[:-1], public_tx_count=0, gas_used=b.gas_used - waiting.tx.gas_limit))
    r = refusal(config, lie)
    assert isinstance(r, ForcedTxMissing) and r.data["txs"] == [waiting.tx.hash]


def test_bundle_conflicting_with_due_tx_breaks_fairness(dealt) -> None:
    policy = MAINNET.policy.with_(inclusion_after_slots=1)
    waiting = public_tx(key(70), SLOT - 1, policy=policy)
    carried = (PendingTx(waiting.tx, SLOT - 1, "1-0"),)
    # A bundle that back-runs (re-includes) the due tx cannot win.
    bundle = signed_bid(key(71), bid_wei=10**18, txs=[waiting.tx.raw], policy=policy)
    log = log_of([bundle])
    p = dataclasses.replace(
        proposal_of(dealt.committee, log, policy=policy), carried=carried, parent=None
    )
    block = p.block
    winner = WinningBundle(bundle.bid_id, bundle.bundle_hash, bundle.searcher, bundle.bid_wei,
                           bundle.bid_wei, bundle.gas)
    lie = rehash(dataclasses.replace(block, bundles=(winner,), txs=(waiting.tx.raw,)))
    with pytest.raises(FairnessViolation) as excinfo:
        check_fairness(config_of(dealt.committee, policy=policy).rollups[ROLLUP],
                       dataclasses.replace(p, block=lie), lie)
    assert excinfo.value.data["rule"] == "conflict"


def test_members_rederive_the_pools_evictions(dealt) -> None:
    # The pool keeps 2; a carried tx reaches its max age in this slot. The honest block evicts
    # both the old tx and the newest arrival; a coordinator that keeps them is refused.
    policy = MAINNET.policy.with_(gas_limit=100_000, max_pending_public_txs=2,
                                  max_public_tx_age_slots=2)
    old = public_tx(key(80), SLOT - 2, gas=50_000, policy=policy)
    carried = (PendingTx(old.tx, SLOT - 2, "1-0"),)
    parent_block = rehash(dataclasses.replace(
        result_of(log_of([]), SLOT - 1, policy=policy).block,
        pending_root=compute_pending_root(carried),
    ))
    cert = certify(dealt.committee, dealt.group_secret, parent_block)
    arrivals = [public_tx(key(81 + i), gas=50_000, policy=policy) for i in range(3)]
    bid = signed_bid(key(85), bid_wei=10**15, gas=60_000, policy=policy)  # leaves 40k: none fit
    log = log_of([*arrivals, bid])
    p = proposal_of(dealt.committee, log, parent=cert, carried=carried, policy=policy)
    config = config_of(dealt.committee, policy=policy)
    run_all(config, p)
    expected = result_of(log, parent_hash=cert.header.block_hash, carried=carried, policy=policy)
    assert p.block.public_tx_count == 0
    assert [x.tx.hash for x in expected.pending] == [a.tx.hash for a in arrivals[:2]]
    # The lie: nothing evicted.
    waiting = (*carried, *(PendingTx(a.tx, SLOT, e.seq) for a, e in zip(arrivals, log[:3],
                                                                          strict=True)))
    lie = with_block(p, dataclasses.replace(p.block, pending_root=compute_pending_root(waiting)))
    r = refusal(config, lie)
    assert isinstance(r, BlockMismatch) and r.data["expected_block_hash"] == p.block.block_hash


def test_refusal_codes_are_stable() -> None:
    codes = {cls.code for cls in (
        MalformedProposal, NotMember, SlotNotClosed, SlotExpired, UnknownParent, Locked,
        PoolMismatch, InvalidEvidence, BidSetMismatch, BlockMismatch, FairnessViolation,
        ForcedTxMissing)}
    assert codes == {
        "malformed_proposal", "not_member", "slot_not_closed", "slot_expired", "unknown_parent",
        "locked", "pool_mismatch", "invalid_evidence", "bid_set_mismatch", "block_mismatch",
        "fairness_violation", "forced_tx_missing",
    }


def test_log_entry_order_is_what_the_root_commits_to(dealt, config, slot_bids) -> None:
    p = proposal_of(dealt.committee, log_of(slot_bids))
    swapped = (p.log[1], p.log[0], *p.log[2:])
    lie = dataclasses.replace(p, log=tuple(LoggedEvent(e.seq, e.event) for e in swapped))
    assert refusal(config, lie).code == "bid_set_mismatch"
