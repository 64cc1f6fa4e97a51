"""The PyPI ``flashbots`` package (web3.py 6) submits bundles that take part in the auction."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.compat.live_server import (
    CHAIN_ID,
    CLIENTS_DIR,
    BlockspaceServer,
    SlotWatcher,
    compute_flashbots_bundle_hash,
    get_bundle_stats,
    run_client,
)

pytestmark = [pytest.mark.compat, pytest.mark.slow]

# Test keys, used by nothing else (the ethers test has its own, so the two never conflict).
AUTH_KEY = "0x" + "a1" * 32
SENDER_KEY = "0x" + "b2" * 32


def test_flashbots_py_bundles_take_part_in_auction(
    flashbots_python: Path,
    blockspace_server: BlockspaceServer,
    slot_watcher: SlotWatcher,
    tmp_path: Path,
) -> None:
    script = tmp_path / "web3_flashbots_client.py"
    shutil.copy(CLIENTS_DIR / script.name, script)
    report = run_client(
        [str(flashbots_python), str(script), blockspace_server.url, AUTH_KEY, SENDER_KEY,
         str(CHAIN_ID)],
        cwd=tmp_path,
        server=blockspace_server,
    )  # fmt: skip
    a, b, c = report["a"], report["b"], report["c"]

    # Verify the client is the one the issue names: flashbots 2 on web3 6
    assert report["versions"]["web3"].startswith("6."), report["versions"]
    # Verify the send path needs nothing from the server but eth_blockNumber (the open slot)
    assert set(report["node_methods"]) == {"eth_blockNumber"}, report["node_methods"]
    # Verify the client's bundle hashes are the Flashbots hash of the bytes it sent
    assert len(a["txs"]) == 2
    assert a["bundle_hash"] == compute_flashbots_bundle_hash(a["txs"])
    assert c["bundle_hash"] == compute_flashbots_bundle_hash(c["txs"])
    # Verify the server's answer to send_raw_bundle is that same hash
    assert b["result"] == {"bundleHash": compute_flashbots_bundle_hash(b["txs"])}
    # Verify the stats call was understood before the slot closed
    assert report["stats_a"]["status"] in ("pending", "won"), report["stats_a"]
    assert report["stats_a"]["isHighPriority"] is True
    # Verify eth_cancelBundle answered something truthy (the client wraps it as bundleHashes)
    assert c["cancel"]["bundleHashes"], c["cancel"]
    # Verify the client's own wait() returned once the target slot had closed
    assert report["head_after_wait"] >= a["target"]

    for slot in sorted({a["target"], b["target"], c["target"]}):
        slot_watcher.wait_closed(slot)
    # The server finds each bundle under the hash the client computed: the hashes agree.
    stats = {
        name: get_bundle_stats(blockspace_server, AUTH_KEY, bundle_hash, target)
        for name, bundle_hash, target in (
            ("a", a["bundle_hash"], a["target"]),
            ("b", b["result"]["bundleHash"], b["target"]),
            ("c", c["bundle_hash"], c["target"]),
        )
    }
    # Nobody else bids in these slots and A and B share no sender nonce: both win.
    for name in ("a", "b"):
        assert stats[name]["status"] == "won", (name, stats[name])
        assert int(stats[name]["paymentWei"]) > 0
        assert stats[name]["sealedByBuildersAt"], stats[name]
    # Verify the cancelled bundle did not take part
    assert stats["c"]["status"] == "cancelled", stats["c"]
