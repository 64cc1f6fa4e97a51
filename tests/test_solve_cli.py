"""``blockspace solve``: offline packing of a JSON instance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from auction.errors import InvalidParams
from auction.instances import parse_instance

BIN = Path(sys.executable).parent / "blockspace"

INSTANCE = {
    "gas_limit": 1_000_000,
    "policy": {"max_gas_share_per_searcher": 0.5, "reserved_public_gas": 100_000,
               "payment_rule": "first_price", "time_budget_ms": 50},
    "bundles": [
        {"id": "b1", "searcher": "0xAB", "bid": "1200000000000000", "gas": 250000,
         "txs": ["0x01"], "nonces": [["0xaa", 7]], "writes": ["pool"]},
        {"id": "b2", "searcher": "0xcd", "bid": "1300000000000000", "gas": 250000,
         "txs": ["0x02"], "writes": ["pool"]},
        {"id": "b3", "searcher": "0xab", "bid": "900000000000000", "gas": 300000,
         "txs": ["0x03"], "nonces": [["0xaa", 7]]},
        {"id": "b9", "searcher": "0xef", "bid": "1", "gas": 21000, "txs": ["0x09"]},
    ],
    "forced": ["b9"],
}


def run(tmp_path: Path, doc: object) -> tuple[int, dict]:
    path = tmp_path / "instance.json"
    path.write_text(json.dumps(doc))
    out = subprocess.run([str(BIN), "solve", str(path)], capture_output=True, text=True,
                         timeout=120)
    return out.returncode, json.loads(out.stdout)


def test_solve_prints_a_valid_block(tmp_path):
    code, out = run(tmp_path, INSTANCE)
    assert code == 0, out
    # b1 and b2 share the pool, b1 and b3 share a nonce: the best is b2 + b3 (+ forced b9).
    assert set(out["included"]) == {"b2", "b3", "b9"}
    assert out["revenue"] == str(1300000000000000 + 900000000000000 + 1)
    assert out["gas_used"] == 571000
    assert int(out["upper_bound"]) >= int(out["revenue"])
    assert out["payments"] == {"b2": "1300000000000000", "b3": "900000000000000", "b9": "1"}
    assert isinstance(out["seconds"], float)


def test_infeasible_forced_set_is_an_error(tmp_path):
    doc = {**INSTANCE, "forced": ["b1", "b2"]}
    code, out = run(tmp_path, doc)
    assert code == 1 and out["error"]["code"] == "infeasible_instance"


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"gas_limit": -1, "bundles": []},
        {"gas_limit": 10, "bundles": [{"id": "a", "bid": "x", "gas": 1}]},
        {"gas_limit": 10, "bundles": [{"id": "a", "bid": "1", "gas": 1}] * 2},
        {"gas_limit": 10, "policy": {"payment_rule": "dutch"}, "bundles": []},
        {"gas_limit": 10, "policy": {"max_gas_share_per_searcher": 0}, "bundles": []},
        {"gas_limit": 10, "bundles": [{"id": "a", "bid": "1", "gas": 1, "nonces": [[1, 2]]}]},
    ],
)
def test_bad_instances_are_refused(doc):
    with pytest.raises(InvalidParams):
        parse_instance(doc)
