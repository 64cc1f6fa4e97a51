"""A member signing a rule-breaking block: the operator-endorsed proposal, the member's partial
over its slot root and a deterministic re-run of the member's checks are evidence anyone can
check offline. A test-only member that signs anything (``faulty_member``) is caught; honest
members refuse the same proposals, and their partials over blocks the rules produce are never
evidence."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from api.app import create_app
from api.cli import main
from api.engine import Engine
from auction.errors import EvidenceRefused
from auction.ledger import compute_member_account
from auction.presets import MAINNET
from auction.receipts import compute_operator_key
from committee import keyfiles, threshold
from committee.endorsement import Endorsement, sign_endorsement, wrap_proposal
from committee.errors import BlockMismatch, InvalidEvidence
from committee.evidence import (
    KIND_MEMBER_RULE_BREAKING,
    compute_rule_breaking_evidence,
    find_broken_rule,
    verify_evidence,
)
from committee.local import write_committee_files
from committee.member import Member
from committee.proposal import Proposal, encode_proposal
from committee.protection import ProtectionStore
from node.escrow import StoreEscrow
from node.metrics import Metrics
from node.settings import Settings
from node.stores.memory import MemoryStore
from tests.accountability.faulty_member import RubberStampMember
from tests.committee.slots import (
    ROLLUP,
    SLOT,
    SLOT_MS,
    after_close,
    config_of,
    encode_part,
    key,
    log_of,
    proposal_of,
    raw_tx,
    rollup_of,
    signed_bid,
    slot_of,
    with_block,
)

OPERATOR = compute_operator_key(bytes([31]) * 32)
REPORTER = "0x" + "cd" * 20
STAKE = 10**18


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[threshold.KeyShare]]:
    committee_path, share_paths = write_committee_files(
        tmp_path_factory.mktemp("keys"), 4, 3, seed=bytes([33]) * 32)
    return committee_path, [keyfiles.read_share_file(p)[0] for p in share_paths]


@pytest.fixture(scope="module")
def committee(keys: Any) -> threshold.CommitteeInfo:
    return keyfiles.read_committee_file(keys[0])


@pytest.fixture(scope="module")
def honest(committee: threshold.CommitteeInfo) -> Proposal:
    bids = [signed_bid(key(60 + i), bid_wei=(i + 1) * 10**15,
                       txs=[raw_tx(key(60 + i), nonce=8_100 + i)]) for i in range(3)]
    return proposal_of(committee, log_of(bids))


def underpaid(p: Proposal) -> Proposal:
    """The honest block with its first winner paying nothing (a well-formed lie)."""
    winners = list(p.block.bundles)
    winners[0] = dataclasses.replace(winners[0], payment_wei=0)
    return with_block(p, dataclasses.replace(p.block, bundles=tuple(winners)))


def without_a_winner_in_the_log(p: Proposal) -> Proposal:
    """The honest block over a log that lacks one of its winners."""
    winner = p.block.bundles[0].bid_id
    log = tuple(e for e in p.log if getattr(e.event, "bid_id", None) != winner)
    return dataclasses.replace(p, log=log)


def endorse(p: Proposal) -> Endorsement:
    return sign_endorsement(p.committee_id, p.slot, slot_of(p).compute_slot_root(), OPERATOR)


def member_of(cls: type[Member], keys: Any, committee: Any, tmp: Path, index: int) -> Member:
    return cls(keys[1][index - 1], config_of(committee, index),
               ProtectionStore(tmp / f"{cls.__name__}-{index}.sqlite3"),
               clock_ms=lambda: after_close(SLOT), operator=OPERATOR.address)


def evidence_of(member: Member, p: Proposal) -> dict[str, Any]:
    """What a reporter holding the endorsed proposal and the member's partial submits."""
    reply = member.sign_proposal(wrap_proposal(encode_part(p), endorse(p)))
    return compute_rule_breaking_evidence(slot_of(p), endorse(p), member.index, reply.partial)


def refusal(doc: Any, committee: Any, **kw: Any) -> str:
    kw.setdefault("rules", config_of(committee))
    with pytest.raises(EvidenceRefused) as info:
        verify_evidence(orjson.loads(orjson.dumps(doc)), committee, **kw)
    return info.value.code


@pytest.mark.parametrize("lie,code", [(underpaid, "block_mismatch"),
                                      (without_a_winner_in_the_log, "invalid_evidence")])
def test_a_member_that_signs_a_rule_breaking_block_is_caught(keys, committee, honest, tmp_path,
                                                             lie, code) -> None:
    bad = lie(honest)
    # The control: an honest member refuses the proposal
    with pytest.raises((BlockMismatch, InvalidEvidence)):
        member_of(Member, keys, committee, tmp_path, 2).sign_proposal(
            wrap_proposal(encode_part(bad), endorse(bad)))
    # The faulty member signs it: its partial, the proposal and the re-run convict it
    doc = evidence_of(member_of(RubberStampMember, keys, committee, tmp_path, 1), bad)
    verdict = verify_evidence(orjson.loads(orjson.dumps(doc)), committee,
                              operator=OPERATOR.address, rules=config_of(committee))
    assert verdict.kind == KIND_MEMBER_RULE_BREAKING and verdict.offender == "member 1"
    assert code in verdict.detail and verdict.slot == SLOT


def test_a_block_the_rules_produce_is_never_evidence(keys, committee, honest, tmp_path) -> None:
    """The same faulty member, and an honest one, signing the honest block: refused."""
    assert find_broken_rule(config_of(committee), slot_of(honest)) is None
    for cls, index in ((RubberStampMember, 1), (Member, 2)):
        doc = evidence_of(member_of(cls, keys, committee, tmp_path, index), honest)
        assert refusal(doc, committee, operator=OPERATOR.address) == "block_follows_rules"


