"""Identity-based threshold encryption of bids to a slot (issue 14; docs/encryption.md).

Boneh-Franklin with a Fujisaki-Okamoto transform as a KEM, plus ChaCha20-Poly1305 as the DEM.
The committee's group key P = s * G1 is in G1 and its signatures are in G2, so (unlike Shutter)
identities hash to G2 and the slot key is in G2:

    identity  id  = ID_TAG || committee_id (32) || u64be(slot)
    Q             = hash_to_G2(id, IBE_DST)                    (RFC 9380, our own DST)
    slot key  K   = s * Q      = Lagrange combination of the members' key shares s_i * Q
    encapsulate:  sigma (32 random bytes), r = H_r(id, sigma) in 1..r-1,
                  C1 = r * G1,  V = sigma XOR H_T(e(P, Q)^r),  E = C1 || V
    decapsulate:  sigma = V XOR H_T(e(C1, K)); check C1 == H_r(id, sigma) * G1 (FO)
    DEM key       k = HKDF-SHA256(sigma, DEM_SALT, id || E)
    bid           ChaCha20-Poly1305(k, nonce, payload, AAD_TAG || header)

One encapsulation may carry many bids (each with its own nonce): opening costs one pairing per
distinct encapsulation, which is what makes thousands of bids cheap to open (an ``Opener`` caches
decapsulations by their bytes). Pure: randomness (sigma, nonces) comes in as arguments; nothing
here reads clocks, files or sockets.

Library split (docs/decisions.md): py-arkworks-bls12381 decodes, checks (curve, subgroup,
canonical form) and hashes to the curve, as it does for signing; pymcl computes pairings and GT
powers, about 2.4x faster than arkworks here (bench/ibe_libraries.py). Points cross over as affine
coordinates, and both libraries give the same GT bytes (tested).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pymcl
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from py_arkworks_bls12381 import GT, G1Point, G2Point

# The format (constants, parser) is auction.ciphertext's: intake reads it too. Re-exported here.
from auction.ciphertext import ENCAPSULATION_LENGTH as ENCAPSULATION_LENGTH
from auction.ciphertext import FIXED_HEADER_LENGTH as FIXED_HEADER_LENGTH
from auction.ciphertext import MAX_CIPHERTEXT_LENGTH as MAX_CIPHERTEXT_LENGTH
from auction.ciphertext import MAX_PAYLOAD_BYTES as MAX_PAYLOAD_BYTES
from auction.ciphertext import MAX_PUBLIC_BYTES as MAX_PUBLIC_BYTES
from auction.ciphertext import MIN_CIPHERTEXT_LENGTH as MIN_CIPHERTEXT_LENGTH
from auction.ciphertext import NONCE_LENGTH as NONCE_LENGTH
from auction.ciphertext import SIGMA_LENGTH as SIGMA_LENGTH
from auction.ciphertext import TAG_LENGTH as TAG_LENGTH
from auction.ciphertext import VERSION as VERSION
from auction.ciphertext import Ciphertext as Ciphertext
from auction.ciphertext import parse_ciphertext as parse_ciphertext
from committee import bls, threshold
from committee.encryption_errors import (
    CiphertextTooLarge,
    InvalidEncapsulation,
    InvalidKeyShare,
    InvalidSlotKey,
    PayloadAuthFailed,
    WrongCommittee,
    WrongSlot,
)
from committee.errors import InvalidPoint

# Tags: each hash has its own, none is a prefix of another, and none is block signing's.
ID_TAG: Final[bytes] = b"blockspace/ibe-identity/v1\x00"
IBE_DST: Final[bytes] = b"BLOCKSPACE-IBE-V01-CS01-with-BLS12381G2_XMD:SHA-256_SSWU_RO_"
MASK_TAG: Final[bytes] = b"blockspace/ibe-gt-mask/v1\x00"
FO_TAG: Final[bytes] = b"blockspace/ibe-fo-r/v1\x00"
DEM_SALT: Final[bytes] = b"blockspace/ibe-dem-key/v1"
AAD_TAG: Final[bytes] = b"blockspace/ibe-aead/v1\x00"

GT_LENGTH: Final[int] = 576
if ENCAPSULATION_LENGTH != bls.PUBLIC_KEY_LENGTH + SIGMA_LENGTH:  # the format's C1 is a G1 key
    raise ImportError("auction.ciphertext's layout disagrees with the curve's point size")
_MAX_U64: Final[int] = (1 << 64) - 1

_MCL_G1: Final[Any] = pymcl.g1
_NEG_G1: Final[G1Point] = -G1Point()


# --- identities and hashes --------------------------------------------------------------------


def identity_message(committee_id: bytes, slot: int) -> bytes:
    """Return the identity bytes of (committee, slot): ID_TAG || committee_id || u64be(slot)."""
    if not isinstance(committee_id, bytes) or len(committee_id) != threshold.COMMITTEE_ID_LENGTH:
        raise ValueError("committee id must be 32 bytes")
    if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot <= _MAX_U64:
        raise ValueError("slot must be an int in 0..2^64-1")
    return ID_TAG + committee_id + slot.to_bytes(8, "big")


def identity_point(committee_id: bytes, slot: int) -> G2Point:
    """Return Q = hash_to_G2(identity, IBE_DST)."""
    return bls.hash_to_g2(identity_message(committee_id, slot), IBE_DST)


def gt_mask(gt_bytes: bytes) -> bytes:
    """H_T: the 32-byte mask of sigma, SHA-256(MASK_TAG || the 576-byte GT encoding)."""
    return hashlib.sha256(MASK_TAG + gt_bytes).digest()


def fo_scalar(identity: bytes, sigma: bytes) -> int:
    """H_r: the encapsulation's secret exponent, SHA-512(FO_TAG || id || sigma) mod (r-1) + 1."""
    digest = hashlib.sha512(FO_TAG + identity + sigma).digest()
    # 512 bits reduced mod r - 1: bias below 2^-256; the + 1 keeps C1 off the identity.
    return int.from_bytes(digest, "big") % (bls.CURVE_ORDER - 1) + 1


