"""Docs that list stable codes stay in step with the code."""

from __future__ import annotations

from pathlib import Path

from node.errors import _JSONRPC_CODES

ROOT = Path(__file__).resolve().parents[1]


def test_every_error_code_is_documented():
    text = (ROOT / "docs" / "protocol.md").read_text()
    for cls, num in _JSONRPC_CODES.items():
        assert f"| `{cls.code}` | {num} |" in text, cls.code
