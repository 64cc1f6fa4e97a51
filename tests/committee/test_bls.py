"""Checked BLS primitives against consensus-spec vectors and py_ecc as an independent oracle."""

from __future__ import annotations

from typing import Any

import pytest
from eth_typing import BLSPubkey, BLSSignature
from hypothesis import given, settings
from hypothesis import strategies as st
from py_arkworks_bls12381 import G1Point, G2Point, Scalar
from py_ecc.bls import G2ProofOfPossession
from py_ecc.bls.g2_primitives import G2_to_signature
from py_ecc.bls.hash_to_curve import hash_to_G2
from py_ecc.bls.point_compression import decompress_G1, decompress_G2
from py_ecc.bls.typing import G1Compressed, G2Compressed
from py_ecc.optimized_bls12_381 import b, b2, curve_order, field_modulus, is_inf, is_on_curve
from py_ecc.optimized_bls12_381 import multiply as ecc_multiply

from committee import bls
from committee.errors import InvalidPoint, InvalidScalar

R = bls.CURVE_ORDER
secrets_st = st.integers(min_value=1, max_value=R - 1)

# Ethereum consensus-spec BLS "sign" vectors (ethereum/bls12-381-tests), as (secret, msg, sig).
CONSENSUS_SIGN_VECTORS = [
    (
        "263dbd792f5b1be47ed85f8938c0f29586af0d3ac7b977f21c278fe1462040e3",
        "00" * 32,
        "b6ed936746e01f8ecf281f020953fbf1f01debd5657c4a383940b020b26507f6076334f91e2366c96e9ab279"
        "fb5158090352ea1c5b0c9274504f4f0e7053af24802e51e4568d164fe986834f41e55c8e850ce1f98458c0cf"
        "c9ab380b55285a55",
    ),
    (
        "47b8192d77bf871b62e87859d653922725724a5c031afeabc60bcef5ff665138",
        "56" * 32,
        "af1390c3c47acdb37131a51216da683c509fce0e954328a59f93aebda7e4ff974ba208d9a4a2a2389f892a9d"
        "418d618418dd7f7a6bc7aa0da999a9d3a5b815bc085e14fd001f6a1948768a3f4afefc8b8240dda329f984cb"
        "345c6363272ba4fe",
    ),
    (
        "328388aff0d4a5b7dc9205abd374e7e98f3cd9f3418edb4eafda5fb16473d216",
        "56" * 32,
        "a4efa926610b8bd1c8330c918b7a5e9bf374e53435ef8b7ec186abf62e1b1f65aeaaeb365677ac1d1172a1f5"
        "b44b4e6d022c252c58486c0a759fbdc7de15a756acc4d343064035667a594b4c2a6f0b0b421975977f297dba"
        "63ee2f63ffe47bb6",
    ),
]
CONSENSUS_PUBKEY = (
    "263dbd792f5b1be47ed85f8938c0f29586af0d3ac7b977f21c278fe1462040e3",
    "a491d1b0ecd9bb917989f0e74f0dea0422eac4a873e5e2644f368dffb9a6e20fd6e10c1b77654d067c0618f6e5a7f79a",
)

# A compressed G2 encoding of a point on the curve but outside the r-order subgroup.
G2_OFF_SUBGROUP = bytes.fromhex(
    "83f1726423e4e765047a2366ad0ce5642c68811a5c14457b0bcd60a2866883662879ef0f7dc9cb307db13d110d2d"
    "13fc0a81713531eccc70a5b38c29f942241c95c10d570943c9995d98750da08c351ac8490f0016bb18917f4cb926"
    "b3d75f89"
)


# py_ecc's stub types the hash as an instance; the ciphersuite itself passes hashlib.sha256.
_XMD: Any = G2ProofOfPossession.xmd_hash_function


def _py_ecc_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    return G2ProofOfPossession.Verify(BLSPubkey(public_key), message, BLSSignature(signature))


