"""Keccak-256 and address helpers shared by every rule that hashes (one implementation)."""

from __future__ import annotations

from sha3 import keccak_256 as _keccak_256


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (not NIST SHA3-256).

    safe-pysha3 (the backend eth-hash prefers) costs ~1.5 us a hash; pycryptodome's ctypes call
    costs ~7 us, and an intake hashes ~8 times a bid.
    """
    return _keccak_256(data).digest()


def to_hex(data: bytes) -> str:
    return "0x" + data.hex()


def from_hex(text: object, *, what: str = "value", length: int | None = None) -> bytes:
    """Decode 0x-prefixed hex, strictly: hex digits only (``bytes.fromhex`` alone would skip
    whitespace, so two spellings would decode to one value, and a committee member comparing
    what a searcher signed could not bind them); raise ValueError naming ``what``."""
    if not isinstance(text, str) or not text.startswith(("0x", "0X")):
        raise ValueError(f"{what} must be a 0x-prefixed hex string")
    body = text[2:]
    if len(body) % 2:
        raise ValueError(f"{what} has an odd number of hex digits")
    try:
        out = bytes.fromhex(body)
    except ValueError:
        raise ValueError(f"{what} is not valid hex") from None
    # Verify nothing was skipped: bytes.fromhex passes over ASCII whitespace, and refuses any
    # other character, so two digits a byte means hex digits only (no regex scan: a tx is
    # hundreds of digits, and every one of a bundle's is read so)
    if 2 * len(out) != len(body):
        raise ValueError(f"{what} is not valid hex")
    if length is not None and len(out) != length:
        raise ValueError(f"{what} must be {length} bytes, got {len(out)}")
    return out


def normalize_address(text: str) -> str:
    """Lowercase 0x address after checking it is 20 bytes of hex."""
    return to_hex(from_hex(text, what="address", length=20))
