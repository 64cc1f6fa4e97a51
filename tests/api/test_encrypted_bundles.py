"""The searcher's side of encrypted bids: GET /v1/committee, BundleEncryptor, blockspace encrypt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.cli import main as cli_main
from api.engine import Engine
from api.searcher import (
    BundleEncryptor,
    bundle_public_fields,
    ciphertext_to_json,
    committee_from_document,
    cross_bundle_params,
)
from auction.errors import InvalidParams, InvalidRequest
from committee import encryption, keyfiles, threshold
from committee.encryption_errors import WrongSlot
from tests.factories import CHAIN, key, tx

SLOT = 1_005
BIN = Path(sys.executable).parent / "blockspace"


@pytest.fixture(scope="module")
def dealt() -> tuple[threshold.CommitteeInfo, list[threshold.KeyShare]]:
    return threshold.deal(4, 3, bytes(range(32)))


def _opener(dealt, slot: int = SLOT) -> encryption.Opener:
    committee, shares = dealt
    key_shares = {s.index: encryption.key_share(s, slot) for s in shares[1:]}
    return encryption.Opener(
        committee, slot, encryption.combine_key_shares(committee, slot, key_shares)
    )


def _request(slot: int = SLOT, *, uuid: str | None = None, gas: int = 50_000) -> bytes:
    searcher = key(7)
    legs = {
        CHAIN: [tx(searcher, gas=gas), tx(searcher, gas=30_000)],
        10: [tx(searcher, chain_id=10)],
    }
    params = cross_bundle_params(legs, slot, bid_wei=10**15, replacement_uuid=uuid)
    return searcher.request("eth_sendBundle", [params])


def test_committee_endpoint_publishes_what_encryption_needs(engine: Engine, dealt):
    committee, _ = dealt
    with TestClient(create_app(engine=engine, committee=committee)) as client:
        answer = client.get("/v1/committee")
    assert answer.status_code == 200
    document = answer.json()
    assert document["encryption"]["version"] == encryption.VERSION
    assert document["encryption"]["identity_dst"] == encryption.IBE_DST.decode()
    assert committee_from_document(answer.content) == committee


def test_committee_endpoint_without_a_committee_is_404(client: TestClient):
    answer = client.get("/v1/committee")
    assert answer.status_code == 404
    assert answer.json()["code"] == "no_committee"


def test_encrypted_bundles_open_to_the_request_and_its_public_fields(dealt):
    committee, _ = dealt
    encryptor = BundleEncryptor(committee, SLOT, searcher=key(7).address)
    bodies = [_request(uuid="4c3f7c5e-0d9a-4c1e-9d11-5a4b0f1e2d3c"), _request(gas=60_000)]
    ciphertexts = [encryptor.encrypt(body) for body in bodies]
    opener = _opener(dealt)
    opened = [opener.open(ct) for ct in ciphertexts]
    assert [o.payload for o in opened] == bodies
    # One encapsulation for the searcher's bundles of the slot: one pairing to open them all.
    assert opener.decapsulations == 1
    public = orjson.loads(opened[0].public_fields)
    assert public == {
        "maxGas": 50_000 + 30_000 + 21_000,
        "replacementUuid": "4c3f7c5e-0d9a-4c1e-9d11-5a4b0f1e2d3c",
        "rollups": sorted([CHAIN, 10]),
        "searcher": key(7).address.lower(),
        "slot": SLOT,
    }
    assert orjson.loads(opened[1].public_fields)["maxGas"] == 60_000 + 30_000 + 21_000
    as_json = ciphertext_to_json(ciphertexts[0])
    assert as_json["slot"] == SLOT and as_json["publicFields"] == public
    assert bytes.fromhex(as_json["ciphertext"][2:]) == ciphertexts[0]


def test_another_slots_key_does_not_open_them(dealt):
    committee, _ = dealt
    ct = BundleEncryptor(committee, SLOT).encrypt(_request())
    with pytest.raises(WrongSlot):
        _opener(dealt, SLOT + 1).open(ct)


def test_public_fields_refuse_a_request_that_is_not_a_bundle_for_the_slot():
    with pytest.raises(InvalidParams):
        bundle_public_fields(_request(SLOT), SLOT + 1)
    with pytest.raises(InvalidRequest):
        bundle_public_fields(b'{"method":"eth_callBundle","params":[{}]}', SLOT)
    with pytest.raises(InvalidRequest):
        bundle_public_fields(b"not json", SLOT)
    with pytest.raises(InvalidParams):
        bundle_public_fields(
            b'{"method":"eth_sendBundle","params":[{"txs":[],"blockNumber":"0x3ed"}]}', SLOT
        )


def test_a_newer_scheme_version_is_refused(dealt):
    committee, _ = dealt
    document = orjson.loads(keyfiles.encode_committee_file(committee))
    document["encryption"] = {"version": encryption.VERSION + 1}
    with pytest.raises(InvalidParams):
        committee_from_document(document)


def test_blockspace_encrypt_writes_a_ciphertext_that_opens(dealt, tmp_path: Path, capsys):
    committee, _ = dealt
    committee_file = tmp_path / "committee.json"
    committee_file.write_text(keyfiles.encode_committee_file(committee))
    request_file = tmp_path / "bundle.json"
    body = _request()
    request_file.write_bytes(body)
    out = tmp_path / "ct.json"
    args = ["encrypt", str(request_file), "--committee", str(committee_file)]
    assert cli_main([*args, "--searcher", key(7).address, "-o", str(out)]) == 0
    written = orjson.loads(out.read_text())
    assert written["slot"] == SLOT and written["committeeId"] == "0x" + committee.committee_id.hex()
    assert written["publicFields"]["searcher"] == key(7).address.lower()
    assert _opener(dealt).open(bytes.fromhex(written["ciphertext"][2:])).payload == body
    # To stdout, with the slot given and disagreeing with the bundle: refused, exit 2.
    assert (
        cli_main(["encrypt", str(request_file), "--committee", str(committee_file), "--slot", "7"])
        == 2
    )
    assert "blockNumber" in capsys.readouterr().err
    assert (
        cli_main(["encrypt", str(tmp_path / "missing.json"), "--committee", str(committee_file)])
        == 2
    )


@pytest.mark.slow
def test_blockspace_encrypt_fetches_the_committee_from_a_server(dealt, tmp_path: Path):
    """The console script against a real server publishing its committee file."""
    from api.demo import free_port

    committee, _ = dealt
    committee_file = tmp_path / "committee.json"
    committee_file.write_text(keyfiles.encode_committee_file(committee))
    port = free_port()
    script = (
        "import uvicorn, sys\n"
        "from api.app import create_app\n"
        "from api.engine import Engine\n"
        "from auction.presets import MAINNET, Rollup\n"
        "from committee.keyfiles import read_committee_file\n"
        "from node.metrics import Metrics\n"
        "from node.stores.memory import MemoryStore\n"
        f"engine = Engine(store=MemoryStore(), rollups={{{CHAIN}: Rollup({CHAIN})}}, "
        "preset=MAINNET, slot_ms=1000, metrics=Metrics())\n"
        f"app = create_app(engine=engine, committee=read_committee_file({str(committee_file)!r}))\n"
        f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning')\n"
    )
    server = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    try:
        import time

        import httpx

        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/committee", timeout=1.0)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        request_file = tmp_path / "bundle.json"
        body = _request()
        request_file.write_bytes(body)
        out = subprocess.run(
            [str(BIN), "encrypt", str(request_file), "--committee", f"http://127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        ct = bytes.fromhex(orjson.loads(out.stdout)["ciphertext"][2:])
        assert _opener(dealt).open(ct).payload == body
    finally:
        server.terminate()
        server.wait(timeout=10)
