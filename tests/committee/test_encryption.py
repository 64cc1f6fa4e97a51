"""The encrypted-bid scheme (committee.encryption) against a py_ecc implementation, golden vectors,
round trips, tampering, bounds and threshold key release."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from py_arkworks_bls12381 import G1Point

from committee import bls, encryption, signing, threshold
from committee.encryption_errors import (
    CiphertextError,
    CiphertextTooLarge,
    CiphertextTooShort,
    InvalidEncapsulation,
    InvalidKeyShare,
    InvalidSlotKey,
    MalformedCiphertext,
    PayloadAuthFailed,
    UnsupportedCiphertextVersion,
    WrongCommittee,
    WrongSlot,
)
from committee.errors import NotEnoughPartials
from tests.committee import ibe_oracle as oracle
from tests.committee.conftest import Dealt

VECTORS = Path(__file__).parent / "vectors" / "ibe_v1.json"
SLOT = 1234
FIXTURES = HealthCheck.function_scoped_fixture


def _sigma(label: str) -> bytes:
    return hashlib.sha256(b"test-sigma/" + label.encode()).digest()


def _nonce(label: str) -> bytes:
    return hashlib.sha256(b"test-nonce/" + label.encode()).digest()[:12]


@pytest.fixture(scope="module")
def slot_key(dealt: Dealt) -> bytes:
    shares = {s.index: encryption.key_share(s, SLOT) for s in dealt.shares[:7]}
    return encryption.combine_key_shares(dealt.committee, SLOT, shares)


@pytest.fixture(scope="module")
def opener(dealt: Dealt, slot_key: bytes) -> encryption.Opener:
    return encryption.Opener(dealt.committee, SLOT, slot_key)


@pytest.fixture(scope="module")
def sealed(dealt: Dealt) -> list[bytes]:
    """Three bids under one encapsulation and one under its own."""
    c = dealt.committee
    to = encryption.recipient(c.group_public_key, c.committee_id, SLOT)
    shared = encryption.encapsulate(to, _sigma("shared"))
    bids = [
        encryption.seal(shared, b"bundle %d" % i, b'{"i":%d}' % i, _nonce(str(i))) for i in range(3)
    ]
    own = encryption.encrypt(
        c.group_public_key,
        c.committee_id,
        SLOT,
        b"alone",
        b"",
        sigma=_sigma("own"),
        nonce=_nonce("own"),
    )
    return [*bids, own]


# --- independent implementation -----------------------------------------------------------------


def test_slot_key_is_the_group_secret_times_the_identity_point(dealt: Dealt, slot_key: bytes):
    """py_ecc hashes the identity and multiplies by the group secret: same bytes as combining."""
    c = dealt.committee
    assert oracle.slot_key(dealt.group_secret, c.committee_id, SLOT) == slot_key


def test_py_ecc_encrypts_and_we_open(dealt: Dealt, opener: encryption.Opener):
    c = dealt.committee
    ct = oracle.encrypt(
        c.group_public_key, c.committee_id, SLOT, b"from py_ecc", b"pub", _sigma("o1"), _nonce("o1")
    )
    opened = opener.open(ct)
    assert (opened.public_fields, opened.payload) == (b"pub", b"from py_ecc")


def test_we_encrypt_and_py_ecc_opens(dealt: Dealt, slot_key: bytes):
    c = dealt.committee
    ct = encryption.encrypt(
        c.group_public_key,
        c.committee_id,
        SLOT,
        b"from us",
        b"",
        sigma=_sigma("o2"),
        nonce=_nonce("o2"),
    )
    assert oracle.decrypt(slot_key, ct) == (b"", b"from us")


@pytest.mark.slow
@pytest.mark.parametrize("case", range(3))
def test_both_implementations_agree_byte_for_byte(dealt: Dealt, case: int):
    """Same sigma and nonce give the same ciphertext; each opens the other's."""
    c = dealt.committee
    rng = random.Random(case)
    slot = rng.randrange(2**64)
    payload, public = rng.randbytes(rng.randrange(1, 2000)), rng.randbytes(rng.randrange(0, 100))
    sigma, nonce = rng.randbytes(32), rng.randbytes(12)
    ours = encryption.encrypt(
        c.group_public_key, c.committee_id, slot, payload, public, sigma=sigma, nonce=nonce
    )
    theirs = oracle.encrypt(c.group_public_key, c.committee_id, slot, payload, public, sigma, nonce)
    assert ours == theirs
    key = oracle.slot_key(dealt.group_secret, c.committee_id, slot)
    assert encryption.Opener(c, slot, key).open(theirs).payload == payload
    assert oracle.decrypt(key, ours) == (public, payload)


