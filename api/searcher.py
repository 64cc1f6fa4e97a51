"""A searcher's side of the protocol: signing requests, building bundles, encrypting them.

Used by ``blockspace demo``, the load test and the tests; it is also a reference for client
authors. Signing uses libsecp256k1 through coincurve (an EIP-191 signature is ~50 us).
Encryption to the committee's slot key (``BundleEncryptor``, ``blockspace encrypt``) follows
docs/encryption.md; one encapsulation serves all of a searcher's bundles of a slot.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from coincurve import PrivateKey
from eth_account import Account
from eth_utils import to_checksum_address

from auction.auth import compute_signed_message_hash
from auction.errors import InvalidParams, InvalidRequest
from auction.hashing import keccak256, to_hex
from auction.transactions import decode_transaction
from committee import encryption
from committee.keyfiles import decode_committee_file
from committee.threshold import CommitteeInfo


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


# --- encrypted bundles (docs/encryption.md) ------------------------------------------------------


def committee_from_document(document: bytes | str | Mapping[str, Any]) -> CommitteeInfo:
    """The committee of a ``GET /v1/committee`` answer, fully checked (keys re-derived from the
    commitments, id recomputed), refusing an encryption scheme version this code cannot make."""
    doc = dict(orjson.loads(document) if isinstance(document, bytes | str) else document)
    params = doc.pop("encryption", None)
    if isinstance(params, Mapping) and params.get("version") != encryption.VERSION:
        raise InvalidParams(f"committee wants encryption version {params.get('version')}")
    return decode_committee_file(orjson.dumps(doc))


def bundle_public_fields(request_body: bytes, slot: int, searcher: str | None = None) -> bytes:
    """The public fields of an encrypted bundle: canonical JSON (sorted keys, no spaces) of
    ``slot``, ``maxGas`` (the sum of its transactions' gas limits), ``rollups`` and
    ``replacementUuid`` when the request has them, and ``searcher`` (the address that will sign
    the call carrying it, lower-case hex) when given: bound to the ciphertext, it keeps anyone
    else from submitting a copy as their own. Checks the request is ``eth_sendBundle`` for
    ``slot``."""
    try:
        request = orjson.loads(request_body)
        params = request["params"][0]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        raise InvalidRequest("not an eth_sendBundle request body") from None
    if request.get("method") != "eth_sendBundle" or not isinstance(params, dict):
        raise InvalidRequest("not an eth_sendBundle request body")
    block = params.get("blockNumber")
    try:
        block_slot = int(block, 16) if isinstance(block, str) else None
        txs = [bytes.fromhex(t.removeprefix("0x")) for t in params.get("txs") or []]
    except (ValueError, TypeError, AttributeError):
        raise InvalidParams("bad hex in blockNumber or txs") from None
    if block_slot != slot:
        raise InvalidParams(f"the bundle's blockNumber is not slot {slot}", blockNumber=block)
    if not txs:
        raise InvalidParams("the bundle has no txs")
    # The engine needs a gas bound before opening; the sum of the gas limits is exact.
    fields: dict[str, Any] = {
        "slot": slot,
        "maxGas": sum(decode_transaction(t).gas_limit for t in txs),
    }
    for key in ("rollups", "replacementUuid"):
        if params.get(key) is not None:
            fields[key] = params[key]
    if searcher is not None:
        fields["searcher"] = searcher.lower()
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


@dataclass
class BundleEncryptor:
    """Encrypts one searcher's bundle requests for one slot to the committee's slot identity.

    The first ``encrypt`` pays for the encapsulation (one GT power and one G1 multiplication,
    after ``prepare``);
    every later one only for an AEAD, since all of them share the encapsulation: opening them
    costs the committee one pairing for the lot. Sharing tells nobody more than the searcher's
    signature on each call already does. Randomness comes from ``random_bytes`` (os.urandom).
    """

    committee: CommitteeInfo
    slot: int
    # The address that signs the calls carrying the ciphertexts (a public field; see above).
    searcher: str | None = None
    random_bytes: Callable[[int], bytes] = os.urandom
    # The slot's recipient (hash to G2, e(P, Q)): computed once, ahead of the slot if wanted.
    recipient: encryption.Recipient | None = field(default=None, repr=False)
    _encapsulation: encryption.Encapsulation | None = field(default=None, repr=False)

    def prepare(self) -> encryption.Recipient:
        """Compute the slot's recipient now (a hash to G2 and a pairing, about 2 ms) rather
        than at the first bundle; one per (committee, slot), shareable between encryptors."""
        if self.recipient is None:
            self.recipient = encryption.recipient(
                self.committee.group_public_key, self.committee.committee_id, self.slot
            )
        return self.recipient

    def encrypt(self, request_body: bytes, public_fields: bytes | None = None) -> bytes:
        """The ciphertext of ``request_body`` (the exact eth_sendBundle JSON-RPC body bytes);
        ``public_fields`` default to ``bundle_public_fields(request_body, slot, searcher)``."""
        if public_fields is None:
            public_fields = bundle_public_fields(request_body, self.slot, self.searcher)
        if self._encapsulation is None:
            self._encapsulation = encryption.encapsulate(self.prepare(), self.random_bytes(32))
        # A random 96-bit nonce per bundle: unique under one key with overwhelming odds.
        return encryption.seal(
            self._encapsulation, request_body, public_fields, self.random_bytes(12)
        )


def encrypted_bundle_params(ciphertext: bytes) -> dict[str, Any]:
    """``bs_sendEncryptedBundle`` params for ``ciphertext``: it and the public fields its header
    carries, in the call's wire names (docs/protocol.md, "Encrypted bundles")."""
    fields = orjson.loads(encryption.parse_ciphertext(ciphertext).public_fields)
    params: dict[str, Any] = {
        "ciphertext": to_hex(ciphertext),
        "blockNumber": hex(fields["slot"]),
        "maxGas": fields["maxGas"],
        "searcher": fields.get("searcher"),
    }
    for key in ("rollups", "replacementUuid"):
        if key in fields:
            params[key] = fields[key]
    return params


def ciphertext_to_json(ciphertext: bytes) -> dict[str, Any]:
    """The hex JSON form of a ciphertext (``blockspace encrypt``'s output)."""
    parsed = encryption.parse_ciphertext(ciphertext)
    return {
        "version": encryption.VERSION,
        "committeeId": to_hex(parsed.committee_id),
        "slot": parsed.slot,
        "publicFields": orjson.loads(parsed.public_fields) if parsed.public_fields else None,
        "ciphertext": to_hex(ciphertext),
    }