def _compressed_g1_with_x(x: int) -> bytes:
    encoded = bytearray(x.to_bytes(48, "big"))
    encoded[0] |= 0x80
    return bytes(encoded)


def _is_square_mod_p(value: int) -> bool:
    return pow(value % field_modulus, (field_modulus - 1) // 2, field_modulus) == 1


# --- interoperability -------------------------------------------------------------------------


def test_ciphersuite_is_the_ethereum_pop_suite() -> None:
    assert bls.DST == G2ProofOfPossession.DST == b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
    assert curve_order == R


@pytest.mark.parametrize(("secret_hex", "message_hex", "signature_hex"), CONSENSUS_SIGN_VECTORS)
def test_sign_matches_consensus_spec_vectors(
    secret_hex: str, message_hex: str, signature_hex: str
) -> None:
    secret = bls.secret_from_bytes(bytes.fromhex(secret_hex))
    signature = bls.sign(secret, bytes.fromhex(message_hex))
    assert signature.hex() == signature_hex
    assert bls.verify(bls.secret_to_public_key(secret), bytes.fromhex(message_hex), signature)


def test_public_key_matches_consensus_spec_vector() -> None:
    secret_hex, public_hex = CONSENSUS_PUBKEY
    secret = bls.secret_from_bytes(bytes.fromhex(secret_hex))
    assert bls.secret_to_public_key(secret).hex() == public_hex


@pytest.mark.parametrize("message", [b"", b"abc", b"\x56" * 32, bytes(range(256))])
def test_hash_to_g2_matches_py_ecc(message: bytes) -> None:
    expected = G2_to_signature(hash_to_G2(message, bls.DST, _XMD))
    assert bls.encode_g2(bls.hash_to_g2(message)) == expected


def test_hash_to_g2_uses_the_dst_it_is_given() -> None:
    other = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_"
    ours = bls.hash_to_g2(b"abc", other)
    assert ours != bls.hash_to_g2(b"abc")
    # Same point as py_ecc for the other tag too: the tag is really used, not hard-wired.
    theirs = hash_to_G2(b"abc", other, _XMD)
    assert bls.encode_g2(ours) == G2_to_signature(theirs)


@pytest.mark.parametrize("dst", [b"", b"x" * 256])
def test_hash_to_g2_rejects_dst_outside_rfc_limits(dst: bytes) -> None:
    with pytest.raises(ValueError, match="DST"):
        bls.hash_to_g2(b"abc", dst)


def test_our_signature_verifies_under_py_ecc() -> None:
    secret = 0x1234_5678_9ABC_DEF0 * 7919 + 17
    message = b"block 42"
    signature = bls.sign(secret, message)
    public_key = bls.secret_to_public_key(secret)
    assert _py_ecc_verify(public_key, message, signature)
    assert not _py_ecc_verify(public_key, b"block 43", signature)


def test_py_ecc_signature_verifies_under_ours() -> None:
    secret = R - 12345
    message = b"rollup header"
    signature = G2ProofOfPossession.Sign(secret, message)
    public_key = G2ProofOfPossession.SkToPk(secret)
    assert bls.verify(public_key, message, signature)
    assert not bls.verify(public_key, message + b"!", signature)
    # Signing is deterministic, so the bytes themselves agree.
    assert bls.sign(secret, message) == signature
    assert bls.secret_to_public_key(secret) == public_key


@settings(max_examples=10, deadline=None)
@given(secret=secrets_st)
def test_public_key_matches_py_ecc(secret: int) -> None:
    assert bls.secret_to_public_key(secret) == G2ProofOfPossession.SkToPk(secret)


# --- sign / verify ----------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(secret=secrets_st, other=secrets_st, message=st.binary(max_size=80))
def test_sign_verify_round_trip_and_rejections(secret: int, other: int, message: bytes) -> None:
    public_key = bls.secret_to_public_key(secret)
    signature = bls.sign(secret, message)
    assert bls.verify(public_key, message, signature)
    assert not bls.verify(public_key, message + b"\x00", signature)
    if other != secret:
        assert not bls.verify(bls.secret_to_public_key(other), message, signature)
        assert not bls.verify(public_key, message, bls.sign(other, message))


@pytest.mark.parametrize("bit", [0, 7, 200, 767])
def test_verify_rejects_flipped_signature_bits(bit: int) -> None:
    public_key = bls.secret_to_public_key(99)
    signature = bytearray(bls.sign(99, b"m"))
    signature[bit // 8] ^= 1 << (bit % 8)
    # A flipped bit may still decode to some point; either way it is never valid.
    assert not bls.verify(public_key, b"m", bytes(signature))


@pytest.mark.parametrize(
    ("public_key", "signature"),
    [
        (b"", "good"),
        (b"\xc0" + bytes(47), "good"),
        ("good", b""),
        ("good", b"\xc0" + bytes(95)),
        ("good", G2_OFF_SUBGROUP),
        (_compressed_g1_with_x(5), "good"),
    ],
)
def test_verify_returns_false_on_malformed_input(
    public_key: bytes | str, signature: bytes | str
) -> None:
    good_pk = bls.secret_to_public_key(5)
    good_sig = bls.sign(5, b"m")
    pk = good_pk if public_key == "good" else public_key
    sig = good_sig if signature == "good" else signature
    assert isinstance(pk, bytes) and isinstance(sig, bytes)
    assert bls.verify(pk, b"m", sig) is False


# --- scalar range checks ----------------------------------------------------------------------


def test_library_reduces_out_of_range_scalars_silently() -> None:
    # The reason check_secret exists; if this starts failing the library changed behaviour.
    assert Scalar(R) == Scalar(0)
    assert Scalar(R + 1) == Scalar(1)


@pytest.mark.parametrize("value", [0, R, R + 1, 2**256, -1, -R + 1])
def test_secrets_out_of_range_are_rejected(value: int) -> None:
    with pytest.raises(InvalidScalar) as excinfo:
        bls.check_secret(value)
    assert excinfo.value.code == "invalid_scalar"
    with pytest.raises(InvalidScalar):
        bls.sign(value, b"m")
    with pytest.raises(InvalidScalar):
        bls.secret_to_public_key(value)


def test_zero_secret_is_named_as_such() -> None:
    with pytest.raises(InvalidScalar, match="zero"):
        bls.check_secret(0)


@pytest.mark.parametrize("value", [1, 2, R - 1])
def test_secrets_in_range_are_accepted(value: int) -> None:
    assert bls.check_secret(value) == value
    assert bls.secret_from_bytes(bls.secret_to_bytes(value)) == value


@pytest.mark.parametrize("value", [R, R + 1, -1])
def test_field_element_rejects_out_of_range(value: int) -> None:
    with pytest.raises(InvalidScalar):
        bls.field_element(value)


def test_field_element_accepts_zero_and_r_minus_one() -> None:
    assert int(bls.field_element(0)) == 0
    assert int(bls.field_element(R - 1)) == R - 1


@pytest.mark.parametrize("value", [True, 1.0, "1"])
def test_scalar_checks_refuse_non_ints(value: object) -> None:
    with pytest.raises(TypeError):
        bls.check_secret(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        bls.field_element(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [bytes(32), R.to_bytes(32, "big"), (R + 1).to_bytes(32, "big"), b"\xff" * 32, bytes(31)],
)
def test_secret_from_bytes_rejects_bad_encodings(data: bytes) -> None:
    with pytest.raises(InvalidScalar):
        bls.secret_from_bytes(data)


# --- point decoding ---------------------------------------------------------------------------


def test_library_accepts_any_infinity_flagged_bytes() -> None:
    # The reason decode_g1/decode_g2 inspect the flags themselves.
    assert G1Point.from_compressed_bytes(b"\xff" * 48) == G1Point.identity()
    assert G2Point.from_compressed_bytes(b"\xe0" + b"\x01" * 95) == G2Point.identity()


@settings(max_examples=20, deadline=None)
@given(secret=secrets_st)
def test_points_round_trip(secret: int) -> None:
    public_key = bls.secret_to_public_key(secret)
    assert bls.encode_g1(bls.decode_g1(public_key)) == public_key
    signature = bls.sign(secret, b"m")
    assert bls.encode_g2(bls.decode_g2(signature)) == signature


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "48 bytes"),
        (bytes(47), "48 bytes"),
        (bytes(49), "48 bytes"),
        (b"\xc0" + bytes(47), "infinity"),
        (b"\xc0" + bytes(46) + b"\x01", "infinity"),
        (b"\xe0" + bytes(47), "infinity"),
        (b"\xff" * 48, "infinity"),
        (bytes(48), "compressed"),
    ],
)
def test_decode_g1_rejects_bad_encodings(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidPoint, match=reason) as excinfo:
        bls.decode_g1(data, what="commitments[2]")
    assert excinfo.value.data["what"] == "commitments[2]"
    assert not bls.is_valid_public_key(data)


