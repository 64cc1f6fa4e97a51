"""The demo's first-run compile report (``packer.warm_up``'s progress hook, printed)."""

from __future__ import annotations

import io

from api.demo import CompileReport, compute_kernel_total
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