def dem_key(identity: bytes, encapsulation: bytes, sigma: bytes) -> bytes:
    """The 32-byte ChaCha20-Poly1305 key: HKDF-SHA256(sigma, DEM_SALT, id || C1 || V)."""
    prk = hmac.new(DEM_SALT, sigma, hashlib.sha256).digest()
    return hmac.new(prk, identity + encapsulation + b"\x01", hashlib.sha256).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# --- crossing from arkworks to mcl ------------------------------------------------------------


def _g1_to_mcl(point: G1Point) -> Any:
    """mcl's form of a checked arkworks point: x little-endian, top bit set when y is odd."""
    xy = bytes(point.to_xy_bytes_le())
    x = bytearray(xy[:48])
    if xy[48] & 1:
        x[47] |= 0x80
    return pymcl.G1.deserialize(bytes(x))


def _g2_to_mcl(point: G2Point) -> Any:
    """mcl's form of a G2 point: x = (x0, x1) little-endian, top bit set when y0 is odd."""
    xy = bytes(point.to_xy_bytes_le())
    x = bytearray(xy[:96])
    if xy[96] & 1:
        x[95] |= 0x80
    return pymcl.G2.deserialize(bytes(x))


def _decode_c1(data: bytes) -> Any:
    """Decode C1 into mcl's form: canonical, on the curve, in the subgroup, not the identity.

    Cheaper than ``bls.decode_g1`` then ``_g1_to_mcl``, which would check the subgroup twice:
    arkworks only decompresses (finds y), mcl's deserialisation checks curve and subgroup
    (tests/committee/test_encryption.py feeds it an on-curve point outside the subgroup).
    """
    if data[0] & 0xC0 != 0x80:
        raise InvalidPoint("C1 is not a compressed non-identity point", what="C1")
    try:
        point = G1Point.from_compressed_bytes_unchecked(data)
    except ValueError:
        raise InvalidPoint("C1 is not a point on G1", what="C1") from None
    # Verify one point, one encoding: the cache and the AEAD header key on these bytes.
    if bytes(point.to_compressed_bytes()) != data:
        raise InvalidPoint("C1 is not canonically encoded", what="C1")
    try:
        return _g1_to_mcl(point)
    except ValueError:
        raise InvalidPoint("C1 is not in the G1 subgroup", what="C1") from None


# --- keys: shares, combination, verification ---------------------------------------------------


def key_share(share: threshold.KeyShare, slot: int) -> bytes:
    """Member ``share.index``'s 96-byte share of the slot key: s_i * Q (a partial signature of
    the identity under IBE_DST). Stage 2 releases it only after the deadline and the commitment."""
    return bls.encode_g2(identity_point(share.committee_id, slot) * bls.secret_scalar(share.secret))


def _is_signature_on_identity(public_key: G1Point, q: G2Point, signature: bytes) -> bool:
    """e(pk, Q) == e(G1, sig), one multi-pairing."""
    try:
        point = bls.decode_g2(signature, what="key share")
    except InvalidPoint:
        return False
    return bool(GT.pairing_check([public_key, _NEG_G1], [q, point]))