def test_golden_vectors(dealt: Dealt):
    """Fixed seeds give fixed bytes: the format cannot drift unnoticed."""
    vectors = json.loads(VECTORS.read_text())
    c = dealt.committee
    assert bytes.fromhex(vectors["committee_id"]) == c.committee_id
    assert bytes.fromhex(vectors["group_public_key"]) == c.group_public_key
    for case in vectors["cases"]:
        slot, payload = case["slot"], bytes.fromhex(case["payload"])
        public = bytes.fromhex(case["public_fields"])
        assert encryption.identity_message(c.committee_id, slot).hex() == case["identity"]
        ct = encryption.encrypt(
            c.group_public_key,
            c.committee_id,
            slot,
            payload,
            public,
            sigma=bytes.fromhex(case["sigma"]),
            nonce=bytes.fromhex(case["nonce"]),
        )
        assert ct.hex() == case["ciphertext"]
        key = bytes.fromhex(case["slot_key"])
        shares = {s.index: encryption.key_share(s, slot) for s in dealt.shares[3:10]}
        assert encryption.combine_key_shares(c, slot, shares) == key
        opened = encryption.Opener(c, slot, key).open(ct)
        assert (opened.public_fields, opened.payload) == (public, payload)


@pytest.mark.slow
def test_golden_vectors_open_with_py_ecc():
    vectors = json.loads(VECTORS.read_text())
    for case in vectors["cases"]:
        got = oracle.decrypt(bytes.fromhex(case["slot_key"]), bytes.fromhex(case["ciphertext"]))
        assert got == (bytes.fromhex(case["public_fields"]), bytes.fromhex(case["payload"]))


# --- round trips and tampering ------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[FIXTURES])
@given(
    payload=st.binary(min_size=1, max_size=3000),
    public=st.binary(max_size=encryption.MAX_PUBLIC_BYTES),
    sigma=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=12, max_size=12),
)
def test_round_trip(dealt: Dealt, opener: encryption.Opener, payload, public, sigma, nonce):
    c = dealt.committee
    ct = encryption.encrypt(
        c.group_public_key, c.committee_id, SLOT, payload, public, sigma=sigma, nonce=nonce
    )
    opened = opener.open(ct)
    assert (opened.public_fields, opened.payload) == (public, payload)


@settings(max_examples=200, deadline=None, suppress_health_check=[FIXTURES])
@given(data=st.data())
def test_any_flipped_byte_is_refused(dealt: Dealt, slot_key: bytes, sealed: list[bytes], data):
    """Every byte is covered: the header by the AEAD's associated data, C1 by the FO check (or
    decoding), V through sigma and the DEM key, the body and tag by the AEAD."""
    ct = bytearray(data.draw(st.sampled_from(sealed)))
    position = data.draw(st.integers(0, len(ct) - 1))
    ct[position] ^= data.draw(st.integers(1, 255))
    # A fresh opener each time: a cached decapsulation must not hide a fault.
    with pytest.raises(CiphertextError):
        encryption.Opener(dealt.committee, SLOT, slot_key).open(bytes(ct))


def test_shared_encapsulation_costs_one_decapsulation(dealt: Dealt, slot_key: bytes, sealed):
    opener = encryption.Opener(dealt.committee, SLOT, slot_key)
    assert [opener.open(ct).payload for ct in sealed] == [
        b"bundle 0",
        b"bundle 1",
        b"bundle 2",
        b"alone",
    ]
    assert opener.decapsulations == 2


def test_each_region_gives_its_own_code(dealt: Dealt, opener, sealed):
    ct = sealed[0]
    cases = {
        0: UnsupportedCiphertextVersion,
        5: WrongCommittee,
        40: WrongSlot,
        60: InvalidEncapsulation,  # inside C1
        100: InvalidEncapsulation,  # inside V: another sigma, C1 no longer matches
        125: PayloadAuthFailed,  # nonce
        len(ct) - 1: PayloadAuthFailed,  # tag
    }
    for position, error in cases.items():
        bad = bytearray(ct)
        bad[position] ^= 0x01
        with pytest.raises(error):
            opener.open(bytes(bad))


def test_moving_a_bid_to_another_encapsulation_fails(dealt: Dealt, opener, sealed):
    """Swap the encapsulation of bid 0 for the other one's: the AEAD key no longer fits."""
    spliced = sealed[0][:41] + sealed[3][41:121] + sealed[0][121:]
    with pytest.raises(PayloadAuthFailed):
        opener.open(spliced)


