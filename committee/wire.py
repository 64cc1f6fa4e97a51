"""Strict readers for the committee's JSON documents (proposals, signed blocks, records).

Everything a member or a verifier reads comes from someone it does not trust, so each field is
read with its exact JSON type (``true`` is not an int, ``7.0`` is not an int), hex is checked for
prefix, digits and length, and a failure names the field. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")

_MAX_U64 = (1 << 64) - 1
_MAX_U256 = (1 << 256) - 1
_MAX_U256_DIGITS = len(str(_MAX_U256))


class FieldError(ValueError):
    """A document field that is missing, mistyped or out of range; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def obj(value: Any, field: str) -> dict[str, Any]:
    """Return ``value`` if it is a JSON object."""
    if not isinstance(value, dict):
        raise FieldError(field, "must be an object")
    return value


def get(d: dict[str, Any], key: str, field: str = "") -> Any:
    """Return ``d[key]``, naming the field when it is missing."""
    if key not in d:
        raise FieldError(field + key, "is missing")
    return d[key]


def integer(value: Any, field: str, maximum: int = _MAX_U64) -> int:
    """A JSON integer in 0..maximum (bool and float refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise FieldError(field, f"must be an integer in 0..{maximum}")
    return value


def wei(value: Any, field: str) -> int:
    """Wei as a decimal string (the API convention), 0..2^256-1."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise FieldError(field, "must be a decimal string")
    if len(value) > 1 and value[0] == "0":
        raise FieldError(field, "must not have leading zeros")
    # Verify the length first: int() refuses more than 4,300 digits with a plain ValueError
    if len(value) > _MAX_U256_DIGITS:
        raise FieldError(field, "is out of range")
    out = int(value)
    if out > _MAX_U256:
        raise FieldError(field, "is out of range")
    return out


def text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise FieldError(field, "must be a string")
    return value


def hex_bytes(
    value: Any, field: str, length: int | None = None, max_length: int = 1 << 24
) -> bytes:
    """``0x``-prefixed hex of exactly ``length`` bytes (or at most ``max_length``)."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise FieldError(field, "must be a 0x-prefixed hex string")
    body = value[2:]
    if len(body) % 2 or len(body) > 2 * max_length:
        raise FieldError(field, "has a bad hex length")
    # bytes.fromhex skips whitespace, so check the digits ourselves (a C-speed regex: blocks
    # carry hundreds of kilobytes of transaction hex).
    if _HEX_DIGITS.fullmatch(body) is None:
        raise FieldError(field, "is not hex")
    out = bytes.fromhex(body)
    if length is not None and len(out) != length:
        raise FieldError(field, f"must be {length} bytes")
    return out


def hash_hex(value: Any, field: str, length: int = 32) -> str:
    """A lowercase ``0x`` hash of ``length`` bytes, returned in the canonical lowercase form."""
    return "0x" + hex_bytes(value, field, length).hex()


def array(
    value: Any, field: str, item: Callable[[Any, str], T], max_items: int = 1 << 20
) -> list[T]:
    """A JSON array, each element read with ``item``."""
    if not isinstance(value, list):
        raise FieldError(field, "must be an array")
    if len(value) > max_items:
        raise FieldError(field, f"has more than {max_items} items")
    return [item(v, f"{field}[{i}]") for i, v in enumerate(value)]


def exact_keys(d: dict[str, Any], keys: set[str], field: str) -> None:
    """Refuse unknown keys (a misspelt field must not be silently ignored)."""
    unknown = set(d) - keys
    if unknown:
        raise FieldError(field + sorted(unknown)[0], "is not a known field")