def verify_key_share(
    committee: threshold.CommitteeInfo, index: int, slot: int, share_bytes: bytes
) -> bool:
    """Whether ``share_bytes`` is member ``index``'s key share for ``slot``."""
    member_key = bls.decode_g1(committee.member_public_key(index), what="member public key")
    return _is_signature_on_identity(
        member_key, identity_point(committee.committee_id, slot), share_bytes
    )


def verify_slot_key(committee: threshold.CommitteeInfo, slot: int, key: bytes) -> bool:
    """Whether ``key`` is the slot key: the group's BLS signature on the identity (IBE_DST)."""
    group_key = bls.decode_g1(committee.group_public_key, what="group public key")
    return _is_signature_on_identity(group_key, identity_point(committee.committee_id, slot), key)


def combine_key_shares(
    committee: threshold.CommitteeInfo, slot: int, shares: Mapping[int, bytes]
) -> bytes:
    """Combine t of the offered key shares (Lagrange at 0) into the slot key, checked.

    Optimistic, as the key is checked anyway: combine the t lowest-indexed shares and verify
    the result (one pairing check instead of t). Only if it fails, check every offered share and
    raise ``InvalidKeyShare`` naming the bad ones (``data["indices"]``); the caller drops them
    and combines again. Fewer than t shares raise ``NotEnoughPartials``. Shares beyond the first
    t are not looked at; check each on receipt with ``verify_key_share`` to blame it early.
    """
    group_key = bls.decode_g1(committee.group_public_key, what="group public key")
    q = identity_point(committee.committee_id, slot)
    chosen = dict(sorted(shares.items())[: committee.t])
    try:
        key = threshold.combine(chosen, committee.t, committee.n)
    except InvalidPoint:
        key = b""  # a share that is no point: found and named below
    if key and _is_signature_on_identity(group_key, q, key):
        return key
    bad = [
        index
        for index, share_bytes in sorted(chosen.items())
        if not _is_signature_on_identity(
            bls.decode_g1(committee.member_public_key(index), what="member public key"),
            q,
            share_bytes,
        )
    ]
    if not bad:  # unreachable unless the curve library misbehaves: valid shares combine
        raise InvalidSlotKey("valid key shares combined to a key that does not verify", slot=slot)
    raise InvalidKeyShare(
        f"key shares of members {bad} do not verify", indices=bad, slot=slot
    )


# --- encryption -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    """What encryption to (committee, slot) needs, computed once: id and e(P, Q) in mcl form."""

    committee_id: bytes
    slot: int
    identity: bytes
    pairing_pq: Any = field(repr=False)


def recipient(group_public_key: bytes, committee_id: bytes, slot: int) -> Recipient:
    """Prepare encryption to the identity (committee_id, slot) under ``group_public_key``."""
    p = bls.decode_g1(group_public_key, what="group public key")
    q = identity_point(committee_id, slot)
    return Recipient(
        committee_id=committee_id,
        slot=slot,
        identity=identity_message(committee_id, slot),
        pairing_pq=pymcl.pairing(_g1_to_mcl(p), _g2_to_mcl(q)),
    )


@dataclass(frozen=True)
class Encapsulation:
    """One KEM output: its 80 bytes (C1 || V) and the DEM key they carry."""

    recipient: Recipient
    encapsulation: bytes
    key: bytes = field(repr=False)


def encapsulate(to: Recipient, sigma: bytes) -> Encapsulation:
    """Encapsulate the secret ``sigma`` (32 fresh random bytes; never reuse) to ``to``."""
    if not isinstance(sigma, bytes) or len(sigma) != SIGMA_LENGTH:
        raise ValueError(f"sigma must be {SIGMA_LENGTH} random bytes")
    r = fo_scalar(to.identity, sigma)
    c1 = bls.encode_g1(bls.g1_generator() * bls.field_element(r))
    # e(P, Q)^r == e(r * G1, s * Q): what the slot key will recover from C1.
    mask = gt_mask(bytes((to.pairing_pq ** pymcl.Fr(str(r))).serialize()))
    encapsulation = c1 + _xor(sigma, mask)
    return Encapsulation(to, encapsulation, dem_key(to.identity, encapsulation, sigma))


