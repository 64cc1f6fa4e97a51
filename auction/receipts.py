"""Signed receipts: the engine operator's signed acknowledgement of one logged event.

Every acknowledged bid, cancel and public transaction gets a receipt: the operator says "I logged
event ``event_id`` (of ``kind``, from the request whose bytes hash to ``request_hash``, received at
``received_ms``) in slot ``slot`` of rollup ``rollup``, under committee ``committee_id``". The
committee's signed block commits to the slot's event ids (its bid-set root), so a receipt whose
event is missing from its slot's signed bid set is censorship evidence (docs/accountability.md).

The scheme is secp256k1 ECDSA over an EIP-712 typed-data digest, so that an escrow contract on an
EVM chain can ``ecrecover`` a receipt with the same digest (decision in docs/decisions.md)::

    domain  = EIP712Domain(string name, string version, bytes32 salt)
              name "blockspace", version "1", salt = the committee id
    struct  = Receipt(uint256 rollup, uint64 slot, bytes32 eventId, uint8 kind,
                      bytes32 requestHash, uint64 receivedMs)
    digest  = keccak256(0x19 0x01 || hashStruct(domain) || hashStruct(struct))

The signature is 65 bytes ``r || s || v`` with ``v`` 27 or 28 and a low ``s`` (one valid
signature per receipt and key). Pure: the key is an argument; signing is deterministic (RFC 6979).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from coincurve import PrivateKey, PublicKey

from auction.errors import ForgedReceipt, MalformedHex, MalformedReceipt, WrongOperator
from auction.hashing import keccak256, to_hex
from auction.transactions import _HALF_N, SECP256K1_N

RECEIPT_VERSION: Final = 1
DOMAIN_NAME: Final = "blockspace"

KIND_BID: Final = "bid"
KIND_CANCEL: Final = "cancel"
KIND_PUBLIC_TX: Final = "public_tx"
KIND_SEALED_BID: Final = "sealed_bid"
# The kind's number in the signed struct. An encrypted bid's event id is its bid id (keccak of
# the signed call) and its request hash the keccak of that call, which carries the ciphertext.
KIND_CODES: Final[Mapping[str, int]] = {
    KIND_BID: 1, KIND_CANCEL: 2, KIND_PUBLIC_TX: 3, KIND_SEALED_BID: 4
}

_DOMAIN_TYPEHASH: Final = keccak256(b"EIP712Domain(string name,string version,bytes32 salt)")
_RECEIPT_TYPEHASH: Final = keccak256(
    b"Receipt(uint256 rollup,uint64 slot,bytes32 eventId,uint8 kind,bytes32 requestHash,"
    b"uint64 receivedMs)"
)
_MAX_U64: Final = (1 << 64) - 1
_LOWER_HEX: Final = re.compile(r"0x[0-9a-f]*")
_MAX_U256: Final = (1 << 256) - 1
_FIELDS: Final = frozenset(
    {"version", "committee_id", "rollup", "slot", "event_id", "kind", "request_hash",
     "received_ms", "operator", "signature"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the operator signs for one logged event (hashes as lowercase ``0x`` hex)."""

    committee_id: bytes  # 32 bytes; all zero when the engine signs without a committee
    rollup: int
    slot: int
    event_id: str  # the id the slot's bid-set root commits to (auction.results.compute_event_id)
    kind: str  # one of KIND_CODES
    request_hash: str  # keccak256 of the signed request bytes (a public tx: its tx hash)
    received_ms: int
    version: int = RECEIPT_VERSION


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    """A receipt, the operator address that signed it and the 65-byte signature."""

    receipt: Receipt
    operator: str
    signature: bytes


# --- the digest -------------------------------------------------------------------------------


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


@functools.lru_cache(maxsize=64)
def compute_domain_separator(committee_id: bytes, version: int = RECEIPT_VERSION) -> bytes:
    """EIP-712 ``hashStruct(domain)``: blockspace, the receipt version, the committee id
    (cached: a deployment has one, and it is three hashes of every receipt otherwise)."""
    return keccak256(
        _DOMAIN_TYPEHASH
        + keccak256(DOMAIN_NAME.encode())
        + keccak256(str(version).encode())
        + committee_id
    )