def test_garbage_short_and_oversized(opener):
    with pytest.raises(CiphertextTooShort):
        opener.open(b"")
    with pytest.raises(CiphertextTooShort):
        opener.open(b"\x01" + bytes(100))
    with pytest.raises(UnsupportedCiphertextVersion):
        opener.open(b"\x02" + bytes(200))
    with pytest.raises(CiphertextTooLarge):
        opener.open(b"\x01" + bytes(encryption.MAX_CIPHERTEXT_LENGTH))
    with pytest.raises(MalformedCiphertext):
        opener.open("01" * 200)  # type: ignore[arg-type]
    # Declared public fields longer than the bound, and longer than the ciphertext.
    header = bytearray(b"\x01" + bytes(200))
    header[133:135] = (encryption.MAX_PUBLIC_BYTES + 1).to_bytes(2, "big")
    with pytest.raises(CiphertextTooLarge):
        opener.open(bytes(header))
    header[133:135] = (60).to_bytes(2, "big")
    with pytest.raises(CiphertextTooShort):
        opener.open(bytes(header))


def test_encrypt_refuses_out_of_bounds_input(dealt: Dealt):
    c = dealt.committee
    to = encryption.recipient(c.group_public_key, c.committee_id, SLOT)
    enc = encryption.encapsulate(to, _sigma("bounds"))
    with pytest.raises(CiphertextTooLarge):
        encryption.seal(enc, b"x" * (encryption.MAX_PAYLOAD_BYTES + 1), b"", _nonce("a"))
    with pytest.raises(ValueError):
        encryption.seal(enc, b"", b"", _nonce("a"))
    with pytest.raises(CiphertextTooLarge):
        encryption.seal(enc, b"x", b"p" * (encryption.MAX_PUBLIC_BYTES + 1), _nonce("a"))
    with pytest.raises(ValueError):
        encryption.seal(enc, b"x", b"", b"short")
    with pytest.raises(ValueError):
        encryption.encapsulate(to, b"short sigma")


def test_largest_payload_opens(dealt: Dealt, opener):
    c = dealt.committee
    payload = b"p" * encryption.MAX_PAYLOAD_BYTES
    public = b"q" * encryption.MAX_PUBLIC_BYTES
    ct = encryption.encrypt(
        c.group_public_key,
        c.committee_id,
        SLOT,
        payload,
        public,
        sigma=_sigma("max"),
        nonce=_nonce("max"),
    )
    assert len(ct) == encryption.MAX_CIPHERTEXT_LENGTH
    assert opener.open(ct).payload == payload


def _c1_outside_the_subgroup() -> bytes:
    """An on-curve G1 point (compressed) that is not in the order-r subgroup."""
    for x in itertools.count(1):
        data = bytearray(x.to_bytes(48, "big"))
        data[0] |= 0x80
        try:
            G1Point.from_compressed_bytes_unchecked(bytes(data))
        except ValueError:
            continue
        try:
            G1Point.from_compressed_bytes(bytes(data))
        except ValueError:
            return bytes(data)
    raise AssertionError("unreachable")


def test_c1_checks(opener, sealed):
    """C1 off the subgroup, the identity, or not compressed: refused before any pairing."""
    for c1 in (_c1_outside_the_subgroup(), b"\xc0" + bytes(47), b"\x00" * 48, b"\x9f" * 48):
        bad = sealed[0][:41] + c1 + sealed[0][89:]
        with pytest.raises(InvalidEncapsulation):
            opener.open(bad)


def test_c1_of_a_valid_point_with_another_sigma_fails_the_fo_check(dealt: Dealt, opener, sealed):
    """A valid point C1 = r' * G1 whose r' is not H_r(sigma): the FO check refuses it."""
    other = bls.encode_g1(bls.g1_generator() * bls.field_element(12345))
    bad = sealed[0][:41] + other + sealed[0][89:]
    with pytest.raises(InvalidEncapsulation, match="re-encryption"):
        opener.open(bad)


def test_other_slot_and_committee_refused(dealt: Dealt, slot_key, sealed):
    c = dealt.committee
    other_slot = encryption.Opener(
        c,
        SLOT + 1,
        encryption.combine_key_shares(
            c, SLOT + 1, {s.index: encryption.key_share(s, SLOT + 1) for s in dealt.shares[:7]}
        ),
    )
    with pytest.raises(WrongSlot):
        other_slot.open(sealed[0])
    other_committee, other_shares = threshold.deal(4, 3, bytes(range(1, 33)))
    key = encryption.combine_key_shares(
        other_committee, SLOT, {s.index: encryption.key_share(s, SLOT) for s in other_shares[:3]}
    )
    with pytest.raises(WrongCommittee):
        encryption.Opener(other_committee, SLOT, key).open(sealed[0])


