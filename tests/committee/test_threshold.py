"""Threshold keygen, Feldman checks, partials and combine; py_ecc is the independent verifier."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from eth_typing import BLSPubkey, BLSSignature
from hypothesis import given, settings
from hypothesis import strategies as st
from py_ecc.bls import G2ProofOfPossession

from committee import bls, threshold
from committee.errors import (
    CommitteeError,
    CommitteeMismatch,
    DuplicatePartial,
    InvalidCommitteeParams,
    InvalidMemberIndex,
    InvalidPoint,
    InvalidScalar,
    NotEnoughPartials,
)
from committee.threshold import KeyShare
from tests.committee.conftest import Dealt

R = bls.CURVE_ORDER
SEED = bytes(range(32))


def _subset_strategy(n: int, min_size: int, max_size: int) -> st.SearchStrategy[list[int]]:
    return st.lists(
        st.integers(min_value=1, max_value=n), min_size=min_size, max_size=max_size, unique=True
    )


# --- parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "t"), [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (7, 5), (10, 7), (100, 67)]
)
def test_default_threshold_is_n_minus_max_faulty(n: int, t: int) -> None:
    assert threshold.default_threshold(n) == t


@pytest.mark.parametrize(
    ("n", "t"),
    [(0, 0), (3, 0), (3, 4), (-1, 1), (threshold.MAX_COMMITTEE_SIZE + 1, 1), (True, 1), (3, 2.0)],
)
def test_deal_rejects_bad_params(n: int, t: int) -> None:
    with pytest.raises(InvalidCommitteeParams) as excinfo:
        threshold.deal(n, t, SEED)
    assert excinfo.value.code == "invalid_committee_params"


@pytest.mark.parametrize("seed", [b"", bytes(31), "0" * 64])
def test_deal_rejects_short_or_non_bytes_seed(seed: bytes) -> None:
    with pytest.raises(ValueError, match="seed"):
        threshold.deal(4, 3, seed)


# --- dealing and Feldman ----------------------------------------------------------------------


def test_deal_is_deterministic_in_the_seed(dealt: Dealt) -> None:
    again, shares = threshold.deal(10, 7, SEED)
    assert again == dealt.committee
    assert [s.secret for s in shares] == [s.secret for s in dealt.shares]
    other, _ = threshold.deal(10, 7, bytes(32))
    assert other.committee_id != dealt.committee.committee_id
    # A different shape from the same seed gives an unrelated polynomial, not a prefix of it.
    reshaped, _ = threshold.deal(10, 8, SEED)
    assert reshaped.commitments[0] != dealt.committee.commitments[0]


def test_dealt_committee_is_consistent(dealt: Dealt) -> None:
    committee = dealt.committee
    assert (committee.n, committee.t) == (10, 7)
    assert committee.group_public_key == committee.commitments[0]
    assert len(committee.member_public_keys) == 10
    threshold.check_committee_info(committee)
    assert committee == threshold.compute_committee_info(10, 7, committee.commitments)
    assert committee.committee_id == threshold.compute_committee_id(10, 7, committee.commitments)
    assert bls.secret_to_public_key(dealt.group_secret) == committee.group_public_key


def test_every_share_passes_its_feldman_check(dealt: Dealt) -> None:
    for share in dealt.shares:
        assert share.committee_id == dealt.committee.committee_id
        assert threshold.verify_share(share, dealt.committee.commitments)
        assert share.public_key == dealt.committee.member_public_key(share.index)
        assert share.public_key == threshold.compute_member_public_key(
            dealt.committee.commitments, share.index
        )


def test_any_t_shares_interpolate_the_same_group_secret(dealt: Dealt) -> None:
    for subset in itertools.combinations(dealt.shares, 7):
        lambdas = threshold.lagrange_coefficients_at_zero([s.index for s in subset])
        secret = sum(lam * s.secret for lam, s in zip(lambdas, subset, strict=True)) % R
        assert secret == dealt.group_secret


def _tampered_shares(dealt: Dealt) -> list[KeyShare]:
    share = dealt.shares[2]
    return [
        dataclasses.replace(share, secret=(share.secret + 1) % R or 1),
        dataclasses.replace(share, secret=dealt.shares[3].secret),
        dataclasses.replace(share, index=share.index + 1),
        dataclasses.replace(share, secret=dealt.group_secret),
    ]


def test_feldman_check_rejects_tampered_shares(dealt: Dealt) -> None:
    for tampered in _tampered_shares(dealt):
        assert not threshold.verify_share(tampered, dealt.committee.commitments)


def test_feldman_check_rejects_tampered_commitments(dealt: Dealt) -> None:
    # Member 3, not 1: at x = 1 every power is 1, so reordering commitments would go unnoticed.
    share = dealt.shares[2]
    commitments = list(dealt.committee.commitments)
    other, _ = threshold.deal(10, 7, bytes(32))
    candidates = [
        other.commitments,
        [commitments[1], commitments[0], *commitments[2:]],
        commitments[:-1],
        [*commitments[:-1], bls.secret_to_public_key(5)],
        [],
        [b"\xc0" + bytes(47), *commitments[1:]],
    ]
    for candidate in candidates:
        assert not threshold.verify_share(share, candidate)


def test_keyshare_rejects_bad_fields(dealt: Dealt) -> None:
    share = dealt.shares[0]
    for secret in (0, R, R + 1):
        with pytest.raises(InvalidScalar):
            dataclasses.replace(share, secret=secret)
    for index in (0, -1, threshold.MAX_COMMITTEE_SIZE + 1):
        with pytest.raises(InvalidMemberIndex):
            dataclasses.replace(share, index=index)
    with pytest.raises(CommitteeMismatch):
        dataclasses.replace(share, committee_id=b"short")


def test_keyshare_repr_hides_the_secret(dealt: Dealt) -> None:
    share = dealt.shares[0]
    assert str(share.secret) not in repr(share)
    assert hex(share.secret)[2:] not in repr(share)


def test_committee_info_rejects_wrong_counts(dealt: Dealt) -> None:
    committee = dealt.committee
    with pytest.raises(CommitteeMismatch):
        dataclasses.replace(committee, member_public_keys=committee.member_public_keys[:-1])
    with pytest.raises(CommitteeMismatch):
        dataclasses.replace(committee, commitments=committee.commitments[:-1])
    with pytest.raises(InvalidCommitteeParams):
        dataclasses.replace(committee, t=11)


def test_check_committee_info_names_the_wrong_member_key(dealt: Dealt) -> None:
    keys = list(dealt.committee.member_public_keys)
    keys[3], keys[4] = keys[4], keys[3]
    swapped = dataclasses.replace(dealt.committee, member_public_keys=tuple(keys))
    with pytest.raises(CommitteeMismatch) as excinfo:
        threshold.check_committee_info(swapped)
    assert excinfo.value.data["index"] == 4


# --- partials ---------------------------------------------------------------------------------


def test_every_partial_verifies_under_its_member_key(
    dealt: Dealt, partials: dict[int, bytes], message: bytes
) -> None:
    for index, partial in partials.items():
        assert threshold.verify_partial(dealt.committee.member_public_key(index), message, partial)


def test_verify_partial_detects_wrong_or_garbage_partials(
    dealt: Dealt, partials: dict[int, bytes], message: bytes
) -> None:
    member_key = dealt.committee.member_public_key(3)
    flipped = bytearray(partials[3])
    flipped[50] ^= 0x04
    wrong = {
        "another member's partial": partials[4],
        "partial on another message": threshold.partial_sign(dealt.shares[2], message + b"x"),
        "group signature": bls.sign(dealt.group_secret, message),
        "random G2 point": bls.encode_g2(bls.hash_to_g2(b"garbage")),
        "flipped bit": bytes(flipped),
        "truncated": partials[3][:-1],
        "identity": b"\xc0" + bytes(95),
        "zeros": bytes(96),
    }
    for label, partial in wrong.items():
        assert not threshold.verify_partial(member_key, message, partial), label


# --- combine ----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(subset=_subset_strategy(10, 7, 10))
def test_any_t_or_more_partials_combine_to_the_group_signature(
    dealt: Dealt, partials: dict[int, bytes], message: bytes, subset: list[int]
) -> None:
    combined = threshold.combine({i: partials[i] for i in subset}, 7, 10)
    # Deterministic: exactly the signature the group secret itself would have made.
    assert combined == bls.sign(dealt.group_secret, message)
    assert bls.verify(dealt.committee.group_public_key, message, combined)


def test_combined_signature_verifies_under_py_ecc(
    dealt: Dealt, partials: dict[int, bytes], message: bytes
) -> None:
    combined = threshold.combine({i: partials[i] for i in (2, 3, 5, 6, 8, 9, 10)}, 7, 10)
    group_key = BLSPubkey(dealt.committee.group_public_key)
    assert G2ProofOfPossession.Verify(group_key, message, BLSSignature(combined))
    assert not G2ProofOfPossession.Verify(group_key, b"other", BLSSignature(combined))


@settings(max_examples=25, deadline=None)
@given(subset=_subset_strategy(10, 1, 6))
def test_fewer_than_t_partials_are_refused_and_cannot_forge(
    dealt: Dealt, partials: dict[int, bytes], message: bytes, subset: list[int]
) -> None:
    chosen = {i: partials[i] for i in subset}
    with pytest.raises(NotEnoughPartials) as excinfo:
        threshold.combine(chosen, 7, 10)
    assert excinfo.value.data == {"need": 7, "got": len(subset)}
    # Even interpolating them anyway (claiming a lower threshold) gives no valid signature.
    forged = threshold.combine(chosen, len(subset), 10)
    assert not bls.verify(dealt.committee.group_public_key, message, forged)


def test_one_bad_partial_spoils_the_combination(
    dealt: Dealt, partials: dict[int, bytes], message: bytes
) -> None:
    chosen = {i: partials[i] for i in range(1, 8)}
    chosen[4] = partials[9]  # a valid signature, but by the wrong member
    combined = threshold.combine(chosen, 7, 10)
    assert not bls.verify(dealt.committee.group_public_key, message, combined)


def test_combine_accepts_pairs_like_a_mapping(partials: dict[int, bytes]) -> None:
    pairs = [(i, partials[i]) for i in (10, 1, 4, 7, 2, 8, 3)]
    assert threshold.combine(pairs, 7, 10) == threshold.combine(dict(pairs), 7)


@pytest.mark.parametrize(
    ("indices", "error"),
    [
        ([1, 2, 3, 4, 5, 6, 6], DuplicatePartial),
        ([0, 1, 2, 3, 4, 5, 6], InvalidMemberIndex),
        ([1, 2, 3, 4, 5, 6, 11], InvalidMemberIndex),
        ([-1, 1, 2, 3, 4, 5, 6], InvalidMemberIndex),
        ([True, 2, 3, 4, 5, 6, 7], InvalidMemberIndex),
        (["1", 2, 3, 4, 5, 6, 7], InvalidMemberIndex),
    ],
)
def test_combine_rejects_bad_indices(
    partials: dict[int, bytes], indices: list[int], error: type[CommitteeError]
) -> None:
    pairs = [(i, partials[int(i) if int(i) in partials else 1]) for i in indices]
    with pytest.raises(error):
        threshold.combine(pairs, 7, 10)


def test_combine_names_the_duplicated_member(partials: dict[int, bytes]) -> None:
    pairs = [(i, partials[i]) for i in (1, 2, 3, 4, 5, 6, 7)] + [(4, partials[4])]
    with pytest.raises(DuplicatePartial) as excinfo:
        threshold.combine(pairs, 7, 10)
    assert excinfo.value.data == {"index": 4}


def test_combine_rejects_malformed_partials(partials: dict[int, bytes]) -> None:
    chosen = {i: partials[i] for i in range(1, 8)}
    chosen[5] = b"\xc0" + bytes(95)
    with pytest.raises(InvalidPoint) as excinfo:
        threshold.combine(chosen, 7, 10)
    assert "member 5" in excinfo.value.message


@pytest.mark.parametrize(("t", "n"), [(0, 10), (11, 10), (7, 0), (False, 10)])
def test_combine_rejects_bad_params(partials: dict[int, bytes], t: int, n: int) -> None:
    with pytest.raises(InvalidCommitteeParams):
        threshold.combine(partials, t, n)


@pytest.mark.parametrize(("n", "t"), [(1, 1), (3, 1), (3, 3), (4, 3)])
def test_small_and_extreme_committees_sign(n: int, t: int) -> None:
    committee, shares = threshold.deal(n, t, SEED)
    message = f"{n}-{t}".encode()
    parts = {s.index: threshold.partial_sign(s, message) for s in shares}
    for subset in itertools.combinations(parts, t):
        combined = threshold.combine({i: parts[i] for i in subset}, t, n)
        assert bls.verify(committee.group_public_key, message, combined)
    if t == 1:
        # With t = 1 the polynomial is constant: every member holds the group secret itself.
        assert {s.public_key for s in shares} == {committee.group_public_key}


# --- Lagrange coefficients --------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(indices=_subset_strategy(threshold.MAX_COMMITTEE_SIZE, 2, 12))
def test_lagrange_coefficients_interpolate_low_degree_polynomials(indices: list[int]) -> None:
    lambdas = threshold.lagrange_coefficients_at_zero(indices)
    # Interpolating f(x) = 1 at 0 gives 1, and f(x) = x gives 0, for any set of >= 2 points.
    assert sum(lambdas) % R == 1
    assert sum(lam * x for lam, x in zip(lambdas, indices, strict=True)) % R == 0


def test_lagrange_coefficients_refuse_duplicates_and_zero() -> None:
    with pytest.raises(DuplicatePartial):
        threshold.lagrange_coefficients_at_zero([1, 2, 2])
    for bad in ([0, 1, 2], [1, R], [1, -3]):
        with pytest.raises(InvalidMemberIndex):
            threshold.lagrange_coefficients_at_zero(bad)