def seal(encapsulation: Encapsulation, payload: bytes, public_fields: bytes, nonce: bytes) -> bytes:
    """Return the version-1 ciphertext of ``payload`` under ``encapsulation``.

    ``nonce`` (12 bytes) must be unique per bid under one encapsulation (random is fine);
    ``public_fields`` travel in the clear and are authenticated with everything else.
    """
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_LENGTH:
        raise ValueError(f"nonce must be {NONCE_LENGTH} bytes")
    if not payload:
        raise ValueError("payload must not be empty")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CiphertextTooLarge(
            f"payload must be at most {MAX_PAYLOAD_BYTES} bytes", length=len(payload)
        )
    if len(public_fields) > MAX_PUBLIC_BYTES:
        raise CiphertextTooLarge(
            f"public fields must be at most {MAX_PUBLIC_BYTES} bytes", length=len(public_fields)
        )
    to = encapsulation.recipient
    header = b"".join(
        (
            bytes([VERSION]),
            to.committee_id,
            to.slot.to_bytes(8, "big"),
            encapsulation.encapsulation,
            nonce,
            len(public_fields).to_bytes(2, "big"),
            public_fields,
        )
    )
    body = ChaCha20Poly1305(encapsulation.key).encrypt(nonce, payload, AAD_TAG + header)
    return header + body


def encrypt(
    group_public_key: bytes,
    committee_id: bytes,
    slot: int,
    payload: bytes,
    public_fields: bytes,
    *,
    sigma: bytes,
    nonce: bytes,
) -> bytes:
    """Encrypt one bid with its own encapsulation (``encapsulate`` + ``seal`` to share one)."""
    to = recipient(group_public_key, committee_id, slot)
    return seal(encapsulate(to, sigma), payload, public_fields, nonce)


# --- parsing and opening ----------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    """An opened bid: its public fields (as sent) and its payload."""

    public_fields: bytes
    payload: bytes
    encapsulation: bytes


class Opener:
    """Opens the ciphertexts of one (committee, slot) with its slot key, one pairing per
    distinct encapsulation (cached by its bytes, failures too). In memory only; pure."""

    def __init__(self, committee: threshold.CommitteeInfo, slot: int, slot_key: bytes) -> None:
        if not verify_slot_key(committee, slot, slot_key):
            raise InvalidSlotKey("slot key does not verify", slot=slot)
        self.committee_id = committee.committee_id
        self.slot = slot
        self.identity = identity_message(committee.committee_id, slot)
        self._key = _g2_to_mcl(bls.decode_g2(slot_key, what="slot key"))
        # Encapsulation bytes -> its AEAD, or the reason it was refused (refusals cache too).
        self._aeads: dict[bytes, ChaCha20Poly1305 | str] = {}
        self.decapsulations = 0

    def open(self, data: bytes) -> Opened:
        """Open one ciphertext or raise its ``CiphertextError``."""
        ct = parse_ciphertext(data)
        if ct.committee_id != self.committee_id:
            raise WrongCommittee("ciphertext is for another committee", slot=ct.slot)
        if ct.slot != self.slot:
            raise WrongSlot(f"ciphertext is for slot {ct.slot}", slot=ct.slot, expected=self.slot)
        aead = self._aeads.get(ct.encapsulation)
        if aead is None:
            aead = self._decapsulate(ct.encapsulation)
            self._aeads[ct.encapsulation] = aead
        if isinstance(aead, str):
            raise InvalidEncapsulation(aead, slot=ct.slot)
        try:
            payload = aead.decrypt(ct.nonce, ct.body, AAD_TAG + ct.header)
        except InvalidTag:
            raise PayloadAuthFailed("payload does not authenticate", slot=ct.slot) from None
        return Opened(ct.public_fields, payload, ct.encapsulation)

    def _decapsulate(self, encapsulation: bytes) -> ChaCha20Poly1305 | str:
        """Recover sigma and check C1 (FO); the AEAD for its key, or the refusal to cache."""
        self.decapsulations += 1
        c1_bytes, v = encapsulation[: bls.PUBLIC_KEY_LENGTH], encapsulation[bls.PUBLIC_KEY_LENGTH :]
        try:
            c1 = _decode_c1(c1_bytes)
        except InvalidPoint as exc:
            return f"C1 is not a valid G1 point: {exc.message}"
        sigma = _xor(v, gt_mask(bytes(pymcl.pairing(c1, self._key).serialize())))
        r = fo_scalar(self.identity, sigma)
        # Verify C1 was made from this sigma (FO): a mauled encapsulation fails here.
        if _MCL_G1 * pymcl.Fr(str(r)) != c1:
            return "encapsulation fails the re-encryption check"
        return ChaCha20Poly1305(dem_key(self.identity, encapsulation, sigma))
