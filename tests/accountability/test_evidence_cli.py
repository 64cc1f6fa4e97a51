"""``blockspace evidence verify`` and ``evidence censorship`` on files: exit 0 valid, 1 refused
(with the stable code), 2 unreadable. The partials come from real share files written the way
``committee keygen`` writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from api.cli import main
from auction.hashing import keccak256, to_hex
from auction.receipts import KIND_BID, Receipt, compute_operator_key, receipt_to_json, sign_receipt
from auction.results import compute_event_id
from auction.slotroot import compute_slot_root
from auction.types import Bid
from committee import keyfiles, threshold
from committee.evidence import SignedPartial, compute_equivocation_evidence
from committee.local import write_committee_files
from committee.records import compute_signed_slot, compute_slot_leaves, signed_block_to_json
from committee.signing import compute_slot_signing_root
from tests.committee.slots import ROLLUP, SLOT, key, log_of, proposal_of, raw_tx, signed_bid

OPERATOR = compute_operator_key(bytes([3]) * 32)

def own_bid(i: int) -> Bid:
    """A signed bid of searcher ``i`` with its own nonce: the shared nonce counter of
    ``tests.committee.slots`` is left alone (other modules' slots depend on its sequence)."""
    return signed_bid(key(i), txs=[raw_tx(key(i), nonce=7_000 + i)])



@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[threshold.KeyShare]]:
    committee_path, share_paths = write_committee_files(
        tmp_path_factory.mktemp("keys"), 4, 3, seed=bytes([9]) * 32)
    return committee_path, [keyfiles.read_share_file(p)[0] for p in share_paths]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _write(path: Path, doc: Any) -> str:
    path.write_bytes(orjson.dumps(doc))
    return str(path)


def test_member_equivocation_from_two_real_partials(tmp_path: Path, keys: Any,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    committee_path, shares = keys
    committee = keyfiles.read_committee_file(committee_path)
    roots = [bytes([1]) * 32, bytes([2]) * 32]
    first, second = (SignedPartial(r, threshold.partial_sign(
        shares[2], compute_slot_signing_root(committee.committee_id, SLOT, r))) for r in roots)
    doc = compute_equivocation_evidence(committee.committee_id, SLOT, 3, first, second)
    code, out, _ = _run(capsys, "evidence", "verify", _write(tmp_path / "eq.json", doc),
                        "--committee", str(committee_path))
    assert code == 0 and out.startswith("VALID member_equivocation")
    assert "offender: member 3" in out and "evidence id: 0x" in out
    same = compute_equivocation_evidence(committee.committee_id, SLOT, 3, first, first)
    code, _, err = _run(capsys, "evidence", "verify", _write(tmp_path / "same.json", same),
                        "--committee", str(committee_path))
    assert code == 1 and err.startswith("INVALID same_signing_root")


def test_censorship_built_from_files_and_verified(tmp_path: Path, keys: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    committee_path, shares = keys
    committee = keyfiles.read_committee_file(committee_path)
    log = log_of([own_bid(i) for i in range(2)])
    victim = own_bid(5)
    block = proposal_of(committee, log).block
    root = compute_slot_signing_root(committee.committee_id, SLOT,
                                     compute_slot_root(compute_slot_leaves([block])))
    partials = tuple((s.index, threshold.partial_sign(s, root)) for s in shares[:3])
    [signed] = compute_signed_slot([block], committee.committee_id,
                                   threshold.combine(partials, 3, 4), partials,
                                   deadline_ms=1, published_ms=2)
    receipt = sign_receipt(Receipt(
        committee_id=committee.committee_id, rollup=ROLLUP, slot=SLOT, event_id=victim.bid_id,
        kind=KIND_BID, request_hash=to_hex(keccak256(victim.evidence.body)),
        received_ms=victim.received_ms), OPERATOR)
    answer = {"jsonrpc": "2.0", "id": 1, "result": {"bundleHash": victim.bundle_hash},
              "receipt": receipt_to_json(receipt)}
    events = {"event_ids": [compute_event_id(e) for e in log]}
    out_path = tmp_path / "evidence.json"
    code, _, err = _run(capsys, "evidence", "censorship",
                        "--receipt", _write(tmp_path / "answer.json", answer),
                        "--block", _write(tmp_path / "block.json", signed_block_to_json(signed)),
                        "--events", _write(tmp_path / "events.json", events),
                        "--out", str(out_path))
    assert code == 0, err
    code, out, err = _run(capsys, "evidence", "verify", str(out_path),
                          "--committee", str(committee_path), "--operator", OPERATOR.address)
    assert code == 0, err
    assert f"offender: operator {OPERATOR.address}" in out
    other = compute_operator_key(bytes([4]) * 32).address
    code, _, err = _run(capsys, "evidence", "verify", str(out_path),
                        "--committee", str(committee_path), "--operator", other)
    assert code == 1 and err.startswith("INVALID wrong_operator")


def test_unreadable_inputs_exit_2(tmp_path: Path, keys: Any,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    committee_path, _ = keys
    (tmp_path / "junk.json").write_text("{not json")
    for file, committee in ((tmp_path / "missing.json", committee_path),
                            (tmp_path / "junk.json", committee_path),
                            (tmp_path / "junk.json", tmp_path / "junk.json")):
        code, _, err = _run(capsys, "evidence", "verify", str(file), "--committee",
                            str(committee))
        assert code == 2 and "cannot read" in err
    (tmp_path / "empty.json").write_text("{}")
    code, _, err = _run(capsys, "evidence", "verify", str(tmp_path / "empty.json"),
                        "--committee", str(committee_path))
    assert code == 1 and err.startswith("INVALID malformed_evidence")