def compute_receipt_digest(receipt: Receipt) -> bytes:
    """The 32-byte digest the operator signs (EIP-712); ``MalformedReceipt`` on a field that
    does not fit the signed struct."""
    check_receipt_fields(receipt)
    struct_hash = keccak256(
        _RECEIPT_TYPEHASH
        + _word(receipt.rollup)
        + _word(receipt.slot)
        + bytes.fromhex(receipt.event_id[2:])
        + _word(KIND_CODES[receipt.kind])
        + bytes.fromhex(receipt.request_hash[2:])
        + _word(receipt.received_ms)
    )
    domain = compute_domain_separator(receipt.committee_id, receipt.version)
    return keccak256(b"\x19\x01" + domain + struct_hash)


def check_receipt_fields(receipt: Receipt) -> None:
    """Raise ``MalformedReceipt`` unless every field fits its type in the signed struct."""
    if receipt.version != RECEIPT_VERSION:
        raise MalformedReceipt(f"receipt version {receipt.version} is not supported",
                               field="version")
    if len(receipt.committee_id) != 32:
        raise MalformedReceipt("committee_id must be 32 bytes", field="committee_id")
    if receipt.kind not in KIND_CODES:
        raise MalformedReceipt(f"unknown receipt kind {receipt.kind!r}", field="kind")
    ranges = (("rollup", receipt.rollup, _MAX_U256), ("slot", receipt.slot, _MAX_U64),
              ("received_ms", receipt.received_ms, _MAX_U64))
    for name, value, top in ranges:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise MalformedReceipt(f"{name} must be an integer in 0..{top}", field=name)
    for name, text in (("event_id", receipt.event_id), ("request_hash", receipt.request_hash)):
        parse_hash(text, name)


# --- signing and recovery ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperatorKey:
    """The operator's secret key, parsed once, and its Ethereum address (never printed)."""

    secret: bytes = field(repr=False)
    address: str
    private: PrivateKey = field(repr=False, compare=False)


def compute_operator_key(secret: bytes) -> OperatorKey:
    """The operator key of a 32-byte secret (ValueError if it is not a valid secp256k1 key)."""
    if len(secret) != 32 or not 0 < int.from_bytes(secret, "big") < SECP256K1_N:
        raise ValueError("an operator key is 32 bytes, 0 < key < n")
    private = PrivateKey(secret)
    public = private.public_key.format(compressed=False)[1:]
    return OperatorKey(secret, to_hex(keccak256(public)[12:]), private)


def sign_receipt(receipt: Receipt, key: OperatorKey) -> SignedReceipt:
    """The receipt signed with the operator's key (deterministic, low ``s``)."""
    sig = key.private.sign_recoverable(compute_receipt_digest(receipt), hasher=None)
    return SignedReceipt(receipt, key.address, sig[:64] + bytes([sig[64] + 27]))


def recover_receipt_signer(receipt: Receipt, signature: bytes) -> str:
    """The address whose key made ``signature`` over ``receipt``; ``ForgedReceipt`` if none."""
    # Verify the form: 65 bytes, v 27/28, r and s in range, s low (EIP-2: no second spelling)
    if len(signature) != 65:
        raise ForgedReceipt("a receipt signature is 65 bytes")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28) or not 0 < r < SECP256K1_N or not 0 < s <= _HALF_N:
        raise ForgedReceipt("receipt signature values out of range")
    digest = compute_receipt_digest(receipt)
    try:
        public = PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), digest, hasher=None
        )
    except Exception:
        raise ForgedReceipt("the receipt signature recovers no key") from None
    return to_hex(keccak256(public.format(compressed=False)[1:])[12:])


