"""The proposal a coordinator sends to every member: a block and everything needed to re-derive it.

Wire form (JSON, serialized once and sent as the same bytes to every member)::

    {"kind": "blockspace-proposal", "version": 1,
     "committee_id": "0x<32 bytes>", "rollup": 167001, "slot": 123,
     "block":   {<the block's fields, as in a signed block>},
     "parent":  null | {"header": {<parent block fields without txs>, "tx_hashes": [..]},
                        "signature": "0x<96 bytes: the committee's signature of the parent>"},
     "carried": [<pending public txs carried from the parent, auction.codec.pending_to_json>],
     "log":     [{"seq": "<ms>-<n>", "event": <auction.codec.event_to_json>}, ...],
     "completion": false | true}

The log is the slot's whole intake log in log order (the bid set the header's ``bid_set_root``
commits to). The parent travels as a header plus the committee's signature so a member that was
down can check and adopt a newer parent without having seen it (docs/committee.md). Decoding
refuses anything malformed with ``MalformedProposal``; it checks shapes and types only, the
rules are in ``committee.checks``. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

from auction import codec
from auction.encoding import compute_header_hash
from auction.types import Bid, Block, Cancel, LoggedEvent, PendingTx, PublicTx, Tx
from committee import bls, wire
from committee.errors import MalformedProposal
from committee.records import block_fields_to_json, block_from_json_strict, compute_tx_hashes

PROPOSAL_KIND: Final[str] = "blockspace-proposal"
FORMAT_VERSION: Final[int] = 1


@dataclass(frozen=True, slots=True)
class ParentCertificate:
    """The parent block's header (with its transaction hashes) and the committee's signature."""

    header: Block  # every field but ``txs`` (left empty)
    tx_hashes: tuple[str, ...]
    signature: bytes

    def compute_block_hash(self) -> str:
        """The block hash the header fields imply (to compare with the claimed one)."""
        return compute_header_hash(self.header, self.tx_hashes)


@dataclass(frozen=True, slots=True)
class Proposal:
    """One slot's block for the committee to check and sign."""

    committee_id: bytes
    rollup: int
    slot: int
    block: Block
    parent: ParentCertificate | None
    carried: tuple[PendingTx, ...]
    log: tuple[LoggedEvent, ...]
    # A request to complete a block that some members already signed but that missed its
    # signing deadline: members sign it late (still only as a child of their head).
    completion: bool = False


def parent_certificate_to_json(cert: ParentCertificate) -> dict[str, Any]:
    header = block_fields_to_json(cert.header)
    del header["txs"]
    header["tx_hashes"] = list(cert.tx_hashes)
    return {"header": header, "signature": "0x" + cert.signature.hex()}


def compute_parent_certificate(block: Block, signature: bytes) -> ParentCertificate:
    """The certificate of a signed block, as the next proposal carries it."""
    header = dataclasses.replace(block, txs=())  # the header: every field but the txs
    return ParentCertificate(header, tuple(compute_tx_hashes(block)), signature)


def encode_proposal(p: Proposal) -> bytes:
    """The proposal's wire bytes (one serialization, sent to every member)."""
    return orjson.dumps(
        {
            "kind": PROPOSAL_KIND,
            "version": FORMAT_VERSION,
            "committee_id": "0x" + p.committee_id.hex(),
            "rollup": p.rollup,
            "slot": p.slot,
            "block": block_fields_to_json(p.block),
            "parent": parent_certificate_to_json(p.parent) if p.parent else None,
            "carried": [codec.pending_to_json(c) for c in p.carried],
            "log": [{"seq": e.seq, "event": codec.event_to_json(e.event)} for e in p.log],
            "completion": p.completion,
        }
    )


# --- decoding ---------------------------------------------------------------------------------

_TOP_KEYS = {
    "kind", "version", "committee_id", "rollup", "slot", "block", "parent", "carried", "log",
    "completion",
}


_U64 = (1 << 64) - 1
_U256 = (1 << 256) - 1


def _is_int(v: object, maximum: int = _U256) -> bool:
    # Amounts and fees fit 256 bits; slots, times, gas and nonces 64 (what intake can produce).
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= maximum


def _is_u64(v: object) -> bool:
    return _is_int(v, _U64)


def _is_opt_u64(v: object) -> bool:
    return v is None or _is_u64(v)


_HASH = re.compile(r"0x[0-9a-f]{64}")


def _is_hash(v: object) -> bool:
    # Hashes go into the roots as bytes (bytes.fromhex): lowercase 0x-hex of 32 bytes only.
    return isinstance(v, str) and _HASH.fullmatch(v) is not None


def _check_tx(t: Tx) -> None:
    # Codec trusts its input; a member must not, so pin the types the rules compute with.
    if not (
        isinstance(t.raw, bytes)
        and _is_hash(t.hash)
        and isinstance(t.sender, str)
        and (t.to is None or isinstance(t.to, str))
        and _is_u64(t.nonce)
        and _is_int(t.gas_limit)
        and _is_int(t.priority_fee_wei)
        and _is_int(t.max_fee_wei)
        and _is_int(t.tx_type)
        and (t.chain_id is None or _is_int(t.chain_id))
        and all(isinstance(k, str) for k in t.access_keys)
    ):
        raise ValueError("a transaction field has the wrong type")


