"""``blockspace committee keygen`` and ``blockspace verify``, run through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli import main
from committee import keyfiles, threshold

VECTOR = Path(__file__).parent / "vectors" / "signed_slot_3_rollups_3_of_4.json"


def test_keygen_writes_checked_files_with_the_default_threshold(tmp_path: Path, capsys) -> None:
    assert main(["committee", "keygen", "--n", "7", "--out", str(tmp_path)]) == 0
    committee = keyfiles.read_committee_file(tmp_path / "committee.json")
    assert (committee.n, committee.t) == (7, 5)
    for i in range(1, 8):
        path = tmp_path / f"member-{i}.share.json"
        assert path.stat().st_mode & 0o777 == 0o600
        share, info = keyfiles.read_share_file(path)  # Feldman-checked on read
        assert share.index == i and info == committee
        assert threshold.verify_share(share, committee.commitments)
    assert "threshold 5" in capsys.readouterr().out


def test_keygen_with_explicit_threshold_and_refusals(tmp_path: Path, capsys) -> None:
    assert main(["committee", "keygen", "--n", "10", "--t", "7", "--out", str(tmp_path)]) == 0
    assert keyfiles.read_committee_file(tmp_path / "committee.json").t == 7
    # Never overwrites a key file; refuses a threshold above n.
    assert main(["committee", "keygen", "--n", "10", "--out", str(tmp_path)]) == 2
    assert main(["committee", "keygen", "--n", "3", "--t", "4", "--out", str(tmp_path / "x")]) == 2
    assert "t must be" in capsys.readouterr().err
    # and a threshold at or below 2n/3, with which n - t liars could sign two branches
    assert main(["committee", "keygen", "--n", "3", "--t", "2", "--out", str(tmp_path / "y")]) == 2
    assert "t > 2n/3" in capsys.readouterr().err


def _vector_files(tmp_path: Path) -> tuple[Path, Path, dict]:
    """The committee file and rollup 167001's signed block of the vector's three-rollup slot
    (its partners are written next to it as partner-<rollup>.json)."""
    vector = json.loads(VECTOR.read_text())
    committee = tmp_path / "committee.json"
    committee.write_text(json.dumps(vector["committee"]))
    *partners, doc = vector["signed_blocks"]
    block = tmp_path / "block.json"
    block.write_text(json.dumps(doc))
    for p in partners:
        (tmp_path / f"partner-{p['rollup']}.json").write_text(json.dumps(p))
    return committee, block, doc


def test_verify_accepts_a_signed_block(tmp_path: Path, capsys) -> None:
    committee, block, doc = _vector_files(tmp_path)
    assert main(["verify", str(block), "--committee", str(committee)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK:") and doc["block_hash"] in out and "[2, 3, 4]" in out
    assert doc["slot_root"] in out and "rollups [10, 8453, 167001]" in out


def test_verify_checks_the_expected_rollups_and_partner_blocks(tmp_path: Path, capsys) -> None:
    committee, block, _ = _vector_files(tmp_path)
    base = ["verify", str(block), "--committee", str(committee)]
    partners = ["--partner", str(tmp_path / "partner-10.json"),
                "--partner", str(tmp_path / "partner-8453.json")]
    assert main([*base, "--rollups", "167001,10,8453", *partners]) == 0
    assert "with partner blocks of rollups [10, 8453]" in capsys.readouterr().out
    # a slot without a rollup the deployment serves, or with one more, is refused
    assert main([*base, "--rollups", "167001,10"]) == 1
    assert main([*base, "--rollups", "167001,10,8453,42161"]) == 1
    assert "slot_rollups" not in capsys.readouterr().out
    # a partner of another slot root: its block changed (its hash no longer matches)
    other = json.loads((tmp_path / "partner-10.json").read_text())
    other["gas_used"] = 1
    (tmp_path / "bad.json").write_text(json.dumps(other))
    assert main([*base, "--partner", str(tmp_path / "bad.json")]) == 1
    assert "partner block of rollup 10" in capsys.readouterr().err
    # the block itself given as its own partner
    assert main([*base, "--partner", str(block)]) == 1
    assert "given twice" in capsys.readouterr().err
    assert main([*base, "--rollups", "ten"]) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"slot": 1001}, "block_hash"),
        ({"signature": "0x" + "a" * 192}, "signature"),
        ({"signers": [2, 3]}, "signers"),
    ],
)
def test_verify_rejects_a_tampered_block(tmp_path: Path, capsys, change, message) -> None:
    committee, block, doc = _vector_files(tmp_path)
    block.write_text(json.dumps({**doc, **change}))
    assert main(["verify", str(block), "--committee", str(committee)]) == 1
    assert "INVALID" in capsys.readouterr().err


def test_verify_rejects_another_committee(tmp_path: Path, capsys) -> None:
    _, block, _ = _vector_files(tmp_path)
    other, _ = threshold.deal(4, 3, b"\x01" * 32)
    path = tmp_path / "other.json"
    keyfiles.write_committee_file(path, other)
    assert main(["verify", str(block), "--committee", str(path)]) == 1
    assert "another committee" in capsys.readouterr().err


def test_verify_unreadable_input_is_a_usage_error(tmp_path: Path, capsys) -> None:
    committee, _, _ = _vector_files(tmp_path)
    (tmp_path / "junk.json").write_text("{not json")
    assert main(["verify", str(tmp_path / "junk.json"), "--committee", str(committee)]) == 2
    assert main(["verify", str(tmp_path / "none.json"), "--committee", str(committee)]) == 2


def test_signer_with_a_bad_share_file_exits_cleanly(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "share.json"
    bad.write_text("{}")
    assert main(["signer", "--share", str(bad), "--port", "0"]) == 2
    assert "blockspace signer" in capsys.readouterr().err


def test_serve_refuses_a_committee_without_one_signer_per_member(tmp_path: Path, capsys) -> None:
    committee, _, _ = _vector_files(tmp_path)
    assert main(["serve", "--committee", str(committee), "--signer", "http://127.0.0.1:1"]) == 2
    assert "give one --signer URL each" in capsys.readouterr().err
    assert main(["serve", "--committee", str(tmp_path / "none.json")]) == 2
    assert "committee file" in capsys.readouterr().err