def test_decode_g1_rejects_uncompressed_flag_on_a_real_key() -> None:
    public_key = bytearray(bls.secret_to_public_key(3))
    public_key[0] &= 0x7F
    with pytest.raises(InvalidPoint, match="compressed"):
        bls.decode_g1(bytes(public_key))


def test_decode_g1_rejects_x_not_on_curve() -> None:
    x = next(x for x in range(1, 100) if not _is_square_mod_p(x**3 + 4))
    with pytest.raises(InvalidPoint, match="not a point on G1"):
        bls.decode_g1(_compressed_g1_with_x(x))


def test_decode_g1_rejects_point_outside_subgroup() -> None:
    data = _compressed_g1_with_x(5)
    # Independent confirmation with py_ecc: on the curve, but r * P is not the identity.
    point = decompress_G1(G1Compressed(int.from_bytes(data, "big")))
    assert is_on_curve(point, b) and not is_inf(ecc_multiply(point, curve_order))
    with pytest.raises(InvalidPoint, match="subgroup"):
        bls.decode_g1(data)


def test_decode_g1_rejects_x_not_reduced_mod_p() -> None:
    # x = 5 + p fits in 381 bits; a lax decoder would read it as x = 5.
    with pytest.raises(InvalidPoint):
        bls.decode_g1(_compressed_g1_with_x(5 + field_modulus))


