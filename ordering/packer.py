"""The one entry point the engine, the committee and ``blockspace solve`` use to pack a slot.

Whatever solver sits behind it, the interface is fixed: ``PackingInput`` in, ``Packing`` out, the
same input always giving the same block (the numba solver turns its time budget into a fixed work
limit, never a clock: see docs/solver.md).
"""

from __future__ import annotations

from collections.abc import Collection

from auction import constants as C
from ordering import payments, solver
from ordering.problem import Packing, PackingInput
from ordering.solver import WarmUpProgress


def pack(inp: PackingInput, time_budget_ms: int = 50) -> Packing:
    """Pack one slot. Deterministic in (``inp``, ``time_budget_ms``)."""
    return solver.pack(inp, time_budget_ms)


def warm_up(
    payment_rules: Collection[str] = C.PAYMENT_RULES, progress: WarmUpProgress | None = None
) -> None:
    """Compile the solver's kernels (or load them from the cache) outside any slot's deadline:
    those every slot needs, and the VCG re-solve when ``payment_rules`` include VCG.
    ``progress(done, total)`` reports kernels as they compile (never on a warm start)."""
    solver.warm_up(progress, vcg=C.PAYMENT_VCG in payment_rules)


def compute_payments(
    inp: PackingInput, packing: Packing, rule: str, time_budget_ms: int = 200
) -> dict[str, int]:
    """What each winner pays under the rollup's payment rule (``first_price`` or ``vcg``)."""
    return payments.compute_payments(inp, packing, rule, time_budget_ms=time_budget_ms)
