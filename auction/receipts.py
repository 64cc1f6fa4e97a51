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

**Version 2, batched** (what the engine hands out under load): the operator signs the receipts
acknowledged together once, over the root of a Merkle tree of their digests, and each receipt
carries its place and its path::

    leaf    = the version-1 digest above with the domain's version "2"
    node    = keccak256(left || right); a node without a sibling moves up unchanged
    batch   = ReceiptBatch(bytes32 root, uint32 size)
    digest  = keccak256(0x19 0x01 || hashStruct(domain, version "2") || hashStruct(batch))

A receipt's ``batch`` names its ``index``, the batch ``size`` and the sibling hashes from the
leaf up (``proof``); a verifier (or a contract) recomputes the leaf from the fields, folds the
path, and recovers the signer from the batch digest. Version 1 receipts stay verifiable.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from coincurve import PrivateKey, PublicKey

from auction.errors import ForgedReceipt, MalformedHex, MalformedReceipt, WrongOperator
from auction.hashing import keccak256, to_hex
from auction.transactions import _HALF_N, SECP256K1_N

RECEIPT_VERSION: Final = 1
BATCH_RECEIPT_VERSION: Final = 2  # signed per batch, with a Merkle path (see the docstring)
RECEIPT_VERSIONS: Final = frozenset({RECEIPT_VERSION, BATCH_RECEIPT_VERSION})
# A batch holds at most this many receipts (a path of at most 16 hashes).
MAX_BATCH_RECEIPTS: Final = 1 << 16
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
_BATCH_TYPEHASH: Final = keccak256(b"ReceiptBatch(bytes32 root,uint32 size)")
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
class BatchPath:
    """Where a version-2 receipt sits in the batch its signature covers."""

    index: int
    size: int
    proof: tuple[bytes, ...]  # sibling hashes, from the leaf up (a lone node has none)


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    """A receipt, the operator address that signed it and the 65-byte signature (over the
    receipt's digest in version 1, over its batch's in version 2, with ``batch`` its path)."""

    receipt: Receipt
    operator: str
    signature: bytes
    batch: BatchPath | None = None


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
    if isinstance(receipt.version, bool) or receipt.version not in RECEIPT_VERSIONS:
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


def compute_merkle_node(left: bytes, right: bytes) -> bytes:
    """A parent in a receipt batch's tree."""
    return keccak256(left + right)


def compute_batch_digest(committee_id: bytes, root: bytes, size: int) -> bytes:
    """The 32-byte digest the operator signs for a batch of version-2 receipts (EIP-712)."""
    struct_hash = keccak256(_BATCH_TYPEHASH + root + _word(size))
    domain = compute_domain_separator(committee_id, BATCH_RECEIPT_VERSION)
    return keccak256(b"\x19\x01" + domain + struct_hash)


def compute_batch_tree(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree over ``leaves``, the leaves first and the root's level last."""
    levels = [leaves]
    while len(levels[-1]) > 1:
        below = levels[-1]
        above = [compute_merkle_node(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])  # no sibling: up unchanged
        levels.append(above)
    return levels


def compute_batch_proof(levels: list[list[bytes]], index: int) -> tuple[bytes, ...]:
    """The sibling hashes of leaf ``index``, from the leaf up."""
    proof = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        index //= 2
    return tuple(proof)


def compute_batch_root(leaf: bytes, path: BatchPath) -> bytes:
    """The root that ``leaf`` at ``path`` folds up to; ``MalformedReceipt`` on a path that does
    not fit its batch (an index outside it, a proof too short or too long)."""
    if isinstance(path.size, bool) or not isinstance(path.size, int) or not (
        1 <= path.size <= MAX_BATCH_RECEIPTS
    ):
        raise MalformedReceipt(f"a batch holds 1..{MAX_BATCH_RECEIPTS} receipts", field="batch")
    if isinstance(path.index, bool) or not isinstance(path.index, int) or not (
        0 <= path.index < path.size
    ):
        raise MalformedReceipt("the receipt's index is outside its batch", field="batch")
    node, index, width, used = leaf, path.index, path.size, 0
    while width > 1:
        if index % 2 or index + 1 < width:
            # Verify the path has a sibling for every level where the node has one
            if used == len(path.proof):
                raise MalformedReceipt("the batch proof is too short", field="batch")
            sibling = path.proof[used]
            used += 1
            node = compute_merkle_node(sibling, node) if index % 2 else compute_merkle_node(
                node, sibling)  # fmt: skip
        index, width = index // 2, (width + 1) // 2
    # Verify nothing trails the path (one spelling per receipt)
    if used != len(path.proof):
        raise MalformedReceipt("the batch proof is too long", field="batch")
    return node


def compute_signed_digest(signed: SignedReceipt) -> bytes:
    """What ``signed.signature`` is over: the receipt's digest (version 1) or its batch's
    (version 2); ``MalformedReceipt`` when the version and the batch path disagree."""
    digest = compute_receipt_digest(signed.receipt)
    if signed.receipt.version == RECEIPT_VERSION:
        if signed.batch is not None:
            raise MalformedReceipt("a version-1 receipt has no batch", field="batch")
        return digest
    if signed.batch is None:
        raise MalformedReceipt("a version-2 receipt names its batch", field="batch")
    root = compute_batch_root(digest, signed.batch)
    return compute_batch_digest(signed.receipt.committee_id, root, signed.batch.size)


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


def sign_receipt_batch(receipts: list[Receipt], key: OperatorKey) -> list[SignedReceipt]:
    """Version-2 receipts (all of one committee), signed once over their batch."""
    if not 1 <= len(receipts) <= MAX_BATCH_RECEIPTS:
        raise ValueError(f"a batch holds 1..{MAX_BATCH_RECEIPTS} receipts")
    committee_id = receipts[0].committee_id
    if any(r.version != BATCH_RECEIPT_VERSION or r.committee_id != committee_id
           for r in receipts):  # fmt: skip
        raise ValueError("a batch is of version-2 receipts of one committee")
    levels = compute_batch_tree([compute_receipt_digest(r) for r in receipts])
    digest = compute_batch_digest(committee_id, levels[-1][0], len(receipts))
    sig = key.private.sign_recoverable(digest, hasher=None)
    signature = sig[:64] + bytes([sig[64] + 27])
    size = len(receipts)
    return [
        SignedReceipt(r, key.address, signature,
                      BatchPath(i, size, compute_batch_proof(levels, i)))  # fmt: skip
        for i, r in enumerate(receipts)
    ]


def recover_receipt_signer(receipt: Receipt, signature: bytes) -> str:
    """The address whose key made ``signature`` over ``receipt``; ``ForgedReceipt`` if none."""
    return _recover_digest_signer(compute_receipt_digest(receipt), signature)


def _recover_digest_signer(digest: bytes, signature: bytes) -> str:
    # Verify the form: 65 bytes, v 27/28, r and s in range, s low (EIP-2: no second spelling)
    if len(signature) != 65:
        raise ForgedReceipt("a receipt signature is 65 bytes")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28) or not 0 < r < SECP256K1_N or not 0 < s <= _HALF_N:
        raise ForgedReceipt("receipt signature values out of range")
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
    recovered = _recover_digest_signer(compute_signed_digest(signed), signed.signature)
    if recovered != signed.operator:
        raise ForgedReceipt("the receipt was not signed by the operator it names",
                            operator=signed.operator)
    if operator is not None and recovered != operator.lower():
        raise WrongOperator("the receipt was not signed by this deployment's operator",
                            operator=signed.operator, expected=operator.lower())


