"""End to end, with real processes: an engine that drops an acknowledged bid is caught.

Four ``blockspace signer`` processes and an engine process (``faulty_engine``: ``blockspace
serve`` whose store deletes one searcher's bids when it closes a slot). Two searchers bid into
the same slot over HTTP and keep their answers' receipts. The committee signs the slot without
the victim's bid (its members see only the log proposed to them). The victim's receipt, the
signed block and the slot's event list make censorship evidence that ``blockspace evidence
verify`` accepts; the other searcher's, built the same way, is refused (its bid is in the
block's bid set: no fault touched it). The control run starts the same process without the
fault: the same construction is refused for both.

The engine runs with deposits enforced (issue 11, stage 2): a searcher without a deposit is
refused (``insufficient_deposit``) until the operator API credits it, and the operator's bond,
credited at start, is slashed from the victim's evidence through ``POST /v1/evidence`` (once:
the same evidence again is ``evidence_already_applied``); in the control run the engine refuses
the evidence (``event_included``) and the bond stays whole. A member that equivocates is
slashed from its two partials: one from the signed block the engine process published (made by
that member's signer process), the other over another slot root with the same member's share
file (the test plays the member signing a second root; honest signer processes refuse to).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from api.searcher import SearcherKey, bundle_params
from auction.receipts import compute_operator_key, receipt_from_json, verify_receipt
from committee import keyfiles, threshold
from committee.evidence import SignedPartial, compute_equivocation_evidence
from committee.local import SignerProcesses, free_port, write_committee_files
from committee.signing import compute_slot_signing_root
from tests.accountability.faulty_engine import DROP_ENV

pytestmark = [pytest.mark.slow]

ROLLUP = 167_001
BIN = Path(sys.executable).parent / "blockspace"
GWEI = 10**9
OPERATOR = compute_operator_key(bytes([0x5A]) * 32)
TOKEN = "e2e-operator-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
BOND = 32 * 10**18
REPORTER = "0x" + "7e" * 20
VICTIM, HONEST = SearcherKey.from_seed(21), SearcherKey.from_seed(22)


def _bid(http: httpx.Client, k: SearcherKey, slot: int, nonce: int) -> dict[str, Any]:
    raw = k.sign_tx(type=2, chainId=ROLLUP, nonce=nonce, maxPriorityFeePerGas=2 * GWEI,
                    maxFeePerGas=100 * GWEI, gas=50_000, to="0x" + "42" * 20, value=0, data=b"")
    body = k.request("eth_sendBundle", [bundle_params([raw], slot, bid_wei=10**15)])
    answer = http.post("/", content=body, headers={"X-Flashbots-Signature": k.sign_body(body)})
    return answer.json()  # type: ignore[no-any-return]


def _signed_slot(http: httpx.Client, engine: subprocess.Popen[bytes]) -> tuple[dict, dict]:
    """Both searchers bid into one slot until a slot with both bids acknowledged is signed;
    return their two answers."""
    deadline = time.monotonic() + 180
    nonce = 0
    while time.monotonic() < deadline:
        assert engine.poll() is None, "the engine exited"
        head = http.post("/", content=b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}')
        slot = int(head.json()["result"], 16) + 2
        nonce += 1
        answers = [_bid(http, k, slot, nonce) for k in (VICTIM, HONEST)]
        if not all("receipt" in a for a in answers):
            continue  # on a slow machine a bid can miss its slot: try the next one
        while time.monotonic() < deadline:
            r = http.get(f"/v1/blocks/{ROLLUP}/{slot}")
            if r.status_code == 200:
                return answers[0], answers[1]
            if r.json().get("code") == "slot_failed":
                break
            time.sleep(0.25)
    raise AssertionError("no signed slot with both bids within 180 s")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("fault", [True, False], ids=["dropping", "honest"])
def test_an_engine_that_drops_an_acknowledged_bid_is_caught_by_the_receipt(
    tmp_path: Path, fault: bool
) -> None:
    """With the fault, the victim's evidence is valid; without it (the same engine process,
    same bids, same construction), every receipt's event is in the signed slot: refused."""
    committee_path, shares = write_committee_files(tmp_path, 4, 3, seed=bytes([4]) * 32)
    env = {**os.environ, "BLOCKSPACE_SLOT_MS": "1000", "BLOCKSPACE_ROLLUPS": f"[{ROLLUP}]",
           "BLOCKSPACE_SIGNER_OPERATOR": OPERATOR.address}  # members pin the operator
    port = free_port()
    with SignerProcesses(shares, env=env, log_dir=tmp_path) as signers, \
            open(tmp_path / "engine.log", "wb") as engine_log:
        signers.start_all()
        signers.wait_ready(timeout_s=240)
        engine_env = {**env, "BLOCKSPACE_OPERATOR_KEY": "0x" + OPERATOR.secret.hex(),
                      "BLOCKSPACE_DEPOSITS": "true", "BLOCKSPACE_OPERATOR_TOKEN": TOKEN}
        if fault:
            engine_env[DROP_ENV] = VICTIM.address
        engine = subprocess.Popen(
            [sys.executable, "-m", "tests.accountability.faulty_engine", "serve",
             "--port", str(port), "--committee", str(committee_path),
             *(x for url in signers.urls for x in ("--signer", url))],
            env=engine_env, stdout=subprocess.DEVNULL, stderr=engine_log,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=30) as http:
                _wait_up(http, engine)
                info = http.get("/v1/operator").json()
                assert info["operator"] == OPERATOR.address
                _fund(http)
                victim, honest = _signed_slot(http, engine)
            _check_evidence(tmp_path, url, committee_path, victim, honest, fault)
            _check_member_events(tmp_path, url, signers.urls, victim)
            with httpx.Client(base_url=url, timeout=60) as http:
                _check_settlement(http, victim, honest)
                _check_slashing(http, tmp_path, fault)
                if fault:
                    _check_member_slashing(http, shares, victim)
        finally:
            engine.terminate()
            engine.wait(timeout=30)


