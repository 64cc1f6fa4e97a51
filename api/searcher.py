"""A searcher's side of the protocol: signing requests and building bundles.

Used by ``blockspace demo``, the load test and the tests; it is also a reference for client
authors. Signing uses libsecp256k1 through coincurve (an EIP-191 signature is ~50 us).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from coincurve import PrivateKey
from eth_account import Account
from eth_utils import to_checksum_address

from auction.auth import compute_signed_message_hash
from auction.hashing import keccak256, to_hex


@dataclass
class SearcherKey:
    private_key: bytes
    address: str = ""
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        pub = PrivateKey(self.private_key).public_key.format(compressed=False)[1:]
        self.address = to_hex(keccak256(pub)[12:])

    @classmethod
    def from_seed(cls, seed: int) -> SearcherKey:
        return cls(keccak256(b"blockspace-searcher" + seed.to_bytes(8, "big")))

    def sign_body(self, body: bytes) -> str:
        """The X-Flashbots-Signature header value for ``body``."""
        sig = PrivateKey(self.private_key).sign_recoverable(
            compute_signed_message_hash(body), hasher=None
        )
        return f"{self.address}:0x{sig[:64].hex()}{sig[64] + 27:02x}"

    def request(self, method: str, params: list[Any]) -> bytes:
        return orjson.dumps(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        )

    def ws_frame(self, body: bytes) -> str:
        """A signed websocket frame carrying ``body``."""
        return orjson.dumps({"signature": self.sign_body(body), "body": body.decode()}).decode()

    def subscribe_frame(self, nonce: str, now_ms: int) -> str:
        """The signed websocket frame subscribing a connection to this searcher's bundle events:
        ``nonce`` is the connection's (the answer to ``nonce_request()``), ``now_ms`` the time."""
        body = self.request("bs_subscribe", ["bundles", {"nonce": nonce, "timestampMs": now_ms}])
        return self.ws_frame(body)

    def sign_tx(self, **tx: Any) -> bytes:
        """Sign an Ethereum transaction (dict as eth-account takes it) and return raw bytes."""
        if tx.get("to"):
            tx["to"] = to_checksum_address(tx["to"])
        if tx.get("accessList"):
            tx["accessList"] = [
                {"address": to_checksum_address(e["address"]), "storageKeys": e["storageKeys"]}
                for e in tx["accessList"]
            ]
        signed = Account.sign_transaction(tx, self.private_key)
        return bytes(signed.raw_transaction)


def nonce_request(rid: int | str = "nonce") -> str:
    """The websocket call answering the connection's nonce (an unsigned frame)."""
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": "bs_nonce"}).decode()


def bundle_params(
    txs: list[bytes],
    slot: int,
    *,
    bid_wei: int | None = None,
    replacement_uuid: str | None = None,
    reverting: list[str] | None = None,
    rollups: list[int] | None = None,
) -> dict[str, Any]:
    """``eth_sendBundle`` params. ``txs`` may be of several chains (a cross-rollup bundle, sent
    to ``POST /`` or ``/ws``); ``rollups`` states the chain ids it means to span."""
    p: dict[str, Any] = {"txs": [to_hex(t) for t in txs], "blockNumber": hex(slot)}
    if bid_wei is not None:
        p["bid"] = str(bid_wei)
    if replacement_uuid is not None:
        p["replacementUuid"] = replacement_uuid
    if reverting:
        p["revertingTxHashes"] = reverting
    if rollups is not None:
        p["rollups"] = rollups
    return p


def cross_bundle_params(
    legs: Mapping[int, Sequence[bytes]],
    slot: int,
    *,
    bid_wei: int | None = None,
    replacement_uuid: str | None = None,
    state_rollups: bool = True,
) -> dict[str, Any]:
    """``eth_sendBundle`` params of a cross-rollup bundle: each rollup's signed transactions
    (``legs``: chain id -> raw txs of that chain, in leg order), listed leg after leg in rollup
    order; with ``state_rollups`` the ``rollups`` field names them, so the engine refuses the
    bundle if its transactions say otherwise. The bundle hash covers the txs in this order."""
    txs = [raw for rollup in sorted(legs) for raw in legs[rollup]]
    return bundle_params(
        txs,
        slot,
        bid_wei=bid_wei,
        replacement_uuid=replacement_uuid,
        rollups=sorted(legs) if state_rollups else None,
    )
