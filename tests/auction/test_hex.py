"""Strict hex (``auction.hashing.from_hex``): one spelling decodes to one value, so a committee
member comparing what a searcher signed can bind them; everything else is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auction.hashing import from_hex, to_hex


@pytest.mark.parametrize(
    "text",
    [
        "0x 00", "0x00 ", "0x0 0", "0x00\n", "0x\t00", "0x00\r", "0x00\x0b", "0x00\x0c",
        "0x0g", "0xzz", "0x-1", "0x+1", "0x٠٠", "0x\u00a000", "0x00\u2003", "0x0０",
        "00", "x00", "0X", "", "0x000",
    ],
)  # fmt: skip
def test_anything_but_hex_digits_is_refused(text: str) -> None:
    # Verify whitespace (which bytes.fromhex alone skips), other scripts' digits, signs and
    # an odd count are refused
    if text in ("0X",):
        assert from_hex(text) == b""
        return
    with pytest.raises(ValueError):
        from_hex(text)


def test_refusals_name_the_value_and_the_reason() -> None:
    with pytest.raises(ValueError, match="txs\\[0\\] has an odd number of hex digits"):
        from_hex("0x000", what="txs[0]")
    with pytest.raises(ValueError, match="txs\\[0\\] is not valid hex"):
        from_hex("0x0 11", what="txs[0]")
    with pytest.raises(ValueError, match="txs\\[0\\] must be a 0x-prefixed hex string"):
        from_hex(b"0x00", what="txs[0]")
    with pytest.raises(ValueError, match="bundleHash must be 32 bytes, got 1"):
        from_hex("0x00", what="bundleHash", length=32)


@given(st.binary(max_size=200), st.booleans(), st.booleans())
def test_every_spelling_of_bytes_decodes_to_them(data: bytes, upper: bool, big_x: bool) -> None:
    text = data.hex().upper() if upper else data.hex()
    assert from_hex(("0X" if big_x else "0x") + text) == data
    assert from_hex(to_hex(data), length=len(data)) == data
