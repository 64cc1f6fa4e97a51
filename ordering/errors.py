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


class InvalidJointInput(BlockspaceError):
    """A joint (multi-rollup) instance that breaks the model's shape; subclasses name the rule."""

    code = "invalid_joint_input"


class DuplicateRollup(InvalidJointInput):
    """The same rollup id twice in the slot's rollup list."""

    code = "duplicate_rollup"


class InvalidCapacity(InvalidJointInput):
    """A rollup's gas for bundles or per-searcher cap below zero."""

    code = "invalid_capacity"


class DuplicateBundleId(InvalidJointInput):
    code = "duplicate_bundle_id"


class BundleWithoutLegs(InvalidJointInput):
    """A bundle with no leg at all (it would touch no rollup)."""

    code = "bundle_without_legs"


class LegForUnknownRollup(InvalidJointInput):
    """A leg on a rollup that is not in the slot."""

    code = "leg_unknown_rollup"


class DuplicateLegRollup(InvalidJointInput):
    """Two legs of one bundle on the same rollup (one leg per rollup, in order)."""

    code = "duplicate_leg_rollup"


class NegativeGas(InvalidJointInput):
    code = "negative_gas"