def verify_receipt(signed: SignedReceipt, operator: str | None = None) -> None:
    """Raise ``ForgedReceipt`` unless the signature recovers the receipt's operator, and
    ``WrongOperator`` unless that is ``operator`` when given (the address the deployment
    publishes)."""
    recovered = recover_receipt_signer(signed.receipt, signed.signature)
    if recovered != signed.operator:
        raise ForgedReceipt("the receipt was not signed by the operator it names",
                            operator=signed.operator)
    if operator is not None and recovered != operator.lower():
        raise WrongOperator("the receipt was not signed by this deployment's operator",
                            operator=signed.operator, expected=operator.lower())


# --- JSON -------------------------------------------------------------------------------------


def receipt_to_json(signed: SignedReceipt) -> dict[str, Any]:
    """The receipt as it goes on the wire and into evidence files (snake_case, 0x hex)."""
    r = signed.receipt
    return {
        "version": r.version,
        "committee_id": to_hex(r.committee_id),
        "rollup": r.rollup,
        "slot": r.slot,
        "event_id": r.event_id,
        "kind": r.kind,
        "request_hash": r.request_hash,
        "received_ms": r.received_ms,
        "operator": signed.operator,
        "signature": to_hex(signed.signature),
    }


def receipt_from_json(value: Any) -> SignedReceipt:
    """Read a signed receipt from untrusted JSON, strictly (exact keys, types, lowercase hex);
    ``MalformedReceipt`` / ``MalformedHex`` name the field. The signature is not checked here."""
    if not isinstance(value, dict):
        raise MalformedReceipt("a receipt must be a JSON object", field="receipt")
    missing = sorted(_FIELDS - set(value))
    unknown = sorted(set(value) - _FIELDS)
    if missing or unknown:
        raise MalformedReceipt("receipt fields are missing or unknown",
                               missing=missing, unknown=unknown)
    kind = value["kind"]
    if not isinstance(kind, str):
        raise MalformedReceipt("kind must be a string", field="kind")
    receipt = Receipt(
        committee_id=bytes.fromhex(parse_hash(value["committee_id"], "committee_id")[2:]),
        rollup=value["rollup"],
        slot=value["slot"],
        event_id=parse_hash(value["event_id"], "event_id"),
        kind=kind,
        request_hash=parse_hash(value["request_hash"], "request_hash"),
        received_ms=value["received_ms"],
        version=value["version"],
    )
    check_receipt_fields(receipt)
    operator = _lower_hex(value["operator"], "operator", 20)
    signature = bytes.fromhex(_lower_hex(value["signature"], "signature", 65)[2:])
    return SignedReceipt(receipt, operator, signature)


def _lower_hex(text: Any, field: str, length: int) -> str:
    """``0x`` + exactly ``length`` bytes of lowercase hex (one spelling per value)."""
    if not isinstance(text, str) or len(text) != 2 + 2 * length or not _LOWER_HEX.fullmatch(text):
        raise MalformedHex(f"{field} must be 0x and {length} bytes of lowercase hex", field=field)
    return text


def parse_hash(text: Any, field: str) -> str:
    """A 32-byte hash as `0x` + 64 lowercase hex digits (`MalformedHex` naming `field`)."""
    return _lower_hex(text, field, 32)


def recover_digest_signer(digest: bytes, signature: bytes) -> str | None:
    """The address whose key made ``signature`` (65 bytes, ``v`` 27/28, low ``s``) over a
    32-byte EIP-712 ``digest``; None if the signature is malformed or recovers no key. For
    the operator's other signed messages (``committee.endorsement``), with receipts' rules."""
    if len(signature) != 65:
        return None
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28) or not 0 < r < SECP256K1_N or not 0 < s <= _HALF_N:
        return None
    try:
        public = PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), digest, hasher=None
        )
    except Exception:
        return None
    return to_hex(keccak256(public.format(compressed=False)[1:])[12:])


def sign_digest(digest: bytes, key: OperatorKey) -> bytes:
    """``r || s || v`` over a 32-byte digest with the operator's key (deterministic, low s)."""
    sig = key.private.sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes([sig[64] + 27])