def _check_event(ev: Bid | Cancel | PublicTx) -> None:
    if isinstance(ev, Bid):
        if not (
            _is_u64(ev.rollup)
            and _is_u64(ev.slot)
            and _is_int(ev.bid_wei)
            and _is_u64(ev.gas)
            and _is_u64(ev.received_ms)
            and _is_hash(ev.bid_id)
            and isinstance(ev.searcher, str)
            and isinstance(ev.bundle_hash, str)
            and (ev.replacement_uuid is None or isinstance(ev.replacement_uuid, str))
            and all(isinstance(h, str) for h in ev.reverting_tx_hashes)
            and _is_opt_u64(ev.min_timestamp)
            and _is_opt_u64(ev.max_timestamp)
            and isinstance(ev.explicit_bid, bool)
            and isinstance(ev.evidence.signature, str)
        ):
            raise ValueError("a bid field has the wrong type")
        for t in ev.txs:
            _check_tx(t)
    elif isinstance(ev, PublicTx):
        if not (_is_u64(ev.rollup) and _is_u64(ev.received_ms) and isinstance(ev.protected, bool)):
            raise ValueError("a public tx field has the wrong type")
        _check_tx(ev.tx)
    elif not (
        _is_u64(ev.rollup)
        and _is_u64(ev.received_ms)
        and isinstance(ev.searcher, str)
        and isinstance(ev.replacement_uuid, str)
        and isinstance(ev.evidence.signature, str)
        and _is_opt_u64(ev.slot)
    ):
        raise ValueError("a cancel field has the wrong type")


def _parent_from_json(value: Any) -> ParentCertificate | None:
    if value is None:
        return None
    d = wire.obj(value, "parent")
    wire.exact_keys(d, {"header", "signature"}, "parent.")
    header_doc = wire.obj(wire.get(d, "header", "parent."), "parent.header")
    header = block_from_json_strict(header_doc, prefix="parent.header.", with_txs=False)
    tx_hashes = wire.array(
        wire.get(header_doc, "tx_hashes", "parent.header."), "parent.header.tx_hashes",
        wire.hash_hex,
    )
    signature = wire.hex_bytes(
        wire.get(d, "signature", "parent."), "parent.signature", bls.SIGNATURE_LENGTH
    )
    return ParentCertificate(header, tuple(tx_hashes), signature)


@dataclass(frozen=True, slots=True)
class ParsedProposal:
    """A proposal whose header is decoded (``head``: the log and pool still empty) and whose
    log is not yet: a member checks membership, timing and protection on the head first, so a
    proposal it will refuse anyway costs it no decoding of thousands of bids."""

    head: Proposal
    carried_doc: list[Any]
    log_doc: list[Any]

    def decode_rest(self) -> Proposal:
        """Decode the carried pool and the log; raise ``MalformedProposal`` if malformed."""
        return dataclasses.replace(
            self.head,
            carried=_decode_carried(self.carried_doc),
            log=_decode_log(self.log_doc),
        )


def decode_proposal(data: bytes) -> Proposal:
    """Decode a proposal's wire bytes; raise ``MalformedProposal`` on any shape or type error."""
    return parse_proposal(data).decode_rest()


def parse_proposal(data: bytes) -> ParsedProposal:
    """Parse the JSON and decode everything but the log and the carried pool."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise MalformedProposal("the proposal is not JSON") from None
    try:
        d = wire.obj(doc, "proposal")
        wire.exact_keys(d, _TOP_KEYS, "")
        if d.get("kind") != PROPOSAL_KIND:
            raise wire.FieldError("kind", f"must be {PROPOSAL_KIND!r}")
        if d.get("version") != FORMAT_VERSION or isinstance(d.get("version"), bool):
            raise wire.FieldError("version", f"must be {FORMAT_VERSION}")
        committee_id = wire.hex_bytes(wire.get(d, "committee_id"), "committee_id", 32)
        rollup = wire.integer(wire.get(d, "rollup"), "rollup")
        slot = wire.integer(wire.get(d, "slot"), "slot")
        block = block_from_json_strict(wire.obj(wire.get(d, "block"), "block"), prefix="block.")
        parent = _parent_from_json(wire.get(d, "parent"))
        carried_doc = wire.get(d, "carried")
        log_doc = wire.get(d, "log")
        if not isinstance(carried_doc, list) or not isinstance(log_doc, list):
            raise wire.FieldError("log", "log and carried must be arrays")
        completion = d.get("completion", False)
        if not isinstance(completion, bool):
            raise wire.FieldError("completion", "must be true or false")
    except wire.FieldError as exc:
        raise MalformedProposal(f"bad proposal: {exc}", field=exc.field) from None
    head = Proposal(committee_id, rollup, slot, block, parent, (), (), completion)
    return ParsedProposal(head, carried_doc, log_doc)


def _decode_carried(carried_doc: list[Any]) -> tuple[PendingTx, ...]:
    try:
        carried = tuple(codec.pending_from_json(c) for c in carried_doc)
        for c in carried:
            _check_tx(c.tx)
            if not (
                _is_u64(c.arrival_slot) and isinstance(c.seq, str) and isinstance(c.protected, bool)
            ):
                raise ValueError("a carried tx field has the wrong type")
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        raise MalformedProposal("bad proposal: a carried entry is malformed") from None
    return carried


def _decode_log(log_doc: list[Any]) -> tuple[LoggedEvent, ...]:
    log: list[LoggedEvent] = []
    try:
        for entry in log_doc:
            seq = entry["seq"]
            if not isinstance(seq, str):
                raise ValueError("seq must be a string")
            ev = codec.event_from_json(entry["event"])
            _check_event(ev)
            log.append(LoggedEvent(seq, ev))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        raise MalformedProposal("bad proposal: a log entry is malformed") from None
    return tuple(log)
