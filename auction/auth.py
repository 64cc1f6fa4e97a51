"""Searcher authentication: the Flashbots ``X-Flashbots-Signature`` scheme.

The header is ``<address>:<signature>``, an EIP-191 ``personal_sign`` by ``address`` of the text
``"0x" + hex(keccak256(body))`` over the exact request bytes. One scheme for HTTP and websocket.

The header's *text* is not signed, so one signature has many spellings (with or without ``0x``,
upper or lower case, ``v`` as 0/1 or 27/28). Everything downstream (the bid id, the log, every
committee member's binding check) sees only the **canonical** spelling that ``recover_evidence``
returns: ``0x<40 lowercase hex>:0x<130 lowercase hex>`` with ``v`` in {27, 28} (docs/protocol.md).
"""

from __future__ import annotations

from coincurve import PublicKey

from auction.errors import InvalidSignature, MissingSignature
from auction.hashing import keccak256, to_hex
from auction.transactions import _HALF_N, SECP256K1_N
from auction.types import Evidence

_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n"
# A header longer than this cannot be a valid one (2 + 40 + 1 + 2 + 130 with room for spaces).
_MAX_HEADER_CHARS = 512


def compute_signed_message_hash(body: bytes) -> bytes:
    """The digest a searcher signs for ``body`` (EIP-191 over the 0x-hex keccak of the body)."""
    text = ("0x" + keccak256(body).hex()).encode()
    return keccak256(_EIP191_PREFIX + str(len(text)).encode() + text)


def parse_signature_header(header: str | None) -> tuple[bytes, bytes]:
    """The claimed address (20 bytes) and the signature (65 bytes, ``v`` as 0 or 1) of a header.

    Checks the form and the ranges (low ``s``, EIP-2), not the signature itself.
    """
    if not header:
        raise MissingSignature("X-Flashbots-Signature is required for this method")
    if not isinstance(header, str) or len(header) > _MAX_HEADER_CHARS or header.count(":") != 1:
        raise InvalidSignature("signature must look like <address>:<signature>")
    address_text, sig_text = header.split(":")
    try:
        claimed = bytes.fromhex(address_text.removeprefix("0x").removeprefix("0X"))
        sig = bytes.fromhex(sig_text.removeprefix("0x").removeprefix("0X"))
    except ValueError:
        raise InvalidSignature("signature header is not hex") from None
    if len(claimed) != 20:
        raise InvalidSignature("address in the signature header must be 20 bytes")
    if len(sig) != 65:
        raise InvalidSignature("signature must be 65 bytes")
    v = sig[64]
    if v >= 27:
        v -= 27
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    if v not in (0, 1) or not (0 < r < SECP256K1_N) or not (0 < s <= _HALF_N):
        raise InvalidSignature("signature values out of range")
    return claimed, sig[:64] + bytes([v])


def compute_canonical_signature(address: bytes, sig: bytes) -> str:
    """The one spelling of a header: lowercase, ``0x``-prefixed, ``v`` as 27 or 28."""
    return f"0x{address.hex()}:0x{sig[:64].hex()}{sig[64] + 27:02x}"


def is_canonical_signature(header: str) -> bool:
    """Whether ``header`` is already in the canonical spelling (no ECDSA)."""
    try:
        return compute_canonical_signature(*parse_signature_header(header)) == header
    except (InvalidSignature, MissingSignature):
        return False


def recover_evidence(body: bytes, header: str | None) -> tuple[str, Evidence]:
    """Check the signature header over ``body``; return the searcher and the evidence, with the
    header in its canonical spelling (every later step sees only that one)."""
    claimed, sig = parse_signature_header(header)
    digest = compute_signed_message_hash(body)
    try:
        pub = PublicKey.from_signature_and_message(sig, digest, hasher=None)
    except Exception:
        raise InvalidSignature("signature does not recover an address") from None
    recovered = keccak256(pub.format(compressed=False)[1:])[12:]
    if recovered != claimed:
        raise InvalidSignature(
            "signature was not made by the address in the header", claimed=to_hex(claimed)
        )
    return to_hex(recovered), Evidence(body, compute_canonical_signature(claimed, sig))


def recover_searcher(body: bytes, header: str | None) -> str:
    """Check the signature header over ``body``; return the lowercase searcher address."""
    return recover_evidence(body, header)[0]
