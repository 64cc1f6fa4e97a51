"""Operator equivocation: the coordinator's endorsement of each proposal (its operator signature
over committee, slot and slot root), members checking it before anything else and keeping it,
and two endorsed proposals for one slot as evidence that slashes the operator's bond once."""

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
from api.engine import Engine
from auction.errors import EvidenceRefused
from auction.hashing import keccak256
from auction.ledger import OPERATOR_BOND
from auction.presets import MAINNET
from auction.receipts import KIND_BID, Receipt, compute_operator_key, sign_receipt
from committee import threshold
from committee.endorsement import (
    ENVELOPE_MAGIC,
    Endorsement,
    sign_endorsement,
    unwrap_proposal,
    verify_endorsement,
    wrap_proposal,
)
from committee.errors import (
    DoubleSign,
    ForgedProposal,
    MalformedProposal,
    OperatorSignatureMissing,
)
from committee.evidence import (
    KIND_OPERATOR_EQUIVOCATION,
    compute_operator_equivocation_evidence,
    verify_evidence,
)
from committee.member import Member
from committee.proposal import Proposal
from committee.protection import ProtectionStore
from node.escrow import StoreEscrow
from node.metrics import Metrics
from node.settings import Settings
from node.stores.memory import MemoryStore
from tests.committee.conftest import Dealt
from tests.committee.slots import (
    ROLLUP,
    SLOT,
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
)

OPERATOR = compute_operator_key(bytes([21]) * 32)
STRANGER = compute_operator_key(bytes([22]) * 32)
REPORTER = "0x" + "ab" * 20


@pytest.fixture(scope="module")
def dealt() -> Dealt:
    committee, shares = threshold.deal(4, 3, bytes([23]) * 32)
    return Dealt(committee, shares, 0)


@pytest.fixture(scope="module")
def bids() -> list:
    return [signed_bid(key(40 + i), txs=[raw_tx(key(40 + i), nonce=8_000 + i)]) for i in range(3)]


@pytest.fixture(scope="module")
def first(dealt: Dealt, bids: list) -> Proposal:
    return proposal_of(dealt.committee, log_of(bids))


@pytest.fixture(scope="module")
def second(dealt: Dealt, bids: list) -> Proposal:
    """Another valid block for the same slot (one more bid in its log)."""
    extra = signed_bid(key(49), txs=[raw_tx(key(49), nonce=8_009)])
    return proposal_of(dealt.committee, log_of([*bids, extra]))


def endorse(p: Proposal, key_: Any = OPERATOR, *, slot: int | None = None,
            committee_id: bytes | None = None) -> Endorsement:
    slot_proposal = slot_of(p)
    return sign_endorsement(committee_id or p.committee_id, SLOT if slot is None else slot,
                            slot_proposal.compute_slot_root(), key_)


def endorsed(p: Proposal, key_: Any = OPERATOR) -> bytes:
    return wrap_proposal(encode_part(p), endorse(p, key_))


def member_of(dealt: Dealt, path: Path, index: int = 1, *, operator: str | None = None) -> Member:
    return Member(dealt.shares[index - 1], config_of(dealt.committee, index),
                  ProtectionStore(path / f"m{index}.sqlite3"),
                  clock_ms=lambda: after_close(SLOT), operator=operator)


def refusal(doc: Any, dealt: Dealt, **kw: Any) -> str:
    with pytest.raises(EvidenceRefused) as info:
        verify_evidence(orjson.loads(orjson.dumps(doc)), dealt.committee, **kw)
    return info.value.code


# --- the endorsement --------------------------------------------------------------------------


def test_an_endorsement_recovers_its_operator_and_nothing_else(dealt, first) -> None:
    e = endorse(first)
    verify_endorsement(e, OPERATOR.address)
    # Any changed field, another pinned operator, a flipped byte: forged
    for bad in (dataclasses.replace(e, slot=SLOT + 1),
                dataclasses.replace(e, slot_root=keccak256(b"other")),
                dataclasses.replace(e, committee_id=bytes(32)),
                dataclasses.replace(e, operator=STRANGER.address),
                dataclasses.replace(e, signature=e.signature[:5] + b"\x00" + e.signature[6:])):
        with pytest.raises(ForgedProposal):
            verify_endorsement(bad)
    with pytest.raises(ForgedProposal):
        verify_endorsement(e, STRANGER.address)


