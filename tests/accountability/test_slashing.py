"""``POST /v1/evidence``: valid evidence slashes the offender's stake once, credits the reporter;
invalid evidence, evidence for another committee and the same offence again change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from api.app import create_app
from api.engine import Engine
from auction.hashing import keccak256
from auction.ledger import BURNED, compute_member_account
from auction.presets import MAINNET, Rollup
from committee import threshold
from committee.evidence import SignedPartial, compute_equivocation_evidence
from committee.signing import compute_slot_signing_root
from node.escrow import StoreEscrow
from node.metrics import Metrics
from node.settings import Settings
from node.stores.memory import MemoryStore
from tests.factories import CHAIN

pytestmark = pytest.mark.timeout(120)

TOKEN = "operator-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
SLOT = 5_000
STAKE = 10**18
REPORTER = "0x" + "ee" * 20


@pytest.fixture(scope="module")
def dealt() -> tuple[threshold.CommitteeInfo, list[threshold.KeyShare]]:
    return threshold.deal(4, 3, bytes([7]) * 32)


def equivocation(committee: threshold.CommitteeInfo, shares: list, member: int,
                 *, swap: bool = False) -> dict[str, Any]:
    """Member ``member``'s partials over two different slot roots of one slot."""
    share = shares[member - 1]
    partials = [
        SignedPartial(root, threshold.partial_sign(
            share, compute_slot_signing_root(committee.committee_id, SLOT, root)))
        for root in (keccak256(b"first root"), keccak256(b"second root"))
    ]
    if swap:
        partials.reverse()
    return compute_equivocation_evidence(committee.committee_id, SLOT, member, *partials)


@pytest.fixture
def client(dealt: Any) -> Iterator[TestClient]:
    store = MemoryStore()
    engine = Engine(store=store, rollups={CHAIN: Rollup(CHAIN)}, preset=MAINNET, slot_ms=2000,
                    clock_ms=lambda: SLOT * 2000, metrics=Metrics(), escrow=StoreEscrow(store))
    settings = Settings(operator_token=SecretStr(TOKEN), slash_fraction_bps=1000,
                        reporter_share_bps=5000)
    with TestClient(create_app(settings, engine=engine, committee=dealt[0])) as c:
        for member in range(1, 5):
            answer = c.post("/v1/ledger/bonds", headers=AUTH,
                            json={"member": member, "amount_wei": str(STAKE), "ref": f"m{member}"})
            assert answer.status_code == 200
        c.post("/v1/ledger/bonds", headers=AUTH,
               json={"operator": True, "amount_wei": str(STAKE), "ref": "bond"})
        yield c


def stake_of(client: TestClient, member: int) -> int:
    doc = client.get(f"/v1/ledger/balances/{compute_member_account(member)}").json()
    return int(doc["balance_wei"])


def entry_count(client: TestClient) -> int:
    return len(client.get("/v1/ledger/entries", params={"limit": 500}).json()["entries"])


def test_equivocation_slashes_the_member_once(client, dealt):
    answer = client.post("/v1/evidence",
                         json={"evidence": equivocation(*dealt, 3), "reporter": REPORTER})
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["verdict"]["offender"] == "member 3"
    slashed = STAKE // 10
    assert stake_of(client, 3) == STAKE - slashed
    assert int(client.get(f"/v1/ledger/balances/{REPORTER}").json()["balance_wei"]) == slashed // 2
    assert {e["cause"]["evidence_id"] for e in doc["entries"]} == {doc["verdict"]["evidence_id"]}
    assert [e["kind"] for e in doc["entries"]] == ["slash", "reward", "burn"]
    # The same offence again, even proven with its partials swapped: refused, nothing changed
    before = entry_count(client)
    again = client.post("/v1/evidence", json={"evidence": equivocation(*dealt, 3, swap=True),
                                              "reporter": REPORTER})
    assert again.status_code == 409 and again.json()["code"] == "evidence_already_applied"
    assert stake_of(client, 3) == STAKE - slashed and entry_count(client) == before
    # The read API shows it
    stakes = client.get("/v1/ledger/stakes").json()
    assert [m["stake_wei"] for m in stakes["members"]] == [
        str(STAKE), str(STAKE), str(STAKE - slashed), str(STAKE)]
    assert stakes["operator_bond_wei"] == str(STAKE)
    [slashing] = client.get("/v1/ledger/slashings").json()["slashings"]
    assert slashing["evidence_id"] == doc["verdict"]["evidence_id"]
    assert slashing["offender"] == compute_member_account(3)
    assert int(client.get(f"/v1/ledger/balances/{BURNED}").json()["balance_wei"]) == (
        slashed - slashed // 2)


def test_invalid_evidence_changes_nothing(client, dealt):
    before = entry_count(client)
    bad = equivocation(*dealt, 2)
    bad["second"]["partial"] = bad["first"]["partial"]  # not the member's signature of root 2
    answer = client.post("/v1/evidence", json={"evidence": bad, "reporter": REPORTER})
    assert answer.status_code == 400 and answer.json()["code"] == "partial_does_not_verify"
    same = equivocation(*dealt, 2)
    same["second"] = same["first"]
    answer = client.post("/v1/evidence", json={"evidence": same, "reporter": REPORTER})
    assert answer.json()["code"] == "same_signing_root"
    answer = client.post("/v1/evidence", json={"evidence": {"kind": "x"}, "reporter": REPORTER})
    assert answer.status_code == 400 and answer.json()["code"] == "malformed_evidence"
    answer = client.post("/v1/evidence", json={"evidence": equivocation(*dealt, 2)})
    assert answer.json()["code"] == "invalid_account"
    assert stake_of(client, 2) == STAKE and entry_count(client) == before


def test_evidence_for_another_committee_is_refused(client):
    other = threshold.deal(4, 3, bytes([8]) * 32)
    answer = client.post("/v1/evidence",
                         json={"evidence": equivocation(*other, 1), "reporter": REPORTER})
    assert answer.status_code == 400 and answer.json()["code"] == "wrong_committee"
    assert stake_of(client, 1) == STAKE


def test_a_server_without_a_committee_takes_no_evidence(dealt):
    engine = Engine(store=MemoryStore(), rollups={CHAIN: Rollup(CHAIN)}, preset=MAINNET,
                    slot_ms=2000, clock_ms=lambda: SLOT * 2000, metrics=Metrics())
    with TestClient(create_app(Settings(), engine=engine)) as c:
        answer = c.post("/v1/evidence",
                        json={"evidence": equivocation(*dealt, 1), "reporter": REPORTER})
        assert answer.status_code == 404 and answer.json()["code"] == "no_committee"