# --- keys -----------------------------------------------------------------------------------------


def test_any_t_of_n_shares_give_the_key(dealt: Dealt, slot_key: bytes):
    c = dealt.committee
    all_shares = {s.index: encryption.key_share(s, SLOT) for s in dealt.shares}
    subsets = list(itertools.combinations(range(1, 11), 7))
    for subset in random.Random(14).sample(subsets, 6):
        got = encryption.combine_key_shares(c, SLOT, {i: all_shares[i] for i in subset})
        assert got == slot_key
    # The key is a BLS signature on the identity under the IBE tag, by the group key.
    assert encryption.verify_slot_key(c, SLOT, slot_key)
    ident = encryption.identity_message(c.committee_id, SLOT)
    assert not bls.verify(c.group_public_key, ident, slot_key)  # not under block signing's tag


def test_fewer_than_t_shares_do_not_give_it(dealt: Dealt, slot_key: bytes):
    c = dealt.committee
    six = {s.index: encryption.key_share(s, SLOT) for s in dealt.shares[:6]}
    with pytest.raises(NotEnoughPartials):
        encryption.combine_key_shares(c, SLOT, six)
    # Interpolating six points as if the polynomial had degree 5 gives some other point.
    forced = threshold.combine(six, 6, c.n)
    assert forced != slot_key
    assert not encryption.verify_slot_key(c, SLOT, forced)
    with pytest.raises(InvalidSlotKey):
        encryption.Opener(c, SLOT, forced)


def test_a_bad_share_is_detected_and_named(dealt: Dealt):
    c = dealt.committee
    shares = {s.index: encryption.key_share(s, SLOT) for s in dealt.shares[:7]}
    assert all(encryption.verify_key_share(c, i, SLOT, b) for i, b in shares.items())
    bad = dict(shares)
    bad[4] = encryption.key_share(dealt.shares[3], SLOT + 1)  # member 4's share of another slot
    assert not encryption.verify_key_share(c, 4, SLOT, bad[4])
    with pytest.raises(InvalidKeyShare) as caught:
        encryption.combine_key_shares(c, SLOT, bad)
    assert caught.value.data["indices"] == [4]
    bad[4] = shares[5]  # another member's share
    with pytest.raises(InvalidKeyShare):
        encryption.combine_key_shares(c, SLOT, bad)
    bad[4] = b"\x00" * 96
    assert not encryption.verify_key_share(c, 4, SLOT, bad[4])
    with pytest.raises(InvalidKeyShare) as caught:
        encryption.combine_key_shares(c, SLOT, bad)
    assert caught.value.data["indices"] == [4]
    # Two bad ones are both named; without them the other shares still give the key.
    bad[6] = shares[7]
    with pytest.raises(InvalidKeyShare) as caught:
        encryption.combine_key_shares(c, SLOT, bad)
    assert caught.value.data["indices"] == [4, 6]
    rest = {s.index: encryption.key_share(s, SLOT) for s in dealt.shares if s.index not in (4, 6)}
    assert encryption.verify_slot_key(c, SLOT, encryption.combine_key_shares(c, SLOT, rest))


def test_key_shares_are_not_block_signatures(dealt: Dealt):
    """Domain separation: the identity is hashed under its own tag, and a block signing root is
    32 bytes while an identity is 67, so neither message nor curve point can coincide."""
    c = dealt.committee
    assert encryption.IBE_DST != bls.DST
    ident = encryption.identity_message(c.committee_id, SLOT)
    assert len(ident) == 67 and not ident.startswith(signing.SLOT_SIGNING_ROOT_TAG)
    share = encryption.key_share(dealt.shares[0], SLOT)
    member_key = c.member_public_key(1)
    assert not threshold.verify_partial(member_key, ident, share)
    block_partial = threshold.partial_sign(dealt.shares[0], ident)
    assert not encryption.verify_key_share(c, 1, SLOT, block_partial)


def test_fo_scalar_is_never_zero_or_out_of_range():
    for i in range(200):
        r = encryption.fo_scalar(b"id", i.to_bytes(32, "big"))
        assert 1 <= r < bls.CURVE_ORDER