def test_hostile_rule_breaking_documents_are_refused(keys, committee, honest, tmp_path) -> None:
    bad = underpaid(honest)
    liar = member_of(RubberStampMember, keys, committee, tmp_path, 1)
    doc = evidence_of(liar, bad)
    verify_evidence(doc, committee, rules=config_of(committee))  # the document itself is valid
    # Another member named than the one whose partial it is
    assert refusal(doc | {"member": 2}, committee) == "partial_does_not_verify"
    assert refusal(doc | {"member": 9}, committee) == "unknown_member"
    # The partial of another slot root (the member's partial over the honest block)
    honest_partial = evidence_of(member_of(RubberStampMember, keys, committee, tmp_path, 1),
                                 honest)["partial"]
    assert refusal(doc | {"partial": honest_partial}, committee) == "partial_does_not_verify"
    # The honest proposal under the bad block's endorsement and partial
    swapped = doc | {"proposal": orjson.loads(encode_proposal(slot_of(honest)))}
    assert refusal(swapped, committee) == "proposal_mismatch"
    # A forged endorsement, another operator pinned
    forged = orjson.loads(orjson.dumps(doc))
    forged["endorsement"]["slot"] = SLOT + 1
    assert refusal(forged, committee) == "forged_proposal"
    stranger = compute_operator_key(bytes([32]) * 32)
    assert refusal(doc, committee, operator=stranger.address) == "forged_proposal"
    # Another committee's verifier
    other, _ = threshold.deal(4, 3, bytes([34]) * 32)
    assert refusal(doc, other) == "wrong_committee"
    # No rules to re-run with; a streamed (partial-log) proposal; garbage
    assert refusal(doc, committee, rules=None) == "rules_required"
    streamed = orjson.loads(orjson.dumps(doc))
    streamed["proposal"]["version"] = 4
    assert refusal(streamed, committee) == "malformed_evidence"
    assert refusal(doc | {"proposal": [1]}, committee) == "malformed_evidence"
    assert refusal(doc | {"extra": 1}, committee) == "malformed_evidence"


# --- anyone can check it: the command and the ledger ------------------------------------------


def test_evidence_verify_command(keys, committee, honest, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BLOCKSPACE_ROLLUPS", f"[{ROLLUP}]")
    monkeypatch.setenv("BLOCKSPACE_SLOT_MS", str(SLOT_MS))
    monkeypatch.setenv("BLOCKSPACE_GENESIS_MS", "0")
    liar = member_of(RubberStampMember, keys, committee, tmp_path, 3)
    bad, good = tmp_path / "bad.json", tmp_path / "good.json"
    bad.write_bytes(orjson.dumps(evidence_of(liar, underpaid(honest))))
    good.write_bytes(orjson.dumps(evidence_of(liar, honest)))
    assert main(["evidence", "verify", str(bad), "--committee", str(keys[0]),
                 "--operator", OPERATOR.address]) == 0
    out = capsys.readouterr().out
    assert "VALID member_rule_breaking" in out and "member 3" in out
    assert main(["evidence", "verify", str(good), "--committee", str(keys[0])]) == 1
    assert "INVALID block_follows_rules" in capsys.readouterr().err


@pytest.fixture
def client(committee: threshold.CommitteeInfo) -> Iterator[TestClient]:
    store = MemoryStore()
    engine = Engine(store=store, rollups={ROLLUP: rollup_of()}, preset=MAINNET, slot_ms=SLOT_MS,
                    clock_ms=lambda: SLOT * SLOT_MS, metrics=Metrics(), escrow=StoreEscrow(store),
                    operator_key=OPERATOR)
    settings = Settings(operator_token=SecretStr("t"), rollups=[ROLLUP], slot_ms=SLOT_MS)
    with TestClient(create_app(settings, engine=engine, committee=committee)) as c:
        for member in range(1, 5):
            answer = c.post("/v1/ledger/bonds", headers={"authorization": "Bearer t"},
                            json={"member": member, "amount_wei": str(STAKE), "ref": f"m{member}"})
            assert answer.status_code == 200, answer.text
        yield c


def stake(client: TestClient, member: int) -> int:
    doc = client.get(f"/v1/ledger/balances/{compute_member_account(member)}").json()
    return int(doc["balance_wei"])


def test_rule_breaking_slashes_the_member_once(client, keys, committee, honest, tmp_path) -> None:
    liar = member_of(RubberStampMember, keys, committee, tmp_path, 4)
    doc = evidence_of(liar, underpaid(honest))
    answer = client.post("/v1/evidence", json={"evidence": doc, "reporter": REPORTER})
    assert answer.status_code == 200, answer.text
    assert answer.json()["verdict"]["offender"] == "member 4"
    assert stake(client, 4) == STAKE - STAKE // 10
    again = client.post("/v1/evidence", json={"evidence": doc, "reporter": REPORTER})
    assert again.status_code == 409 and again.json()["code"] == "evidence_already_applied"
    assert stake(client, 4) == STAKE - STAKE // 10
    # The honest block signed by the same member: refused, nothing changed
    answer = client.post("/v1/evidence", json={"evidence": evidence_of(liar, honest),
                                               "reporter": REPORTER})
    assert answer.status_code == 400 and answer.json()["code"] == "block_follows_rules"
    assert stake(client, 4) == STAKE - STAKE // 10
