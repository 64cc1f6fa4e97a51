"""An independent implementation of the encrypted-bid scheme (docs/encryption.md) on py_ecc.

Written from the document, not from committee/encryption.py: py_ecc for the curve, the pairing,
hash-to-curve and point compression; cryptography's HKDF for the DEM key; pycryptodome's
ChaCha20-Poly1305 for the payload. Slow (a pairing is about a second): tests use a few cases.
"""

from __future__ import annotations

import hashlib

from Crypto.Cipher import ChaCha20_Poly1305
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from py_ecc.bls.hash_to_curve import hash_to_G2
from py_ecc.bls.point_compression import compress_G1, decompress_G1, decompress_G2
from py_ecc.optimized_bls12_381 import FQ12, G1, curve_order, eq, field_modulus, multiply, pairing

ID_TAG = b"blockspace/ibe-identity/v1\x00"
DST = b"BLOCKSPACE-IBE-V01-CS01-with-BLS12381G2_XMD:SHA-256_SSWU_RO_"
MASK_TAG = b"blockspace/ibe-gt-mask/v1\x00"
FO_TAG = b"blockspace/ibe-fo-r/v1\x00"
DEM_SALT = b"blockspace/ibe-dem-key/v1"
AAD_TAG = b"blockspace/ibe-aead/v1\x00"


def identity(committee_id: bytes, slot: int) -> bytes:
    return ID_TAG + committee_id + slot.to_bytes(8, "big")


def identity_point(committee_id: bytes, slot: int):
    return hash_to_G2(identity(committee_id, slot), DST, hashlib.sha256)


def gt_bytes(g2_point, g1_point) -> bytes:
    """The scheme's e(g1_point, g2_point), encoded as docs/encryption.md says.

    The scheme's pairing is py_ecc's raised to -3 (blst, arkworks and mcl fold a factor 3 into
    the hard part of the final exponentiation and use the other sign of the Miller loop). py_ecc
    writes GT as a polynomial in w with w^12 = 2 w^6 - 2; the encoding uses the tower
    Fq2 = Fq[u]/(u^2 + 1), Fq6 = Fq2[v]/(v^3 - (u + 1)), Fq12 = Fq6[w]/(w^2 - v), so v = w^2
    and u = w^6 - 1, and coefficient c_{i,j} (of w^i v^j, an Fq2 element x + y u) is read from
    the polynomial as x = p[k] + p[k+6], y = p[k+6] with k = 2j + i.
    """
    f = pairing(g2_point, g1_point)
    g = (f * f * f).inv()
    p = [int(c) % field_modulus for c in g.coeffs]
    out = b""
    for i in range(2):
        for j in range(3):
            k = 2 * j + i
            x, y = (p[k] + p[k + 6]) % field_modulus, p[k + 6]
            out += x.to_bytes(48, "little") + y.to_bytes(48, "little")
    assert isinstance(g, FQ12)
    return out


def fo_scalar(ident: bytes, sigma: bytes) -> int:
    digest = hashlib.sha512(FO_TAG + ident + sigma).digest()
    return int.from_bytes(digest, "big") % (curve_order - 1) + 1


def dem_key(ident: bytes, encapsulation: bytes, sigma: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=DEM_SALT, info=ident + encapsulation)
    return hkdf.derive(sigma)


def g1_bytes(point) -> bytes:
    return compress_G1(point).to_bytes(48, "big")


def encrypt(
    group_public_key: bytes,
    committee_id: bytes,
    slot: int,
    payload: bytes,
    public_fields: bytes,
    sigma: bytes,
    nonce: bytes,
) -> bytes:
    ident = identity(committee_id, slot)
    p = decompress_G1(int.from_bytes(group_public_key, "big"))
    r = fo_scalar(ident, sigma)
    c1 = g1_bytes(multiply(G1, r))
    mask = hashlib.sha256(MASK_TAG + gt_bytes(identity_point(committee_id, slot), multiply(p, r)))
    encapsulation = c1 + bytes(a ^ b for a, b in zip(sigma, mask.digest(), strict=True))
    header = (
        b"\x01"
        + committee_id
        + slot.to_bytes(8, "big")
        + encapsulation
        + nonce
        + len(public_fields).to_bytes(2, "big")
        + public_fields
    )
    cipher = ChaCha20_Poly1305.new(key=dem_key(ident, encapsulation, sigma), nonce=nonce)
    cipher.update(AAD_TAG + header)
    body, tag = cipher.encrypt_and_digest(payload)
    return header + body + tag


def slot_key(group_secret: int, committee_id: bytes, slot: int) -> bytes:
    """s * Q compressed (py_ecc's G2 compression: two 48-byte big-endian halves)."""
    from py_ecc.bls.point_compression import compress_G2

    z1, z2 = compress_G2(multiply(identity_point(committee_id, slot), group_secret))
    return z1.to_bytes(48, "big") + z2.to_bytes(48, "big")


def decrypt(key: bytes, ciphertext: bytes) -> tuple[bytes, bytes]:
    """Return (public fields, payload); raise ValueError if anything fails."""
    if ciphertext[0] != 1:
        raise ValueError("version")
    committee_id, slot = ciphertext[1:33], int.from_bytes(ciphertext[33:41], "big")
    c1_bytes, v = ciphertext[41:89], ciphertext[89:121]
    nonce = ciphertext[121:133]
    length = int.from_bytes(ciphertext[133:135], "big")
    header = ciphertext[: 135 + length]
    body, tag = ciphertext[135 + length : -16], ciphertext[-16:]
    ident = identity(committee_id, slot)
    k = decompress_G2((int.from_bytes(key[:48], "big"), int.from_bytes(key[48:], "big")))
    c1 = decompress_G1(int.from_bytes(c1_bytes, "big"))
    mask = hashlib.sha256(MASK_TAG + gt_bytes(k, c1)).digest()
    sigma = bytes(a ^ b for a, b in zip(v, mask, strict=True))
    if not eq(multiply(G1, fo_scalar(ident, sigma)), c1):
        raise ValueError("FO check")
    cipher = ChaCha20_Poly1305.new(key=dem_key(ident, c1_bytes + v, sigma), nonce=nonce)
    cipher.update(AAD_TAG + header)
    return ciphertext[135 : 135 + length], cipher.decrypt_and_verify(body, tag)
