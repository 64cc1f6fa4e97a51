"""The one entry point the engine, the committee and ``blockspace solve`` use to pack a slot.

Whatever solver sits behind it, the interface is fixed: ``PackingInput`` in, ``Packing`` out, the
same input always giving the same block (the numba solver turns its time budget into a fixed work
limit, never a clock: see docs/solver.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection

import numpy as np
from numba.core import event

from ordering import joint, payments, solver
from ordering.arrays import JointArrays, compute_joint_arrays, compute_single_arrays
from ordering.columns import compute_encoded_subset
from ordering.problem import (
    PAYMENT_RULES,
    PAYMENT_VCG,
    ComponentPacking,
    Item,
    JointInput,
    JointItem,
    JointPacking,
    Leg,
    Packing,
    PackingInput,
    RollupCapacity,
    compute_joint_order,
)
from ordering.reference import check_joint_forced_feasible, check_joint_input
from ordering.solver import WarmUpProgress


def pack(inp: PackingInput, time_budget_ms: int = 50) -> Packing:
    """Pack one slot. Deterministic in (``inp``, ``time_budget_ms``)."""
    return solver.pack(inp, time_budget_ms)


def pack_joint(inp: JointInput, time_budget_ms: int = 50) -> JointPacking:
    """Pack one shared slot: one block per rollup, cross-rollup bundles in all or none of their
    rollups' blocks. Deterministic in (``inp``, ``time_budget_ms``).

    Raises the InvalidJointInput tree on a malformed instance and InfeasibleInstance when the
    forced bundles cannot all be included. A one-rollup slot is the single-rollup problem and is
    solved by ``pack`` (same block, bound and speed); several rollups by the joint kernel.
    """
    if len(inp.rollups) != 1:
        return joint.pack_joint_kernel(inp, time_budget_ms)
    check_joint_input(inp)
    if inp.forced:
        check_joint_forced_feasible(inp)
    single = solver.pack(joint.compute_single_input(inp), time_budget_ms)
    return joint.compute_joint_from_single(inp, single)


def compute_components(
    inp: JointInput, arrays: JointArrays | None = None
) -> tuple[JointInput, ...]:
    """The slot split into independent problems: rollups linked by a bundle with legs on both
    are in one component. Each keeps the input's rollup order and forced items; components are
    ordered by their first rollup in ``inp.rollups``. A slot of one component is ``inp``
    itself; otherwise each component's items are in canonical order (ascending id: every
    packer encodes canonically, so item order never matters). Read from ``arrays``
    (``compute_joint_arrays(inp)``, computed when not given): no walk over the bundles beyond
    sorting them into the components. O(legs + items)."""
    arrays = compute_joint_arrays(inp) if arrays is None else arrays
    n_rollups = len(inp.rollups)
    # each item's first leg's rollup row, and an edge (that rollup, r) for every other leg's r
    item_of = np.repeat(np.arange(arrays.n, dtype=np.int64), np.diff(arrays.row_ptr))
    on_rollup = arrays.row_idx < n_rollups
    lead = arrays.row_idx[arrays.row_ptr[:-1]] if arrays.n else np.zeros(0, dtype=np.int64)
    other = arrays.row_idx[on_rollup]
    pairs = np.unique(lead[item_of[on_rollup]] * n_rollups + other)
    parent = list(range(n_rollups))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    width = max(n_rollups, 1)
    for a, b in zip((pairs // width).tolist(), (pairs % width).tolist(), strict=True):
        ra, rb = sorted((find(a), find(b)))
        parent[rb] = ra
    groups: dict[int, list[int]] = {}
    for i in range(n_rollups):
        groups.setdefault(find(i), []).append(i)
    if len(groups) == 1:
        return (inp,)
    component = np.array([find(i) for i in range(n_rollups)], dtype=np.int64)
    buckets: dict[int, list[JointItem]] = {g: [] for g in groups}
    for it, g in zip(arrays.items, component[lead].tolist(), strict=True):
        buckets[g].append(it)
    at: dict[int, list[int]] = {g: [] for g in groups}
    if inp.encoded is not None:  # each component's rows of the columns, in its item order
        position = {it.id: j for j, it in enumerate(inp.items)}
        for item_id, g in zip(arrays.ids, component[lead].tolist(), strict=True):
            at[g].append(position[item_id])
    out = []
    for members in sorted(groups.values()):
        g = find(members[0])
        items = tuple(buckets[g])
        forced = frozenset(it.id for it in items if it.id in inp.forced)
        encoded = None if inp.encoded is None else compute_encoded_subset(inp.encoded, at[g])
        out.append(JointInput(tuple(inp.rollups[i] for i in members), items, forced, encoded))
    return tuple(out)


def compute_component_budgets(
    components: tuple[JointInput, ...], time_budget_ms: int
) -> tuple[int, ...]:
    """The slot's one time budget shared by its components in proportion to their bundles
    (at least 1 ms each; integer arithmetic, so deterministic). One component gets it all."""
    total = sum(len(c.items) for c in components)
    if total == 0:
        return tuple(time_budget_ms for _ in components)
    return tuple(max(1, time_budget_ms * len(c.items) // total) for c in components)


def pack_slot(inp: JointInput, time_budget_ms: int = 50) -> tuple[ComponentPacking, ...]:
    """Pack a shared slot component by component (``compute_components``) under one time
    budget (``compute_component_budgets``): a component of one rollup with the single-rollup
    packer (``pack_joint`` delegates to it: the same block as ``pack``), one of several with
    the joint kernel. The engine's close and ``blockspace solve`` both pack this way.
    Deterministic in (``inp``, ``time_budget_ms``). Raises as ``pack_joint`` does.

    The slot is encoded once (``compute_joint_arrays``, which checks its shape: the rules of
    ``check_joint_input``) and the components are read from the arrays; a slot that is one
    component of several rollups is packed from those arrays, so the bundles are walked once."""
    arrays = compute_joint_arrays(inp)
    if inp.forced:
        check_joint_forced_feasible(inp)
    components = compute_components(inp, arrays)
    budgets = compute_component_budgets(components, time_budget_ms)
    if len(components) == 1:  # the slot itself: packed from the arrays just built
        return (ComponentPacking(inp, _pack_checked(inp, budgets[0], arrays), budgets[0]),)
    pairs = zip(components, budgets, strict=True)
    return tuple(ComponentPacking(c, _pack_checked(c, b), b) for c, b in pairs)


def _pack_checked(
    inp: JointInput, time_budget_ms: int, arrays: JointArrays | None = None
) -> JointPacking:
    """``pack_joint`` on a component whose shape and forced items are already checked, from
    its encoding ``arrays`` when given. A one-rollup component's single-rollup instance is read
    from its joint encoding (``compute_single_arrays``: the arrays ``pack`` would build, without
    encoding the bundles again)."""
    arrays = compute_joint_arrays(inp) if arrays is None else arrays
    if len(inp.rollups) != 1:
        return joint.pack_joint_arrays(arrays, time_budget_ms)
    single = solver.pack_arrays(compute_single_arrays(inp, arrays), time_budget_ms)
    return joint.compute_joint_from_single(inp, single)


def merge_component_packings(
    inp: JointInput, parts: tuple[ComponentPacking, ...]
) -> JointPacking:
    """The slot's packing from its components' (blocks in ``inp``'s rollup order; revenue and
    bound summed: the components are independent, so the sum of their bounds bounds the slot)."""
    blocks: dict[int, tuple[str, ...]] = {}
    gas: dict[int, int] = {}
    for p in parts:
        blocks.update(p.packing.included_by_rollup)
        gas.update(p.packing.gas_used_by_rollup)
    by_id = {it.id: it for it in inp.items}
    chosen = [by_id[i] for p in parts for i in p.packing.included]
    solvers = sorted({p.packing.solver for p in parts if p.packing.solver})
    return JointPacking(
        included_by_rollup=tuple((r.rollup, blocks[r.rollup]) for r in inp.rollups),
        included=tuple(it.id for it in compute_joint_order(chosen)),
        revenue_wei=sum(p.packing.revenue_wei for p in parts),
        gas_used_by_rollup=tuple((r.rollup, gas[r.rollup]) for r in inp.rollups),
        upper_bound_wei=sum(p.packing.upper_bound_wei for p in parts),
        solver="+".join(solvers),
        proven_optimal=all(p.packing.proven_optimal for p in parts),
    )


def compute_joint_payments(
    inp: JointInput, packing: JointPacking, rule: str, time_budget_ms: int = 200
) -> dict[str, int]:
    """What each winner of a shared slot pays under ``rule`` (``first_price`` or ``vcg``)."""
    return payments.compute_joint_payments(inp, packing, rule, time_budget_ms=time_budget_ms)


def compute_kernel_total(payment_rules: Collection[str], joint_slots: bool = True) -> int:
    """How many kernels ``warm_up(payment_rules, joint_slots=joint_slots)`` compiles cold."""
    total = len(solver.PACK_KERNELS) + len(joint.JOINT_KERNELS if joint_slots else ())
    return total + (len(solver.VCG_KERNELS) if PAYMENT_VCG in payment_rules else 0)


def warm_up(
    payment_rules: Collection[str] = PAYMENT_RULES,
    progress: WarmUpProgress | None = None,
    joint_slots: bool = True,
) -> None:
    """Compile the kernels a slot needs (or load them from numba's cache) on tiny instances, so
    no JIT happens inside a slot deadline: the packing's first, then the joint packing of shared
    slots unless ``joint_slots`` is False, then the VCG re-solves when ``payment_rules`` include
    VCG.

    ``progress(done, total)`` is called with 0 when the first kernel starts compiling and after
    each kernel is compiled; when everything loads from the cache it is never called. A cold
    compile takes about 45 s of CPU on the reference machine (80 s with the joint kernels),
    loading about 0.3-1 s.
    """
    vcg = PAYMENT_VCG in payment_rules
    total = compute_kernel_total(payment_rules, joint_slots)
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
        if joint_slots:
            _warm_up_joint(vcg)


def _warm_up_joint(vcg: bool) -> None:
    """The joint kernels on a tiny two-rollup slot (search, then enumeration, then VCG)."""
    rollups = (RollupCapacity(1, 200_000, 120_000), RollupCapacity(2, 150_000))
    items = tuple(
        JointItem(id=f"j{i:02d}", searcher=f"s{i % 3}", bid_wei=1000 + 37 * i,
                  legs=(Leg(1 + i % 2, 21_000 + 1000 * i, (f"k{i % 5}",)),)
                  + ((Leg(2 - i % 2, 30_000, (f"x{i % 4}",)),) if i % 3 == 0 else ()))
        for i in range(solver.EXACT_MAX_ITEMS + 8)
    )  # fmt: skip
    inp = JointInput(rollups, items, forced=frozenset({"j01"}))
    packing = pack_joint(inp, time_budget_ms=1)
    pack_joint(JointInput(rollups, items[:6]), time_budget_ms=1)
    if vcg:
        compute_joint_payments(inp, packing, PAYMENT_VCG, time_budget_ms=1)


def compute_payments(
    inp: PackingInput, packing: Packing, rule: str, time_budget_ms: int = 200
) -> dict[str, int]:
    """What each winner pays under the rollup's payment rule (``first_price`` or ``vcg``)."""
    return payments.compute_payments(inp, packing, rule, time_budget_ms=time_budget_ms)