# --- JSON -------------------------------------------------------------------------------------


def receipt_to_json(signed: SignedReceipt) -> dict[str, Any]:
    """The receipt as it goes on the wire and into evidence files (snake_case, 0x hex)."""
    return receipts_to_json([signed])[0]


def receipts_to_json(signed: Sequence[SignedReceipt]) -> list[dict[str, Any]]:
    """``receipt_to_json`` of each receipt; a batch's receipts share their committee id, their
    signature and most of their proofs' hashes, and each of those is spelled in hex once."""
    hex_of = functools.cache(to_hex)  # for this call only: shared hashes spelled once
    docs: list[dict[str, Any]] = []
    for one in signed:
        r = one.receipt
        doc: dict[str, Any] = {
            "version": r.version,
            "committee_id": hex_of(r.committee_id),
            "rollup": r.rollup,
            "slot": r.slot,
            "event_id": r.event_id,
            "kind": r.kind,
            "request_hash": r.request_hash,
            "received_ms": r.received_ms,
            "operator": one.operator,
            "signature": hex_of(one.signature),
        }
        if one.batch is not None:
            doc["batch"] = {"index": one.batch.index, "size": one.batch.size,
                            "proof": [hex_of(h) for h in one.batch.proof]}  # fmt: skip
        docs.append(doc)
    return docs


def receipt_from_json(value: Any) -> SignedReceipt:
    """Read a signed receipt from untrusted JSON, strictly (exact keys, types, lowercase hex);
    ``MalformedReceipt`` / ``MalformedHex`` name the field. The signature is not checked here."""
    if not isinstance(value, dict):
        raise MalformedReceipt("a receipt must be a JSON object", field="receipt")
    fields = _FIELDS | {"batch"} if value.get("version") == BATCH_RECEIPT_VERSION else _FIELDS
    missing = sorted(fields - set(value))
    unknown = sorted(set(value) - fields)
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
    batch = _batch_from_json(value["batch"]) if "batch" in fields else None
    return SignedReceipt(receipt, operator, signature, batch)


def _batch_from_json(value: Any) -> BatchPath:
    """A version-2 receipt's ``batch``: exactly ``index``, ``size`` and ``proof`` (hashes)."""
    if not isinstance(value, dict) or set(value) != {"index", "size", "proof"}:
        raise MalformedReceipt("batch must be {index, size, proof}", field="batch")
    proof = value["proof"]
    if not isinstance(proof, list) or len(proof) > 16:
        raise MalformedReceipt("batch proof must be a list of at most 16 hashes", field="batch")
    path = BatchPath(value["index"], value["size"],
                     tuple(bytes.fromhex(parse_hash(h, "batch")[2:]) for h in proof))  # fmt: skip
    compute_batch_root(bytes(32), path)  # the path's shape (index, size, length) fits
    return path


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