def test_a_receipt_signature_is_never_an_endorsement(dealt, first) -> None:
    """The two share the EIP-712 domain but not the primary type: a receipt signed over the
    same 32-byte values does not verify as a proposal's endorsement."""
    root = slot_of(first).compute_slot_root()
    receipt = sign_receipt(Receipt(
        committee_id=first.committee_id, rollup=SLOT, slot=SLOT, event_id="0x" + root.hex(),
        kind=KIND_BID, request_hash="0x" + root.hex(), received_ms=0), OPERATOR)
    forged = Endorsement(first.committee_id, SLOT, root, OPERATOR.address, receipt.signature)
    with pytest.raises(ForgedProposal):
        verify_endorsement(forged)


def test_the_envelope_leaves_the_proposal_bytes_as_they_are(first) -> None:
    body = encode_part(first)
    wrapped = wrap_proposal(body, endorse(first))
    (operator, signature), inner = unwrap_proposal(wrapped)
    assert inner == body and operator == OPERATOR.address and len(signature) == 65
    assert unwrap_proposal(body) == (None, body)
    with pytest.raises(MalformedProposal):
        unwrap_proposal(ENVELOPE_MAGIC + b"\x01" * 10)


# --- members check it before anything else ----------------------------------------------------


def test_a_pinned_member_refuses_unendorsed_and_forged_proposals(dealt, first, tmp_path) -> None:
    member = member_of(dealt, tmp_path, operator=OPERATOR.address)
    with pytest.raises(OperatorSignatureMissing):
        member.sign_proposal(encode_part(first))
    with pytest.raises(ForgedProposal):
        member.sign_proposal(endorsed(first, STRANGER))
    # A genuine endorsement of another proposal, replayed on this one: forged
    with pytest.raises(ForgedProposal):
        member.sign_proposal(wrap_proposal(encode_part(first),
                                           endorse(first, slot=SLOT + 1)))
    other_committee = dataclasses.replace(first, committee_id=bytes([5]) * 32)
    with pytest.raises(ForgedProposal):
        member.sign_proposal(wrap_proposal(encode_part(first), endorse(other_committee)))
    # Nothing signed, nothing kept
    assert member.protection.get_signed(dealt.committee.committee_id, SLOT) is None
    assert member.keeping.get_endorsement(SLOT) is None
    reply = member.sign_proposal(endorsed(first))
    assert reply.slot == SLOT
    assert member.keeping.get_endorsement(SLOT) == endorse(first)


def test_a_forged_endorsement_is_refused_before_any_rule(dealt, first, tmp_path) -> None:
    """A proposal that breaks every rule (a tampered block hash, a slot long expired) is refused
    as forged first: the signature is the first check."""
    member = Member(dealt.shares[0], config_of(dealt.committee, 1),
                    ProtectionStore(tmp_path / "late.sqlite3"),
                    clock_ms=lambda: after_close(SLOT) + 10**9, operator=OPERATOR.address)
    with pytest.raises(ForgedProposal):
        member.sign_proposal(endorsed(first, STRANGER))


def test_two_proposals_for_one_slot_make_evidence_at_the_member(dealt, first, second,
                                                                tmp_path) -> None:
    member = member_of(dealt, tmp_path, operator=OPERATOR.address)
    member.sign_proposal(endorsed(first))
    # The same proposal again (a retry, a completion): no evidence
    member.sign_proposal(endorsed(first))
    assert member.keeping.list_evidence() == []
    with pytest.raises(DoubleSign):
        member.sign_proposal(endorsed(second))
    [doc] = member.keeping.list_evidence()
    verdict = verify_evidence(doc, dealt.committee, operator=OPERATOR.address)
    assert verdict.kind == KIND_OPERATOR_EQUIVOCATION
    assert verdict.offender == f"operator {OPERATOR.address}" and verdict.slot == SLOT
    # Either order proves the same offence
    swapped = compute_operator_equivocation_evidence(endorse(second), endorse(first))
    assert verify_evidence(swapped, dealt.committee).evidence_id == verdict.evidence_id


