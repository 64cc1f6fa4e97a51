"""``blockspace solve`` on a shared slot: several rollups, atomic cross-rollup bundles.

Runs the real CLI as a process (``python -m api.cli`` from this checkout, so a worktree tests
its own code)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.errors import InvalidParams
from auction.instances import parse_joint_instance
from ordering import packer
from ordering.reference import check_joint_packing

ROOT = Path(__file__).resolve().parents[1]

SLOT = {
    "rollups": [
        {"id": 167001, "gas_limit": 1_000_000,
         "policy": {"max_gas_share_per_searcher": 0.5, "reserved_public_gas": 100_000}},
        {"id": 10, "gas_limit": 500_000, "policy": {"max_gas_share_per_searcher": 1.0}},
    ],
    "policy": {"payment_rule": "first_price", "time_budget_ms": 50},
    "bundles": [
        # x1: an arbitrage across both rollups; it shares a pool write with a1 on 167001
        {"id": "x1", "searcher": "0xAB", "bid": "3000000000000000",
         "legs": [{"rollup": 167001, "gas": 250000, "txs": ["0x01"], "nonces": [["0xaa", 7]],
                   "writes": ["pool"]},
                  {"rollup": 10, "gas": 90000, "txs": ["0x02"], "nonces": [["0xaa", 3]],
                   "writes": ["pool"]}]},
        {"id": "a1", "searcher": "0xcd", "bid": "1300000000000000",
         "legs": [{"rollup": 167001, "gas": 250000, "txs": ["0x03"], "writes": ["pool"]}]},
        # b1 writes "pool" on rollup 10: a conflict with x1's leg there
        {"id": "b1", "searcher": "0xef", "bid": "900000000000000",
         "legs": [{"rollup": 10, "gas": 300000, "txs": ["0x04"], "writes": ["pool"]}]},
        # c1 writes "pool" too, but on rollup 167001 it is another key than rollup 10's pool
        {"id": "c1", "searcher": "0xef", "bid": "800000000000000",
         "legs": [{"rollup": 10, "gas": 100000, "txs": ["0x05"], "writes": ["other"]}]},
        {"id": "x9", "searcher": "0x99", "bid": "1",
         "legs": [{"rollup": 167001, "gas": 21000, "txs": ["0x09"]},
                  {"rollup": 10, "gas": 21000, "txs": ["0x0a"]}]},
    ],
    "forced": ["x9"],
}


def run(tmp_path: Path, doc: object) -> tuple[int, dict]:
    path = tmp_path / "slot.json"
    path.write_text(json.dumps(doc))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "api.cli", "solve", str(path)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    return out.returncode, json.loads(out.stdout)


def test_solve_prints_one_block_per_rollup(tmp_path: Path) -> None:
    code, out = run(tmp_path, SLOT)
    assert code == 0, out
    # x1 (3.0e15) beats a1 + b1 (2.2e15); c1 fits beside it on rollup 10; x9 is forced.
    # Block order: bid per total gas (x1 8.8 gwei/gas before c1 8.0).
    assert out["blocks"] == [
        {"rollup": 167001, "included": ["x1", "x9"], "gas_used": 271000},
        {"rollup": 10, "included": ["x1", "c1", "x9"], "gas_used": 211000},
    ]
    assert out["revenue"] == str(3000000000000000 + 800000000000000 + 1)
    assert int(out["upper_bound"]) >= int(out["revenue"])
    assert out["payments"] == {"x1": "3000000000000000", "c1": "800000000000000", "x9": "1"}
    assert isinstance(out["seconds"], float)


def test_solve_vcg_payments(tmp_path: Path) -> None:
    doc = {**SLOT, "policy": {"payment_rule": "vcg", "time_budget_ms": 20}}
    code, out = run(tmp_path, doc)
    assert code == 0, out
    # Without x1 the best is a1 + b1 + c1 + x9: x1 pays 1.3e15 + 0.9e15 (its externality)
    assert out["payments"] == {"x1": "2200000000000000", "c1": "0", "x9": "0"}


def test_infeasible_forced_set_is_an_error(tmp_path: Path) -> None:
    code, out = run(tmp_path, {**SLOT, "forced": ["x1", "b1"]})
    assert code == 1 and out["error"]["code"] == "infeasible_instance"


def test_leg_on_an_unknown_rollup_is_an_error(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(SLOT))
    bad["bundles"][0]["legs"][1]["rollup"] = 42
    code, out = run(tmp_path, bad)
    assert code == 1 and out["error"]["code"] == "leg_unknown_rollup"


def test_malformed_slot_is_invalid_params(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(SLOT))
    bad["bundles"][0]["legs"] = []
    code, out = run(tmp_path, bad)
    assert code == 1 and out["error"]["code"] == "invalid_params"


@pytest.mark.parametrize(
    "doc",
    [
        {"rollups": []},
        {"rollups": [{"id": 1}], "bundles": []},
        {"rollups": [{"id": 1, "gas_limit": 10, "policy": {"reserved_public_gas": 10}}],
         "bundles": []},
        {"rollups": [{"id": 1, "gas_limit": 10}], "bundles": [{"id": "a", "bid": "1"}]},
        {"rollups": [{"id": 1, "gas_limit": 10}],
         "bundles": [{"id": "a", "bid": "1", "legs": [{"rollup": 1, "gas": 0}]}]},
        {"rollups": [{"id": 1, "gas_limit": 10}],
         "bundles": [{"id": "a", "bid": "1", "legs": [{"rollup": 1, "gas": 1, "txs": [1]}]}]},
        {"rollups": [{"id": 1, "gas_limit": 10}], "policy": {"payment_rule": "dutch"},
         "bundles": []},
        {"rollups": [{"id": -1, "gas_limit": 10}], "bundles": []},
    ],
)  # fmt: skip
def test_bad_slots_are_refused(doc: dict) -> None:
    with pytest.raises(InvalidParams):
        parse_joint_instance(doc)


def _legs(draw: st.DrawFn, rollups: list[int]) -> list[dict]:
    on = draw(st.lists(st.sampled_from(rollups), min_size=1, max_size=3, unique=True))
    return [{"rollup": r, "gas": draw(st.integers(1, 400_000)),
             "writes": draw(st.lists(st.sampled_from(["p", "q", "r"]), max_size=2)),
             "nonces": [[draw(st.sampled_from(["0xa", "0xb"])), draw(st.integers(0, 2))]]}
            for r in on]  # fmt: skip


@st.composite
def slot_documents(draw: st.DrawFn) -> dict:
    rollups = [1, 10, 167001][: draw(st.integers(1, 3))]
    bundles = [{"id": f"b{i}", "searcher": f"0x{draw(st.integers(0, 3))}",
                "bid": str(draw(st.integers(0, 10**18))), "legs": _legs(draw, rollups)}
               for i in range(draw(st.integers(0, 24)))]  # fmt: skip
    return {"rollups": [{"id": r, "gas_limit": 1_000_000,
                         "policy": {"max_gas_share_per_searcher": draw(st.sampled_from([0.5, 1]))}}
                        for r in rollups],
            "policy": {"time_budget_ms": 2}, "bundles": bundles}  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(slot_documents())
def test_parsed_slots_pack_atomically(doc: dict) -> None:
    # What solve packs (same parser, same packer): every cross-rollup bundle is in all of its
    # rollups' blocks or in none, and every other rule holds
    inst = parse_joint_instance(doc)
    p = packer.pack_joint(inst.inp, inst.time_budget_ms)
    check_joint_packing(inst.inp, p)