def _check_member_events(tmp: Path, url: str, signer_urls: list[str], victim: dict) -> None:
    """A member that signed the victim's slot serves its event list: the evidence built from
    it (``--member``) is the one built from the engine's, and the member holds no
    operator-equivocation evidence (the engine proposed each slot once)."""
    slot = receipt_from_json(victim["receipt"]).receipt.slot
    with httpx.Client(base_url=url, timeout=30) as http:
        signed = http.get(f"/v1/blocks/{ROLLUP}/{slot}").json()
    member_url = signer_urls[signed["partials"][0]["index"] - 1]
    built = _run("evidence", "censorship", "--receipt", str(tmp / "victim-answer.json"),
                 "--url", url, "--member", member_url, "--out", str(tmp / "from-member.json"))
    assert built.returncode == 0, built.stderr
    assert orjson.loads((tmp / "from-member.json").read_bytes()) == orjson.loads(
        (tmp / "victim-evidence.json").read_bytes())
    with httpx.Client(base_url=member_url, timeout=30) as http:
        assert http.get("/v1/evidence").json()["evidence"] == []
        missing = http.get(f"/v1/blocks/{ROLLUP}/{slot + 10_000}/events")
        assert missing.status_code == 404 and missing.json()["code"] == "block_not_found"


def _fund(http: httpx.Client) -> None:
    """Deposits enforced: a bid without a deposit is refused; the operator API credits both
    searchers and the operator's bond."""
    head = http.post("/", content=b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}')
    refused = _bid(http, VICTIM, int(head.json()["result"], 16) + 2, 0)
    assert refused["error"]["data"]["code"] == "insufficient_deposit", refused
    for i, k in enumerate((VICTIM, HONEST)):
        answer = http.post("/v1/ledger/deposits", headers=AUTH,
                           json={"address": k.address, "amount_wei": str(10**18), "ref": f"d{i}"})
        assert answer.status_code == 200, answer.text
    answer = http.post("/v1/ledger/bonds", headers=AUTH,
                       json={"operator": True, "amount_wei": str(BOND), "ref": "bond"})
    assert answer.status_code == 200, answer.text
    for member in range(1, 5):
        answer = http.post("/v1/ledger/bonds", headers=AUTH,
                           json={"member": member, "amount_wei": str(BOND), "ref": f"m{member}"})
        assert answer.status_code == 200, answer.text


def _check_member_slashing(http: httpx.Client, shares: list[Path], answer: dict) -> None:
    """Member equivocation through POST /v1/evidence: slashed once, from its two partials."""
    slot = receipt_from_json(answer["receipt"]).receipt.slot
    signed = http.get(f"/v1/blocks/{ROLLUP}/{slot}").json()
    member, honest = signed["partials"][0]["index"], signed["partials"][0]["partial"]
    share, _ = keyfiles.read_share_file(shares[member - 1])
    committee_id = bytes.fromhex(signed["committee_id"][2:])
    other_root = b"\x42" * 32
    other = threshold.partial_sign(share, compute_slot_signing_root(committee_id, slot, other_root))
    evidence = compute_equivocation_evidence(
        committee_id, slot, member,
        SignedPartial(bytes.fromhex(signed["slot_root"][2:]), bytes.fromhex(honest[2:])),
        SignedPartial(other_root, other),
    )
    stake = f"/v1/ledger/balances/member:{member}"
    slashed = http.post("/v1/evidence", json={"evidence": evidence, "reporter": REPORTER})
    assert slashed.status_code == 200, slashed.text
    assert slashed.json()["verdict"]["offender"] == f"member {member}"
    assert int(http.get(stake).json()["balance_wei"]) == BOND - BOND // 10
    again = http.post("/v1/evidence", json={"evidence": evidence, "reporter": REPORTER})
    assert again.json()["code"] == "evidence_already_applied"
    others = http.get("/v1/ledger/stakes").json()["members"]
    assert [m["stake_wei"] for m in others if m["member"] != member] == [str(BOND)] * 3


