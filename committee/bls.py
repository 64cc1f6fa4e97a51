"""Checked BLS12-381 primitives for the Ethereum proof-of-possession ciphersuite.

A thin layer over ``py_arkworks_bls12381`` that adds the checks the library leaves out, so that
everything above it (threshold signing, key files) can trust the values it is handed:

- ``Scalar(int)`` silently reduces modulo r (``Scalar(r) == 0``, ``Scalar(r + 1) == 1``), so every
  integer is range-checked here *before* it becomes a ``Scalar``; secrets must be in ``1..r-1``.
- ``from_compressed_bytes`` accepts *any* 48/96-byte string with the infinity flag set as the
  identity (``0xff`` * 48 decodes), so decoding rejects the infinity flag and then requires the
  bytes to re-encode to themselves: one point, one encoding.
- ``multiexp_unchecked`` silently truncates to the shorter of its two lists; the wrappers here
  insist on equal lengths.

Ciphersuite ``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`` (IETF draft-irtf-cfrg-bls-signature,
as used by Ethereum consensus): public keys are 48-byte compressed G1 points, signatures 96-byte
compressed G2 points, messages are hashed to G2 with RFC 9380 using the ciphersuite id as DST.
``sign`` and ``verify`` are byte-compatible with py_ecc's ``G2ProofOfPossession`` and blst.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from py_arkworks_bls12381 import GT, G1Point, G2Point, Scalar

from committee.errors import InvalidPoint, InvalidScalar

CIPHERSUITE: Final[str] = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
DST: Final[bytes] = CIPHERSUITE.encode("ascii")

# Order r of G1, G2 and GT; scalars (secret keys, shares, coefficients) live in Z/rZ.
CURVE_ORDER: Final[int] = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001

SECRET_KEY_LENGTH: Final[int] = 32
PUBLIC_KEY_LENGTH: Final[int] = 48
SIGNATURE_LENGTH: Final[int] = 96

# Flag bits in the first byte of a ZCash-format compressed point.
_FLAG_COMPRESSED: Final[int] = 0x80
_FLAG_INFINITY: Final[int] = 0x40

_G1_GENERATOR: Final[G1Point] = G1Point()
_NEG_G1_GENERATOR: Final[G1Point] = -G1Point()


# --- scalars ----------------------------------------------------------------------------------


def field_element(value: int) -> Scalar:
    """Return ``value`` as a field element, rejecting anything outside ``0..r-1``."""
    # Check the type first: bool is an int and Scalar would happily take True as 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"field element must be an int, got {type(value).__name__}")
    # Verify the range ourselves: Scalar() reduces modulo r without a word.
    if not 0 <= value < CURVE_ORDER:
        raise InvalidScalar("field element out of range 0..r-1", bit_length=value.bit_length())
    return Scalar(value)


def check_secret(secret: int) -> int:
    """Return ``secret`` unchanged if it is a usable secret key or share (``1..r-1``), else raise.

    Zero is rejected because its public key is the identity, which every verifier refuses.
    """
    if isinstance(secret, bool) or not isinstance(secret, int):
        raise TypeError(f"secret must be an int, got {type(secret).__name__}")
    if secret == 0:
        raise InvalidScalar("secret is zero")
    if not 0 < secret < CURVE_ORDER:
        # Report only the size: the value itself is secret material.
        raise InvalidScalar("secret out of range 1..r-1", bit_length=secret.bit_length())
    return secret


def secret_scalar(secret: int) -> Scalar:
    """Return a range-checked secret (``1..r-1``) as a ``Scalar``."""
    return Scalar(check_secret(secret))


def secret_to_bytes(secret: int) -> bytes:
    """Encode a secret as 32 big-endian bytes (the EIP-2333 / consensus-spec form)."""
    return check_secret(secret).to_bytes(SECRET_KEY_LENGTH, "big")


def secret_from_bytes(data: bytes) -> int:
    """Decode 32 big-endian bytes into a secret, rejecting 0 and values >= r."""
    if len(data) != SECRET_KEY_LENGTH:
        raise InvalidScalar(f"secret must be {SECRET_KEY_LENGTH} bytes", length=len(data))
    return check_secret(int.from_bytes(data, "big"))


# --- points -----------------------------------------------------------------------------------


def _check_encoding_shape(data: bytes, length: int, what: str) -> None:
    """Reject wrong lengths and the flag combinations the library would mis-handle."""
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"{what} must be bytes, got {type(data).__name__}")
    # Verify the length before the library sees it, for a message that names the field.
    if len(data) != length:
        raise InvalidPoint(f"{what} must be {length} bytes", what=what, length=len(data))
    # Verify the compression flag: we only ever exchange compressed points.
    if not data[0] & _FLAG_COMPRESSED:
        raise InvalidPoint(f"{what} is not a compressed point", what=what)
    # Verify it is not the identity: the library maps every infinity-flagged string to it, and
    # no public key, signature, partial or commitment of ours may be the identity.
    if data[0] & _FLAG_INFINITY:
        raise InvalidPoint(f"{what} is the point at infinity", what=what)


def decode_g1(data: bytes, *, what: str = "public key") -> G1Point:
    """Decode a canonical, on-curve, in-subgroup, non-identity 48-byte compressed G1 point."""
    _check_encoding_shape(data, PUBLIC_KEY_LENGTH, what)
    raw = bytes(data)
    try:
        point = G1Point.from_compressed_bytes(raw)
    except ValueError:
        # Decode again without the subgroup check only to say which check failed.
        try:
            G1Point.from_compressed_bytes_unchecked(raw)
        except ValueError:
            raise InvalidPoint(f"{what} is not a point on G1", what=what) from None
        raise InvalidPoint(f"{what} is not in the G1 subgroup", what=what) from None
    # Verify one point, one encoding, so bytes can serve as identifiers and hash inputs.
    if point.to_compressed_bytes() != raw:
        raise InvalidPoint(f"{what} is not canonically encoded", what=what)
    return point


def decode_g2(data: bytes, *, what: str = "signature") -> G2Point:
    """Decode a canonical, on-curve, in-subgroup, non-identity 96-byte compressed G2 point."""
    _check_encoding_shape(data, SIGNATURE_LENGTH, what)
    raw = bytes(data)
    try:
        point = G2Point.from_compressed_bytes(raw)
    except ValueError:
        try:
            G2Point.from_compressed_bytes_unchecked(raw)
        except ValueError:
            raise InvalidPoint(f"{what} is not a point on G2", what=what) from None
        raise InvalidPoint(f"{what} is not in the G2 subgroup", what=what) from None
    if point.to_compressed_bytes() != raw:
        raise InvalidPoint(f"{what} is not canonically encoded", what=what)
    return point


def encode_g1(point: G1Point) -> bytes:
    """Encode a G1 point as 48 compressed bytes."""
    return bytes(point.to_compressed_bytes())


def encode_g2(point: G2Point) -> bytes:
    """Encode a G2 point as 96 compressed bytes."""
    return bytes(point.to_compressed_bytes())


def multiexp_g1(points: Sequence[G1Point], scalars: Sequence[Scalar]) -> G1Point:
    """Return sum(points[i] * scalars[i]); the lists must have the same length."""
    # Verify the lengths: the library truncates to the shorter list instead of failing.
    if len(points) != len(scalars):
        raise ValueError(f"multiexp needs equal lengths, got {len(points)} and {len(scalars)}")
    return G1Point.multiexp_unchecked(list(points), list(scalars))


def multiexp_g2(points: Sequence[G2Point], scalars: Sequence[Scalar]) -> G2Point:
    """Return sum(points[i] * scalars[i]); the lists must have the same length."""
    if len(points) != len(scalars):
        raise ValueError(f"multiexp needs equal lengths, got {len(points)} and {len(scalars)}")
    return G2Point.multiexp_unchecked(list(points), list(scalars))


def g1_generator() -> G1Point:
    """Return the standard G1 generator (the base of every public key)."""
    return _G1_GENERATOR


# --- signatures -------------------------------------------------------------------------------


def hash_to_g2(message: bytes, dst: bytes = DST) -> G2Point:
    """Hash ``message`` to G2 (RFC 9380 ``BLS12381G2_XMD:SHA-256_SSWU_RO_``) under ``dst``."""
    # RFC 9380 section 5.3.3 wants longer tags pre-hashed; we never need one, so refuse them
    # rather than trust an unspecified library behaviour.
    if not 0 < len(dst) <= 255:
        raise ValueError(f"DST must be 1..255 bytes, got {len(dst)}")
    return G2Point.hash_to_curve(bytes(message), bytes(dst))


def secret_to_public_key(secret: int) -> bytes:
    """Return the 48-byte public key of a secret (IETF ``SkToPk``)."""
    return encode_g1(_G1_GENERATOR * secret_scalar(secret))


def sign_point(secret: int, message: bytes) -> G2Point:
    """Sign ``message`` with ``secret`` and return the signature as a point."""
    return hash_to_g2(message) * secret_scalar(secret)


def sign(secret: int, message: bytes) -> bytes:
    """Sign ``message`` with ``secret`` (IETF ``Sign``); return the 96-byte signature."""
    return encode_g2(sign_point(secret, message))


def verify_points(public_key: G1Point, message: bytes, signature: G2Point) -> bool:
    """Check e(pk, H(m)) == e(g1, sig) for already-decoded points."""
    # One multi-pairing with a negated generator: e(pk, H(m)) * e(-g1, sig) == 1.
    return bool(GT.pairing_check([public_key, _NEG_G1_GENERATOR], [hash_to_g2(message), signature]))


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` is a valid signature of ``message`` under ``public_key``.

    Like IETF ``Verify``, malformed keys or signatures (wrong length, off-curve, outside the
    subgroup, identity, non-canonical) give ``False`` rather than an exception; call
    ``decode_g1`` / ``decode_g2`` first when the reason matters.
    """
    try:
        pk = decode_g1(public_key, what="public key")
        sig = decode_g2(signature, what="signature")
    except InvalidPoint:
        return False
    return verify_points(pk, message, sig)


def is_valid_public_key(public_key: bytes) -> bool:
    """Return whether ``public_key`` passes IETF ``KeyValidate`` (and is canonically encoded)."""
    try:
        decode_g1(public_key)
    except InvalidPoint:
        return False
    return True