# --- the evidence's refusals ------------------------------------------------------------------


def test_operator_equivocation_refusals(dealt, first, second) -> None:
    a, b = endorse(first), endorse(second)
    doc = compute_operator_equivocation_evidence
    assert refusal(doc(a, a), dealt) == "same_proposal"
    assert refusal(doc(a, endorse(second, slot=SLOT + 1)), dealt) == "wrong_slot"
    foreign = bytes([5]) * 32
    assert refusal(doc(endorse(first, committee_id=foreign),
                       endorse(second, committee_id=foreign)), dealt) == "wrong_committee"
    assert refusal(doc(a, dataclasses.replace(b, signature=a.signature)), dealt) == (
        "forged_proposal")
    # Two operators' proposals are not one operator's equivocation
    assert refusal(doc(a, endorse(second, STRANGER)), dealt) == "forged_proposal"
    # Pinned to another operator: refused
    assert refusal(doc(a, b), dealt, operator=STRANGER.address) == "forged_proposal"
    bad = doc(a, b)
    bad["first"]["operator"] = bad["first"]["operator"].upper().replace("0X", "0x")
    assert refusal(bad, dealt) == "malformed_evidence"
    bad = doc(a, b)
    del bad["second"]["slot_root"]
    assert refusal(bad, dealt) == "malformed_evidence"


# --- slashing ---------------------------------------------------------------------------------


@pytest.fixture
def client(dealt: Dealt) -> Iterator[TestClient]:
    store = MemoryStore()
    engine = Engine(store=store, rollups={ROLLUP: rollup_of()}, preset=MAINNET, slot_ms=2000,
                    clock_ms=lambda: SLOT * 2000, metrics=Metrics(), escrow=StoreEscrow(store),
                    operator_key=OPERATOR)
    settings = Settings(operator_token=SecretStr("t"), rollups=[ROLLUP])
    with TestClient(create_app(settings, engine=engine, committee=dealt.committee)) as c:
        answer = c.post("/v1/ledger/bonds", headers={"authorization": "Bearer t"},
                        json={"operator": True, "amount_wei": str(10**18), "ref": "bond"})
        assert answer.status_code == 200, answer.text
        yield c


def bond(client: TestClient) -> int:
    return int(client.get(f"/v1/ledger/balances/{OPERATOR_BOND}").json()["balance_wei"])


def test_operator_equivocation_slashes_the_bond_once(client, first, second) -> None:
    doc = compute_operator_equivocation_evidence(endorse(first), endorse(second))
    answer = client.post("/v1/evidence", json={"evidence": doc, "reporter": REPORTER})
    assert answer.status_code == 200, answer.text
    assert answer.json()["verdict"]["offender"] == f"operator {OPERATOR.address}"
    assert bond(client) == 10**18 - 10**17
    # Submitted again, in the other order: the same offence, slashed once
    again = client.post("/v1/evidence", json={
        "evidence": compute_operator_equivocation_evidence(endorse(second), endorse(first)),
        "reporter": REPORTER})
    assert again.status_code == 409 and again.json()["code"] == "evidence_already_applied"
    assert bond(client) == 10**18 - 10**17


def test_another_operators_equivocation_is_refused_here(client, first, second) -> None:
    doc = compute_operator_equivocation_evidence(endorse(first, STRANGER),
                                                 endorse(second, STRANGER))
    answer = client.post("/v1/evidence", json={"evidence": doc, "reporter": REPORTER})
    assert answer.status_code == 400 and answer.json()["code"] == "forged_proposal"
    assert bond(client) == 10**18