def _check_settlement(http: httpx.Client, *answers: dict) -> None:
    """Each searcher's payment entries for the signed block of its bid's slot are exactly its
    payments in that block (the engine settles after signing: wait for it)."""
    for answer, k in zip(answers, (VICTIM, HONEST), strict=True):
        slot = receipt_from_json(answer["receipt"]).receipt.slot
        signed = http.get(f"/v1/blocks/{ROLLUP}/{slot}").json()
        owed = sum(int(b["payment_wei"]) for b in signed["bundles"] if b["searcher"] == k.address)
        deadline = time.monotonic() + 30
        while True:
            entries = http.get("/v1/ledger/entries",
                               params={"account": k.address, "limit": 500}).json()["entries"]
            paid = -sum(int(e["amount_wei"]) for e in entries if e["kind"] == "payment"
                        and e["cause"]["block_hash"] == signed["block_hash"])
            if paid == owed or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert paid == owed, (k.address, paid, owed)


def _check_slashing(http: httpx.Client, tmp: Path, fault: bool) -> None:
    """The victim's evidence through POST /v1/evidence: the operator's bond is slashed once
    (with the fault), or the evidence is refused and nothing changes (without)."""
    evidence = orjson.loads((tmp / "victim-evidence.json").read_bytes())
    answer = http.post("/v1/evidence", json={"evidence": evidence, "reporter": REPORTER})
    bond = int(http.get("/v1/ledger/stakes").json()["operator_bond_wei"])
    if not fault:
        assert answer.status_code == 400 and answer.json()["code"] == "event_included"
        assert bond == BOND
        return
    assert answer.status_code == 200, answer.text
    assert answer.json()["verdict"]["offender"] == f"operator {OPERATOR.address}"
    assert bond == BOND - BOND // 10  # the default slash_fraction_bps, 10%
    reward = http.get(f"/v1/ledger/balances/{REPORTER}").json()["balance_wei"]
    assert int(reward) == BOND // 10 // 2
    again = http.post("/v1/evidence", json={"evidence": evidence, "reporter": REPORTER})
    assert again.status_code == 409 and again.json()["code"] == "evidence_already_applied"
    assert int(http.get("/v1/ledger/stakes").json()["operator_bond_wei"]) == bond


def _wait_up(http: httpx.Client, engine: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert engine.poll() is None, "the engine exited"
        try:
            if http.get("/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the engine did not come up")


def _check_evidence(tmp: Path, url: str, committee: Path, victim: dict, honest: dict,
                    fault: bool) -> None:
    # The receipts are the operator's, for the committee, for the bids acknowledged
    for answer in (victim, honest):
        signed = receipt_from_json(answer["receipt"])
        verify_receipt(signed, OPERATOR.address)
        assert signed.receipt.kind == "bid"
    for name, answer in (("victim", victim), ("honest", honest)):
        (tmp / f"{name}-answer.json").write_bytes(orjson.dumps(answer))
        built = _run("evidence", "censorship", "--receipt", str(tmp / f"{name}-answer.json"),
                     "--url", url, "--out", str(tmp / f"{name}-evidence.json"))
        assert built.returncode == 0, built.stderr
    verdict = _run("evidence", "verify", str(tmp / "victim-evidence.json"), "--committee",
                   str(committee), "--operator", OPERATOR.address)
    if fault:
        assert verdict.returncode == 0, verdict.stderr
        assert verdict.stdout.startswith("VALID censorship")
        assert f"offender: operator {OPERATOR.address}" in verdict.stdout
    else:
        assert verdict.returncode == 1 and "event_included" in verdict.stderr, verdict.stderr
    refused = _run("evidence", "verify", str(tmp / "honest-evidence.json"), "--committee",
                   str(committee), "--operator", OPERATOR.address)
    assert refused.returncode == 1 and "event_included" in refused.stderr, refused.stderr
    # The victim's evidence with its receipt moved to another slot is a forgery
    doc = orjson.loads((tmp / "victim-evidence.json").read_bytes())
    doc["receipt"]["slot"] += 1
    (tmp / "moved.json").write_bytes(orjson.dumps(doc))
    moved = _run("evidence", "verify", str(tmp / "moved.json"), "--committee", str(committee))
    assert moved.returncode == 1 and "forged_receipt" in moved.stderr, moved.stderr
