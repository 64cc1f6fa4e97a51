"""The root of the project's one exception tree, and the packer's own error.

The tree's root lives here, in the bottom layer (``ordering`` imports nothing of ``auction``), so
the packer raises errors of the same tree as every rule above it. ``auction/errors.py`` holds
the rest of the tree; ``node/errors.py`` maps every one of them to the transports.
"""

from __future__ import annotations

from typing import Any


class BlockspaceError(Exception):
    """Base of every rule violation; ``code`` is stable, ``message`` is for people."""

    code: str = "internal_error"

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data:
            out["data"] = self.data
        return out


class InfeasibleInstance(BlockspaceError):
    """Forced bundles that cannot all be included (gas, conflicts, fairness)."""

    code = "infeasible_instance"
