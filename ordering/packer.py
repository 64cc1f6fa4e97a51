"""The one entry point the engine and the committee use to pack a slot.

Whatever solver sits behind it, the interface is fixed: ``PackingInput`` in, ``Packing`` out, the
same input always giving the same block.
"""

from __future__ import annotations

from ordering.greedy import pack_greedy
from ordering.problem import Packing, PackingInput


def pack(inp: PackingInput, time_budget_ms: int = 50) -> Packing:
    """Pack one slot. Deterministic in ``inp``."""
    del time_budget_ms  # the greedy packer needs no budget
    return pack_greedy(inp)


def warm_up() -> None:
    """Compile whatever the packer compiles, outside any slot's deadline."""


def compute_payments(inp: PackingInput, packing: Packing, rule: str) -> dict[str, int]:
    """What each winner pays under the rollup's payment rule."""
    if rule == "first_price":
        by_id = {it.id: it for it in inp.items}
        return {i: by_id[i].bid_wei for i in packing.included}
    raise ValueError(f"payment rule {rule!r} is not available")
