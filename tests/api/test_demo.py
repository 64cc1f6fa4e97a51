"""The demo's first-run compile report (``packer.warm_up``'s progress hook, printed)."""

from __future__ import annotations

import io
import random

import pytest

from api.demo import (
    MAX_DEMO_ROLLUPS,
    POOL,
    CompileReport,
    CrossArbitrageur,
    compute_demo_chain_ids,
    compute_kernel_total,
)
from auction.transactions import decode_transaction
from ordering.joint import JOINT_KERNELS
from ordering.problem import PAYMENT_FIRST_PRICE, PAYMENT_VCG
from ordering.solver import PACK_KERNELS, VCG_KERNELS


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_compile_report_prints_a_line_at_start_and_each_quarter_into_a_pipe() -> None:
    out = io.StringIO()
    clock = _Clock()
    report = CompileReport(out, clock)
    for done in range(25):
        report(done, 24)
    clock.t += 47.4
    report.finish()
    lines = out.getvalue().splitlines()
    assert [line.rsplit(" ", 2)[-2] for line in lines[:-1]] == [
        "0/24", "6/24", "12/24", "18/24", "24/24"
    ]
    assert lines[0].startswith("compiling the solver (first run only, about ")
    assert lines[-1] == "compiled the solver in 47 s; later runs load it from the cache"


def test_compile_report_rewrites_one_line_on_a_terminal() -> None:
    out = _Terminal()
    report = CompileReport(out, _Clock())
    report(0, 2)
    report(1, 2)
    report(2, 2)
    report.finish()
    text = out.getvalue()
    assert text.count("\r") == 3 and text.count("\n") == 2
    assert text.split("\r")[-1].startswith("compiling the solver (first run only, about ")
    assert "2/2 kernels\ncompiled the solver in 0 s" in text


def test_compile_report_is_silent_when_nothing_compiled() -> None:
    out = io.StringIO()
    CompileReport(out, _Clock()).finish()
    assert out.getvalue() == ""


def test_kernel_total_counts_vcg_only_when_a_rollup_uses_it() -> None:
    # the joint kernels too: warm_up compiles what shared slots need by default
    base = len(PACK_KERNELS) + len(JOINT_KERNELS)
    assert compute_kernel_total({PAYMENT_FIRST_PRICE}) == base
    assert compute_kernel_total({PAYMENT_FIRST_PRICE, PAYMENT_VCG}) == base + len(VCG_KERNELS)


def test_demo_rollups_have_distinct_chain_ids_the_default_first() -> None:
    assert compute_demo_chain_ids(167_001, 1) == [167_001]
    ids = compute_demo_chain_ids(167_001, MAX_DEMO_ROLLUPS)
    assert ids[0] == 167_001 and len(set(ids)) == len(ids) == MAX_DEMO_ROLLUPS
    assert compute_demo_chain_ids(10, 3) == [10, 8453, 42161]  # never the default twice
    with pytest.raises(ValueError):
        compute_demo_chain_ids(167_001, MAX_DEMO_ROLLUPS + 1)


def test_cross_arbitrageurs_sign_one_leg_per_chain_on_the_hot_pool() -> None:
    chains = [167_001, 10, 8453]
    arb = CrossArbitrageur(5000, chains, random.Random(3), use_ws=False)
    for params in arb.bundles_for(77, []):
        assert len(params["rollups"]) == 2 and set(params["rollups"]) <= set(chains)
        txs = [decode_transaction(bytes.fromhex(raw[2:])) for raw in params["txs"]]
        assert sorted(t.chain_id for t in txs) == params["rollups"]
        assert all(t.sender == arb.key.address and t.to == POOL for t in txs)
        assert all(t.access_keys for t in txs)  # the hot key single-rollup searchers touch