def test_decode_g2_rejects_point_outside_subgroup() -> None:
    z1 = int.from_bytes(G2_OFF_SUBGROUP[:48], "big")
    z2 = int.from_bytes(G2_OFF_SUBGROUP[48:], "big")
    point = decompress_G2(G2Compressed((z1, z2)))
    assert is_on_curve(point, b2) and not is_inf(ecc_multiply(point, curve_order))
    with pytest.raises(InvalidPoint, match="subgroup"):
        bls.decode_g2(G2_OFF_SUBGROUP)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes(95), "96 bytes"),
        (bytes(97), "96 bytes"),
        (b"\xc0" + bytes(95), "infinity"),
        (b"\xff" * 96, "infinity"),
        (bytes(96), "compressed"),
        (b"\x80" + b"\xff" * 95, "not a point on G2"),
    ],
)
def test_decode_g2_rejects_bad_encodings(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidPoint, match=reason):
        bls.decode_g2(data)


def test_multiexp_refuses_mismatched_lengths() -> None:
    # The library would silently drop the extra point.
    points = [bls.g1_generator(), bls.g1_generator()]
    with pytest.raises(ValueError, match="equal lengths"):
        bls.multiexp_g1(points, [bls.field_element(1)])
    with pytest.raises(ValueError, match="equal lengths"):
        bls.multiexp_g2([bls.hash_to_g2(b"a")], [])
