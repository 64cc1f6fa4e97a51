"""Searcher authentication: the Flashbots ``X-Flashbots-Signature`` scheme.

The header is ``<address>:<signature>``, an EIP-191 ``personal_sign`` by ``address`` of the text
``"0x" + hex(keccak256(body))`` over the exact request bytes. One scheme for HTTP and websocket.
"""

from __future__ import annotations

from coincurve import PublicKey

from auction.errors import InvalidSignature, MissingSignature
from auction.hashing import keccak256, to_hex
from auction.transactions import _HALF_N, SECP256K1_N

_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n"


def compute_signed_message_hash(body: bytes) -> bytes:
    """The digest a searcher signs for ``body`` (EIP-191 over the 0x-hex keccak of the body)."""
    text = ("0x" + keccak256(body).hex()).encode()
    return keccak256(_EIP191_PREFIX + str(len(text)).encode() + text)


def recover_searcher(body: bytes, header: str | None) -> str:
    """Check the signature header over ``body``; return the lowercase searcher address."""
    if not header:
        raise MissingSignature("X-Flashbots-Signature is required for this method")
    if not isinstance(header, str) or header.count(":") != 1:
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
    digest = compute_signed_message_hash(body)
    try:
        pub = PublicKey.from_signature_and_message(sig[:64] + bytes([v]), digest, hasher=None)
    except Exception:
        raise InvalidSignature("signature does not recover an address") from None
    recovered = keccak256(pub.format(compressed=False)[1:])[12:]
    if recovered != claimed:
        raise InvalidSignature(
            "signature was not made by the address in the header", claimed=to_hex(claimed)
        )
    return to_hex(recovered)
