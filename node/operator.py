"""The engine operator's key: loaded from the settings, or made up for a demo (shell side).

The key signs receipts (``auction.receipts``). It comes from ``operator_key_file`` (a file
holding the 32-byte secret as ``0x`` hex, readable by the operator only) or from the
``BLOCKSPACE_OPERATOR_KEY`` environment variable; with neither, a throwaway key is made at start
and its address logged: receipts then bind only that run, which is enough for demos and tests.
"""

from __future__ import annotations

import logging
import os

from auction.hashing import from_hex
from auction.receipts import OperatorKey, compute_operator_key
from node.settings import Settings

log = logging.getLogger("blockspace.operator")


def parse_operator_secret(text: str, *, source: str) -> OperatorKey:
    """The operator key written as ``0x`` + 64 hex digits; ValueError naming ``source``."""
    try:
        return compute_operator_key(from_hex(text.strip(), what="operator key", length=32))
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def generate_operator_key() -> OperatorKey:
    """A fresh random operator key (a demo's or a test's)."""
    while True:
        try:
            return compute_operator_key(os.urandom(32))
        except ValueError:  # 0 or >= n: about 2^-128 likely
            continue


def load_operator_key(settings: Settings) -> OperatorKey:
    """The configured operator key, or a throwaway one (logged as such)."""
    if settings.operator_key_file:
        with open(settings.operator_key_file, encoding="ascii") as f:
            return parse_operator_secret(f.read(), source=settings.operator_key_file)
    if settings.operator_key is not None:
        return parse_operator_secret(
            settings.operator_key.get_secret_value(), source="BLOCKSPACE_OPERATOR_KEY"
        )
    key = generate_operator_key()
    log.warning("no operator key configured: receipts and proposals are signed by a throwaway "
                "key %s", key.address)
    return key
