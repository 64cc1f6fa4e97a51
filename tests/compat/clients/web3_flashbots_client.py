"""Drive the PyPI ``flashbots`` package, unchanged, against a blockspace server.

Runs in the compat venv (flashbots 2, web3 6), not in the project's:

    python web3_flashbots_client.py URL AUTH_KEY SENDER_KEY CHAIN_ID

Sends three bundles the way the package's README does: A to the open slot (``eth_blockNumber
+ 1``) through ``send_bundle`` (one entry signed by the client, one pre-signed), B to the open
slot through ``send_raw_bundle``, C to the slot after it through ``send_bundle`` with a
``replacementUuid``, then cancelled. It then asks for A's stats, waits with the client's own
``wait()`` for the slot to close, and prints
one JSON report. ``node_methods`` lists the calls web3 made through its ordinary provider; the
flashbots middleware routes the relay methods (eth_sendBundle, ...) around that provider.
"""

from __future__ import annotations

import json
import sys
import uuid
from importlib.metadata import version
from typing import Any

from eth_account import Account
from flashbots import flashbot
from web3 import HTTPProvider, Web3

GWEI = 10**9
ATTEMPTS = 3


class RecordingProvider(HTTPProvider):
    """web3's HTTP provider, noting each JSON-RPC method it is asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.methods: list[str] = []

    def make_request(self, method: Any, params: Any) -> Any:
        self.methods.append(str(method))
        return super().make_request(method, params)


def to_hex(data: bytes) -> str:
    return "0x" + bytes(data).hex()


def is_slot_closed(exc: Exception) -> bool:
    err = exc.args[0] if exc.args else None
    return isinstance(err, dict) and (err.get("data") or {}).get("code") == "slot_closed"


def submit(w3: Web3, send: Any, ahead: int = 1) -> tuple[int, Any]:
    """Send to the slot ``ahead`` of the head (1: the open one); if it closed between
    eth_blockNumber and the send, try the next."""
    for attempt in range(ATTEMPTS):
        target = w3.eth.block_number + ahead
        try:
            return target, send(target)
        except ValueError as exc:
            if attempt + 1 == ATTEMPTS or not is_slot_closed(exc):
                raise
    raise AssertionError("unreachable")


def main() -> None:
    url, auth_key, sender_key, chain = sys.argv[1:5]
    chain_id = int(chain)
    auth = Account.from_key(auth_key)
    sender = Account.from_key(sender_key)
    provider = RecordingProvider(url)
    w3 = Web3(provider)
    flashbot(w3, auth, url)

    def tx(nonce: int) -> dict[str, Any]:
        # The client signs what it is given: chainId, nonce and gas must be there (without
        # nonce it calls eth_getTransactionCount, without gas eth_estimateGas).
        return {
            "chainId": chain_id,
            "nonce": nonce,
            "gas": 21_000,
            "maxFeePerGas": 2 * GWEI,
            "maxPriorityFeePerGas": GWEI,
            "to": sender.address,
            "value": 0,
            "data": b"",
        }

    def signed(nonce: int) -> bytes:
        return bytes(sender.sign_transaction(tx(nonce)).rawTransaction)

    target_a, resp_a = submit(
        w3,
        lambda t: w3.flashbots.send_bundle(
            [{"signer": sender, "transaction": tx(0)}, {"signed_transaction": signed(1)}],
            target_block_number=t,
        ),
    )
    raw_b = [signed(2)]
    target_b, result_b = submit(w3, lambda t: w3.flashbots.send_raw_bundle(raw_b, t))
    replacement_uuid = str(uuid.uuid4())
    target_c, resp_c = submit(
        w3,
        lambda t: w3.flashbots.send_bundle(
            [{"signer": sender, "transaction": tx(3)}],
            target_block_number=t,
            opts={"replacementUuid": replacement_uuid},
        ),
        ahead=2,  # a slot ahead: the cancel below must reach it open, even on a loaded machine
    )
    cancelled = w3.flashbots.cancel_bundles(replacement_uuid)
    stats_a = w3.flashbots.get_bundle_stats_v2(resp_a.bundle_hash(), target_a)
    resp_a.wait()  # polls eth_blockNumber until the target slot has closed

    report = {
        "versions": {name: version(name) for name in ("flashbots", "web3", "eth-account")},
        "a": {
            "target": target_a,
            "bundle_hash": to_hex(resp_a.bundle_hash()),
            "txs": [to_hex(t["signed_transaction"]) for t in resp_a.bundle],
            "response_type": type(resp_a).__name__,
        },
        "b": {"target": target_b, "txs": [to_hex(t) for t in raw_b], "result": dict(result_b)},
        "c": {
            "target": target_c,
            "bundle_hash": to_hex(resp_c.bundle_hash()),
            "txs": [to_hex(t["signed_transaction"]) for t in resp_c.bundle],
            "replacement_uuid": replacement_uuid,
            "cancel": dict(cancelled),
        },
        "stats_a": dict(stats_a),
        "head_after_wait": w3.eth.block_number,
        "node_methods": provider.methods,
    }
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
