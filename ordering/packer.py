"""The one entry point the engine, the committee and ``blockspace solve`` use to pack a slot.

Whatever solver sits behind it, the interface is fixed: ``PackingInput`` in, ``Packing`` out, the
same input always giving the same block (the numba solver turns its time budget into a fixed work
limit, never a clock: see docs/solver.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection

from numba.core import event

from ordering import payments, solver
from ordering.problem import PAYMENT_RULES, PAYMENT_VCG, Item, Packing, PackingInput
from ordering.solver import WarmUpProgress


def pack(inp: PackingInput, time_budget_ms: int = 50) -> Packing:
    """Pack one slot. Deterministic in (``inp``, ``time_budget_ms``)."""
    return solver.pack(inp, time_budget_ms)


def warm_up(
    payment_rules: Collection[str] = PAYMENT_RULES, progress: WarmUpProgress | None = None
) -> None:
    """Compile the kernels a slot needs (or load them from numba's cache) on tiny instances, so
    no JIT happens inside a slot deadline: the packing's first, then the VCG re-solve when
    ``payment_rules`` include VCG.

    ``progress(done, total)`` is called with 0 when the first kernel starts compiling and after
    each kernel is compiled; when everything loads from the cache it is never called. A cold
    compile takes about 50 s of CPU on the reference machine, loading about 0.3 s.
    """
    vcg = PAYMENT_VCG in payment_rules
    total = len(solver.PACK_KERNELS) + (len(solver.VCG_KERNELS) if vcg else 0)
    with contextlib.ExitStack() as stack:
        if progress is not None:
            stack.enter_context(
                event.install_listener("numba:compile", solver.CompileProgress(progress, total))
            )
        items = tuple(
            Item(id=f"w{i:02d}", searcher=f"s{i % 3}", bid_wei=1000 + 37 * i,
                 gas=21_000 + 1000 * i, keys=(f"k{i % 5}", f"n{i}"))  # fmt: skip
            for i in range(solver.EXACT_MAX_ITEMS + 8)
        )
        inp = PackingInput(gas_limit=200_000, items=items, max_gas_per_searcher=120_000,
                           forced=frozenset({"w00"}))  # fmt: skip
        packing = pack(inp, time_budget_ms=1)
        pack(PackingInput(gas_limit=200_000, items=items[:6]), time_budget_ms=1)
        if vcg:
            payments.compute_vcg_payments(inp, packing, time_budget_ms=1)


def compute_payments(
    inp: PackingInput, packing: Packing, rule: str, time_budget_ms: int = 200
) -> dict[str, int]:
    """What each winner pays under the rollup's payment rule (``first_price`` or ``vcg``)."""
    return payments.compute_payments(inp, packing, rule, time_budget_ms=time_budget_ms)
