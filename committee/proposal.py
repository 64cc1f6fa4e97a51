"""The proposal a coordinator sends to every member: a slot's blocks and everything needed to
re-derive them.

One proposal per slot, with one *part* per rollup the deployment serves (ascending rollup id);
the committee signs the slot root over every part's block (``auction.slotroot``,
``committee.signing``). Wire form (JSON, serialized once and sent as the same bytes to every
member)::

    {"kind": "blockspace-proposal", "version": 5,
     "committee_id": "0x<32 bytes>", "slot": 123,
     "bundles": [<each cross-rollup bundle of the slot once: auction.codec.bid_to_json of its
                  copy for its first leg's rollup, without "rollup", "txs" and "gas">, ...],
     "parts": [
       {"rollup": 10,
        "block":   {<the block's fields, as in a signed block>},
                   (version 7: "header": {<the same without "bundles" and "txs">} instead,
                    and "streamed": {"count", "digest"}; see STREAMED_VERSION)
        "parent":  null | {"header": {<parent block fields without txs>, "tx_hashes": [..]},
                           "slot_proof": {"leaf_index", "leaf_count", "siblings"},
                           "signature": "0x<96 bytes: the committee's signature of the
                                         parent's slot root>"},
        "carried": [<pending public txs carried from the parent, auction.codec.pending_to_json>],
        "log":     [{"seq": "<ms>-<n>", "event": <auction.codec.event_to_json>}
                    | {"seq": "<ms>-<n>", "cross": <index into "bundles">}
                    | {"seq": "<ms>-<n>", "sealed": "0x<its ciphertext hash>",
                       "opened": <the opened bid's event_to_json without "evidence">}, ...]},
       ...],
     "completion": false | true,
     "sealed": <only for a slot with sealed bids: committee.sealedset.SealedOpening>}

A bid opened from one of the slot's sealed bids (``sealed``) does not repeat its evidence (the
signed encrypted call, ciphertext included: a third of a sealed slot's proposal): it names its
sealed entry by the entry's ciphertext hash (``SealedBid.ciphertext_hash``, the keccak of the
ciphertext, which members re-derive with the entry; one ciphertext once per set), and the
member takes the evidence from the entry it holds. The decoder refuses a name that is no entry
of ``sealed.entries``, an entry named twice, a name whose entry has another bid id or (in a
log) another seq, a set with one ciphertext twice, and an opened bid written inline (one form
for one thing); that the bid is what its entry's ciphertext opens to is
``committee.reopening``'s check, as before. A cross-rollup opened bundle's entry in
``bundles`` names its sealed entry the same way.

A part's log is its rollup's whole intake log of the slot in log order (the bid set its
header's ``bid_set_root`` commits to). A cross-rollup bundle's copy in a log is a reference
(``"cross"``) to the bundle's one entry in ``bundles``: the member builds the copy from it
(``auction.legs.compute_bid_copy``), so every copy of a bundle is the same signed bundle by
construction and its evidence travels, is decoded and is checked once per slot. The decoder
refuses a cross-rollup copy written inline, an entry of ``bundles`` with fewer than two legs, a
reference to a rollup the bundle does not span, two entries with one bid id and an entry no
log refers to. (Version 2 carried every copy inline, its evidence once per copy.) A parent
travels as a header, its proof under its slot's root and the committee's signature of that
root, so a member that was down can check and adopt a newer parent without having seen it
(docs/committee.md). Each part is a ``Proposal``, the per-rollup view every check in
``committee.checks`` takes. Decoding refuses anything malformed with ``MalformedProposal``; it
checks shapes and types only, the rules are in ``committee.checks``. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from auction import codec
from auction.encoding import compute_header_hash
from auction.legs import compute_bid_copy
from auction.presets import MAX_ROLLUPS_PER_BUNDLE
from auction.slotroot import MAX_SLOT_LEAVES, SlotProof, compute_slot_root
from auction.types import (
    Bid,
    Block,
    Cancel,
    Leg,
    LoggedEvent,
    LoggedSealedBid,
    PendingTx,
    PublicTx,
    Tx,
)
from committee import bls, wire
from committee.errors import MalformedProposal
from committee.records import (
    block_fields_to_json,
    block_from_json_strict,
    compute_slot_leaves,
    compute_tx_hashes,
    header_fields_to_json,
    header_from_json_strict,
    slot_proof_from_json,
    slot_proof_to_json,
)
from committee.sealedset import SealedOpening, sealed_opening_from_json, sealed_opening_to_json

PROPOSAL_KIND: Final[str] = "blockspace-proposal"
# 5: opened bids name their sealed entries ("sealed") instead of repeating their evidence;
# 3 wrote them inline (decision 157; checked exactly, as every version: coordinator and
# members are deployed together, decision 75). 3: each cross-rollup bundle once per slot
# ("bundles"), its copies references to it; 2 carried every copy inline; 2 and 3: one proposal
# per slot, a part per rollup; 1 was per rollup.
FORMAT_VERSION: Final[int] = 5
# 7: version 5 whose parts' logs leave out a prefix the members hold from the slot's stream
# (``committee.stream``): each part names that prefix by ``"streamed": {"count", "digest"}``:
# the first ``count`` plaintext entries of its log (every entry but the bids opened from the
# slot's sealed bids, which never stream); the rest of the log, in log order, is the tail. And
# each part carries its block's header (``"header"``: ``committee.records.HEADER_KEYS``, the
# block without ``bundles`` and ``txs``) instead of the block: the member re-runs the slot
# and compares its own blocks with the headers, so the bodies need not travel (decision 166).
# (6 was 7 with whole blocks; 4 was version 3 streamed.)
STREAMED_VERSION: Final[int] = 7
# A cross-rollup bundle's entry in "bundles" leaves out what its first leg gives.
_DERIVED_BUNDLE_KEYS: Final[tuple[str, ...]] = ("rollup", "txs", "gas")


@dataclass(frozen=True, slots=True)
class ParentCertificate:
    """The parent block's header (with its transaction hashes), its proof under its slot's root
    and the committee's signature of that root."""

    header: Block  # every field but ``txs`` (left empty)
    tx_hashes: tuple[str, ...]
    slot_proof: SlotProof
    signature: bytes
    # The header and tx hashes are the reading member's own (``SignedHeader``), whose block
    # hash it computed from these very fields: ``compute_block_hash`` need not run again.
    own: bool = False

    def compute_block_hash(self) -> str:
        """The block hash the header fields imply (to compare with the claimed one)."""
        if self.own:
            return self.header.block_hash
        return compute_header_hash(self.header, self.tx_hashes)


@dataclass(frozen=True, slots=True)
class Proposal:
    """One rollup's part of a slot proposal: its block and what re-derives it. Every check of
    ``committee.checks`` takes one part (the slot's committee, slot and completion copied in)."""

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


@dataclass(frozen=True, slots=True)
class SlotProposal:
    """One slot for the committee to check and sign: a part per rollup, ascending rollup id."""

    committee_id: bytes
    slot: int
    parts: tuple[Proposal, ...]
    completion: bool = False
    # The slot's sealed bids, their key and the commitment certificate, when it has any:
    # the logs hold their openings, which members re-derive (committee.sealing).
    sealed: SealedOpening | None = None

    @property
    def rollups(self) -> tuple[int, ...]:
        return tuple(p.rollup for p in self.parts)

    def compute_slot_root(self) -> bytes:
        """The root the committee signs: over every part's block and, with sealed bids, the
        ciphertext-set root they were committed under (raises ValueError if a rollup has two
        parts)."""
        ciphertext_root = self.sealed.ciphertext_root if self.sealed is not None else None
        return compute_slot_root(compute_slot_leaves([p.block for p in self.parts]),
                                 ciphertext_root)  # fmt: skip


def compute_slot_proposal(
    committee_id: bytes, slot: int, parts: list[Proposal], *, completion: bool = False
) -> SlotProposal:
    """The slot proposal of ``parts`` (sorted by rollup; each part gets the slot's fields)."""
    ordered = sorted(parts, key=lambda p: p.rollup)
    return SlotProposal(
        committee_id,
        slot,
        tuple(
            dataclasses.replace(p, committee_id=committee_id, slot=slot, completion=completion)
            for p in ordered
        ),
        completion,
    )


def parent_certificate_to_json(cert: ParentCertificate) -> dict[str, Any]:
    header = block_fields_to_json(cert.header)
    del header["txs"]
    header["tx_hashes"] = list(cert.tx_hashes)
    return {
        "header": header,
        "slot_proof": slot_proof_to_json(cert.slot_proof),
        "signature": "0x" + cert.signature.hex(),
    }


@dataclass(frozen=True, slots=True)
class SignedHeader:
    """A block as a parent certificate carries it: every field but the txs, and the txs'
    hashes (what its block hash is computed from). A member keeps the one of the newest
    block it signed per rollup (``parse_proposal``'s ``own``)."""

    header: Block  # ``txs`` empty
    tx_hashes: tuple[str, ...]


def compute_signed_header(block: Block) -> SignedHeader:
    return SignedHeader(dataclasses.replace(block, txs=()), tuple(compute_tx_hashes(block)))


def compute_parent_certificate(
    block: Block, slot_proof: SlotProof, signature: bytes
) -> ParentCertificate:
    """The certificate of a signed block, as the next proposal carries it."""
    signed = compute_signed_header(block)
    return ParentCertificate(signed.header, signed.tx_hashes, slot_proof, signature)


def compute_cross_bundles(parts: tuple[Proposal, ...] | list[Proposal]) -> dict[str, Bid]:
    """Each cross-rollup bundle of the slot once, by bid id (first seen in part and log order):
    its copy for its first leg's rollup. Raises ValueError if a copy is not the copy of that
    bundle for its rollup (copies of one bid id that differ are not one signed bundle: no
    proposal can carry them)."""
    bundles: dict[str, Bid] = {}
    for part in parts:
        for entry in part.log:
            ev = entry.event
            if not (isinstance(ev, Bid) and ev.legs):
                continue
            bundle = bundles.setdefault(ev.bid_id, compute_bid_copy(ev, ev.legs[0].rollup))
            if ev.rollup != part.rollup or compute_bid_copy(bundle, ev.rollup) != ev:
                raise ValueError(f"the copies of cross-rollup bundle {ev.bid_id} differ")
    return bundles


def _cross_bundle_to_json(bundle: Bid, names: Mapping[str, str]) -> dict[str, Any]:
    out = _named_bid_to_json(bundle, names)
    for key in _DERIVED_BUNDLE_KEYS:  # its first leg's: the decoder rebuilds them
        del out[key]
    return out


def _named_bid_to_json(bid: Bid, names: Mapping[str, str]) -> dict[str, Any]:
    """A bid as JSON; a bid opened from a sealed bid names that entry instead of its
    evidence (``names``: the sealed entries' hashes by bid id)."""
    out = codec.bid_to_json(bid)
    name = names.get(bid.bid_id)
    if name is not None:
        del out["evidence"]  # the sealed entry's: the member holds it
        out["sealed"] = name
    return out


def _log_entry_to_json(
    e: LoggedEvent, cross: dict[str, int], names: Mapping[str, str]
) -> dict[str, Any]:
    ev = e.event
    if isinstance(ev, Bid) and ev.legs:
        return {"seq": e.seq, "cross": cross[ev.bid_id]}
    if isinstance(ev, Bid) and ev.bid_id in names:
        opened = _named_bid_to_json(ev, names)
        return {"seq": e.seq, "sealed": opened.pop("sealed"), "opened": opened}
    return {"seq": e.seq, "event": codec.event_to_json(ev)}


def _part_to_json(
    p: Proposal,
    cross: dict[str, int],
    names: Mapping[str, str],
    streamed: tuple[int, bytes] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"rollup": p.rollup}
    if streamed is None:
        out["block"] = block_fields_to_json(p.block)
    else:
        out["header"] = header_fields_to_json(p.block)
    out["parent"] = parent_certificate_to_json(p.parent) if p.parent else None
    out["carried"] = [codec.pending_to_json(c) for c in p.carried]
    out["log"] = [_log_entry_to_json(e, cross, names) for e in p.log]
    if streamed is not None:
        out["streamed"] = {"count": streamed[0], "digest": "0x" + streamed[1].hex()}
    return out


def compute_sealed_names(sealed: SealedOpening | None) -> dict[str, str]:
    """The name of each sealed entry of a proposal by its bid id: its ciphertext's keccak
    (``SealedBid.ciphertext_hash``: a digest of the entry's ciphertext that members re-derive
    with the entry, and unique in a set, each ciphertext once), what an opened bid carries
    instead of its evidence."""
    if sealed is None:
        return {}
    return {e.event.bid_id: e.event.ciphertext_hash for e in sealed.entries}


def encode_proposal(
    p: SlotProposal, streamed: Mapping[int, tuple[int, bytes]] | None = None
) -> bytes:
    """The proposal's wire bytes (one serialization, sent to every member); each cross-rollup
    bundle's evidence once, each opened bid's not at all (its sealed entry's, named). Raises
    ValueError if two copies of a bundle differ.

    ``streamed`` (version 7): by rollup, how many leading plaintext entries of its log the
    member holds from the slot's stream and their digest (``committee.stream``); those entries
    are left out, the rest of the log (the tail, opened bids wherever their seqs put them)
    travels as in version 5, and each block travels as its header."""
    parts = p.parts
    if streamed is not None:
        opened = compute_opened_ids(p)
        parts = tuple(
            dataclasses.replace(part, log=compute_stream_tail(part.log, opened,
                                                              streamed[part.rollup][0]))
            for part in parts
        )  # fmt: skip
    bundles = compute_cross_bundles(parts)
    cross = {bid_id: i for i, bid_id in enumerate(bundles)}
    names = compute_sealed_names(p.sealed)
    return orjson.dumps(
        {
            "kind": PROPOSAL_KIND,
            "version": FORMAT_VERSION if streamed is None else STREAMED_VERSION,
            "committee_id": "0x" + p.committee_id.hex(),
            "slot": p.slot,
            "bundles": [_cross_bundle_to_json(b, names) for b in bundles.values()],
            "parts": [
                _part_to_json(part, cross, names, streamed[part.rollup] if streamed else None)
                for part in parts
            ],
            "completion": p.completion,
            **({"sealed": sealed_opening_to_json(p.sealed)} if p.sealed is not None else {}),
        }
    )


def compute_opened_ids(p: SlotProposal) -> frozenset[str]:
    """The ids of the bids opened from the slot's sealed bids (none without ``sealed``): in the
    logs at their sealed bids' seqs, never streamed."""
    if p.sealed is None:
        return frozenset()
    return frozenset(e.event.bid_id for e in p.sealed.entries)


def is_opened_entry(entry: LoggedEvent, opened: frozenset[str]) -> bool:
    return isinstance(entry.event, Bid) and entry.event.bid_id in opened


def compute_stream_tail(
    log: Sequence[LoggedEvent], opened: frozenset[str], count: int
) -> tuple[LoggedEvent, ...]:
    """``log`` without its first ``count`` plaintext entries (those that are no opened bid)."""
    tail = []
    plain = 0
    for entry in log:
        if plain < count and not is_opened_entry(entry, opened):
            plain += 1
            continue
        tail.append(entry)
    return tuple(tail)


# --- decoding ---------------------------------------------------------------------------------

_TOP_KEYS = {"kind", "version", "committee_id", "slot", "bundles", "parts", "completion",
             "sealed"}  # fmt: skip
_PART_KEYS = {"rollup", "block", "parent", "carried", "log"}
_STREAMED_PART_KEYS = (_PART_KEYS - {"block"}) | {"header", "streamed"}


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


def _check_legs(ev: Bid) -> None:
    # A cross-rollup copy's legs: a tuple of Leg (at most MAX_ROLLUPS_PER_BUNDLE), each with a
    # u64 rollup and gas and well-typed transactions. Their rules are committee.checks'.
    if not isinstance(ev.legs, tuple) or len(ev.legs) > MAX_ROLLUPS_PER_BUNDLE:
        raise ValueError("a bid's legs have the wrong type")
    for leg in ev.legs:
        if not (isinstance(leg, Leg) and _is_u64(leg.rollup) and _is_u64(leg.gas)
                and isinstance(leg.txs, tuple)):  # fmt: skip
            raise ValueError("a leg field has the wrong type")
        for t in leg.txs:
            _check_tx(t)


def check_event_types(ev: Bid | Cancel | PublicTx) -> None:
    """Refuse (ValueError) an event whose fields have types the rules do not compute with."""
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
        _check_legs(ev)
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


def _parent_from_json(value: Any, own: SignedHeader | None = None) -> ParentCertificate | None:
    """The parent certificate. ``own``: the certificate header of the block of this rollup
    that the reading member signed last; a header naming exactly that block (its rollup, slot
    and block hash) is read as ``own``'s header and transaction hashes, not decoded again
    (most of a proposal's bytes at the deadline: every winner and transaction hash of the
    parent block). The member's own fields hash to that block hash, so every check of the
    certificate sees what decoding the coordinator's copy would give, or refuses its claim."""
    if value is None:
        return None
    d = wire.obj(value, "parent")
    wire.exact_keys(d, {"header", "slot_proof", "signature"}, "parent.")
    header_doc = wire.obj(wire.get(d, "header", "parent."), "parent.header")
    proof = slot_proof_from_json(wire.get(d, "slot_proof", "parent."), "parent.slot_proof")
    signature = wire.hex_bytes(
        wire.get(d, "signature", "parent."), "parent.signature", bls.SIGNATURE_LENGTH
    )
    if own is not None and _names_block(header_doc, own.header):
        return ParentCertificate(own.header, own.tx_hashes, proof, signature, own=True)
    header = block_from_json_strict(header_doc, prefix="parent.header.", with_txs=False)
    tx_hashes = wire.array(
        wire.get(header_doc, "tx_hashes", "parent.header."),
        "parent.header.tx_hashes",
        wire.hash_hex,
    )
    return ParentCertificate(header, tuple(tx_hashes), proof, signature)


def _names_block(header_doc: dict[str, Any], block: Block) -> bool:
    """Whether a certificate header names ``block``: the same rollup, slot and block hash (as
    ``block_from_json_strict`` would read them: exact types, the hash in its one spelling)."""
    rollup, slot, block_hash = (header_doc.get(k) for k in ("rollup", "slot", "block_hash"))
    return (
        type(rollup) is int
        and type(slot) is int
        and rollup == block.rollup
        and slot == block.slot
        and block_hash == block.block_hash
    )


@dataclass(frozen=True, slots=True)
class ParsedProposal:
    """A slot proposal whose headers are decoded (``head``: every part's log and pool still
    empty) and whose logs are not yet: a member checks membership, timing and protection on the
    head first, so a proposal it will refuse anyway costs it no decoding of thousands of bids."""

    head: SlotProposal
    carried_docs: tuple[list[Any], ...]  # per part
    log_docs: tuple[list[Any], ...]  # per part
    bundle_docs: list[Any] = dataclasses.field(default_factory=list)  # the slot's cross bundles
    # version 7: per part, the streamed prefix its log leaves out (count, digest); else None.
    # Its parts' blocks are headers (``bundles`` and ``txs`` empty): the member's re-run
    # gives the bodies (``committee.checks.check_header``).
    streamed: tuple[tuple[int, bytes], ...] | None = None

    def decode_rest(self) -> SlotProposal:
        """Decode the cross-rollup bundles and every part's carried pool and log; raise
        ``MalformedProposal`` if malformed."""
        named = NamedEntries.of(self.head.sealed)
        bundles = _decode_bundles(self.bundle_docs, named)
        used: set[int] = set()
        parts = tuple(
            dataclasses.replace(
                part, carried=_decode_carried(carried), log=_decode_log(log, part.rollup,
                                                                         bundles, used, named),
            )
            for part, carried, log in zip(
                self.head.parts, self.carried_docs, self.log_docs, strict=True
            )
        )
        # Verify every bundle is some log's: evidence no log refers to is not the slot's.
        if len(used) != len(bundles):
            raise MalformedProposal("bad proposal: a cross-rollup bundle is in no log")
        return dataclasses.replace(self.head, parts=parts)


@dataclass
class NamedEntries:
    """A proposal's sealed entries by name (``compute_sealed_names``: each entry's ciphertext
    hash), as its decoder resolves the opened bids that name them: each entry named at most
    once in the whole proposal."""

    by_name: dict[str, LoggedSealedBid]
    sealed_ids: frozenset[str]
    used: set[str] = dataclasses.field(default_factory=set)

    @classmethod
    def of(cls, sealed: SealedOpening | None) -> NamedEntries:
        """Raise ``MalformedProposal`` if two entries have one name (one ciphertext twice: a
        set no member commits to)."""
        if sealed is None:
            return cls({}, frozenset())
        by_name = {e.event.ciphertext_hash: e for e in sealed.entries}
        if len(by_name) != len(sealed.entries):
            raise MalformedProposal("bad proposal: a ciphertext is in the sealed set twice")
        return cls(by_name, frozenset(e.event.bid_id for e in sealed.entries))

    def resolve(self, doc: Any, name: Any, seq: str | None) -> Bid:
        """The opened bid of ``doc`` (its JSON without ``evidence``) naming the entry ``name``,
        with that entry's evidence; ``seq`` (a log's entry) must be the entry's seq. Raises
        ValueError if the name is no entry of the proposal, is used twice, or names an entry of
        another bid id or seq."""
        if not isinstance(doc, dict) or "evidence" in doc or "sealed" in doc:
            raise ValueError("an opened bid carries its sealed entry's name, not its evidence")
        entry = self.by_name.get(name) if isinstance(name, str) else None
        # Verify the name is one of the proposal's sealed entries, named once
        if entry is None or name in self.used:
            raise ValueError("an opened bid names no sealed entry of the proposal, or one "
                             "already named")  # fmt: skip
        self.used.add(name)
        evidence = entry.event.evidence
        ev = codec.event_from_json({**doc, "evidence": {
            "body": evidence.body.decode("utf-8", "surrogateescape"),
            "signature": evidence.signature}})  # fmt: skip
        if not isinstance(ev, Bid):
            raise ValueError("an opened entry is a bid")
        # Verify the name is the bid's own sealed entry (its id, and in a log its seq)
        if ev.bid_id != entry.event.bid_id or (seq is not None and seq != entry.seq):
            raise ValueError("an opened bid names another bid's sealed entry")
        return ev

    def check_inline(self, ev: Bid) -> None:
        """Refuse (ValueError) an opened bid written inline: it names its sealed entry."""
        if ev.bid_id in self.sealed_ids:
            raise ValueError("an opened bid must name its sealed entry")


def decode_proposal(data: bytes) -> SlotProposal:
    """Decode a proposal's wire bytes; raise ``MalformedProposal`` on any shape or type error."""
    return parse_proposal(data).decode_rest()


def _parse_streamed(d: dict[str, Any], field: str) -> tuple[int, bytes]:
    """A version-7 part's ``"streamed": {"count", "digest"}``."""
    doc = wire.obj(wire.get(d, "streamed", field + "."), field + ".streamed")
    wire.exact_keys(doc, {"count", "digest"}, field + ".streamed.")
    count = wire.integer(wire.get(doc, "count", field + ".streamed."), field + ".streamed.count")
    digest = wire.hex_bytes(
        wire.get(doc, "digest", field + ".streamed."), field + ".streamed.digest", 32
    )
    return count, digest


def _parse_part(
    value: Any,
    index: int,
    committee_id: bytes,
    slot: int,
    completion: bool,
    streamed: bool,
    own: Mapping[int, SignedHeader] | None = None,
) -> tuple[Proposal, list[Any], list[Any]]:
    """One part's head (rollup, block or, ``streamed``, its header; parent) and its undecoded
    pool and log."""
    field = f"parts[{index}]"
    d = wire.obj(value, field)
    # Verify a version-7 part carries a header and its streamed prefix, a version-5 one its
    # block and no prefix (exactly those keys).
    wire.exact_keys(d, _STREAMED_PART_KEYS if streamed else _PART_KEYS, field + ".")
    rollup = wire.integer(wire.get(d, "rollup", field + "."), field + ".rollup")
    if streamed:
        header_doc = wire.obj(wire.get(d, "header", field + "."), field + ".header")
        block = header_from_json_strict(header_doc, prefix=field + ".header.")
    else:
        block_doc = wire.obj(wire.get(d, "block", field + "."), field + ".block")
        block = block_from_json_strict(block_doc, prefix=field + ".block.")
    own_parent = own.get(rollup) if own else None
    parent = _parent_from_json(wire.get(d, "parent", field + "."), own_parent)
    carried_doc = wire.get(d, "carried", field + ".")
    log_doc = wire.get(d, "log", field + ".")
    if not isinstance(carried_doc, list) or not isinstance(log_doc, list):
        raise wire.FieldError(field + ".log", "log and carried must be arrays")
    part = Proposal(committee_id, rollup, slot, block, parent, (), (), completion)
    return part, carried_doc, log_doc


def parse_proposal(data: bytes, own: Mapping[int, SignedHeader] | None = None) -> ParsedProposal:
    """Parse the JSON and decode everything but the logs and the carried pools. ``own``: by
    rollup, the certificate header of the block the reading member signed last, which a
    parent naming it is read as (``_parent_from_json``)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise MalformedProposal("the proposal is not JSON") from None
    try:
        d = wire.obj(doc, "proposal")
        wire.exact_keys(d, _TOP_KEYS, "")
        if d.get("kind") != PROPOSAL_KIND:
            raise wire.FieldError("kind", f"must be {PROPOSAL_KIND!r}")
        version = d.get("version")
        if version not in (FORMAT_VERSION, STREAMED_VERSION) or isinstance(version, bool):
            raise wire.FieldError("version", f"must be {FORMAT_VERSION} or {STREAMED_VERSION}")
        committee_id = wire.hex_bytes(wire.get(d, "committee_id"), "committee_id", 32)
        slot = wire.integer(wire.get(d, "slot"), "slot")
        completion = d.get("completion", False)
        if not isinstance(completion, bool):
            raise wire.FieldError("completion", "must be true or false")
        parsed = wire.array(
            wire.get(d, "parts"),
            "parts",
            lambda v, f: v,
            MAX_SLOT_LEAVES,
        )
        if not parsed:
            raise wire.FieldError("parts", "a slot has at least one rollup")
        bundle_docs = wire.get(d, "bundles")
        if not isinstance(bundle_docs, list):
            raise wire.FieldError("bundles", "must be an array")
        is_streamed = version == STREAMED_VERSION
        triples = [_parse_part(v, i, committee_id, slot, completion, is_streamed, own)
                   for i, v in enumerate(parsed)]  # fmt: skip
        streamed = None
        if is_streamed:
            streamed = tuple(_parse_streamed(v, f"parts[{i}]") for i, v in enumerate(parsed))
        if streamed is not None and completion:
            raise wire.FieldError("completion", "a completion carries the whole log")
        sealed = sealed_opening_from_json(d["sealed"]) if "sealed" in d else None
        rollups = [part.rollup for part, _, _ in triples]
        # Verify each rollup has one part, in the leaves' order (ascending).
        if any(a >= b for a, b in zip(rollups, rollups[1:], strict=False)):
            raise wire.FieldError("parts", "must be in ascending rollup order, each rollup once")
    except wire.FieldError as exc:
        raise MalformedProposal(f"bad proposal: {exc}", field=exc.field) from None
    head = SlotProposal(committee_id, slot, tuple(p for p, _, _ in triples), completion, sealed)
    return ParsedProposal(
        head,
        tuple(c for _, c, _ in triples),
        tuple(lg for _, _, lg in triples),
        bundle_docs,
        streamed,
    )


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


def _decode_bundles(bundle_docs: list[Any], named: NamedEntries) -> list[Bid]:
    """The slot's cross-rollup bundles, each its copy for its first leg's rollup."""
    bundles: list[Bid] = []
    try:
        for doc in bundle_docs:
            if not isinstance(doc, dict) or any(k in doc for k in _DERIVED_BUNDLE_KEYS):
                raise ValueError("a bundle entry must not name a rollup, txs or gas")
            full = {**doc, "rollup": 0, "txs": [], "gas": 0}
            if "sealed" in doc:
                name = full.pop("sealed")
                ev: Any = named.resolve(full, name, None)
            else:
                ev = codec.event_from_json(full)
                if isinstance(ev, Bid):
                    named.check_inline(ev)
            if not isinstance(ev, Bid) or len(ev.legs) < 2:
                raise ValueError("a bundle entry is a bid of two or more legs")
            check_event_types(ev)
            first = ev.legs[0]
            bundles.append(dataclasses.replace(ev, rollup=first.rollup, txs=first.txs,
                                               gas=first.gas))  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        raise MalformedProposal("bad proposal: a cross-rollup bundle is malformed") from None
    # Verify each bundle is there once (a copy names its bundle by position, its id once).
    if len({b.bid_id for b in bundles}) != len(bundles):
        raise MalformedProposal("bad proposal: a cross-rollup bundle is there twice")
    return bundles


def _decode_log(
    log_doc: list[Any], rollup: int, bundles: list[Bid], used: set[int], named: NamedEntries
) -> tuple[LoggedEvent, ...]:
    """A part's log; a cross-rollup copy is built from its bundle (adds its index to ``used``),
    an opened bid takes its evidence from the sealed entry it names."""
    log: list[LoggedEvent] = []
    try:
        for entry in log_doc:
            seq = entry["seq"]
            if not isinstance(seq, str):
                raise ValueError("seq must be a string")
            if "cross" in entry:
                log.append(LoggedEvent(seq, _cross_copy(entry, rollup, bundles, used)))
                continue
            if "sealed" in entry:
                if set(entry) != {"seq", "sealed", "opened"}:
                    raise ValueError("an opened entry is {seq, sealed, opened}")
                ev: Bid | Cancel | PublicTx = named.resolve(entry["opened"], entry["sealed"],
                                                            seq)  # fmt: skip
            else:
                if set(entry) != {"seq", "event"}:
                    raise ValueError("a log entry is {seq, event}")
                ev = codec.event_from_json(entry["event"])
                if isinstance(ev, Bid):
                    named.check_inline(ev)
            check_event_types(ev)
            if isinstance(ev, Bid) and ev.legs:
                raise ValueError("a cross-rollup copy must refer to its bundle")
            log.append(LoggedEvent(seq, ev))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        raise MalformedProposal("bad proposal: a log entry is malformed") from None
    return tuple(log)


def _cross_copy(entry: dict[str, Any], rollup: int, bundles: list[Bid], used: set[int]) -> Bid:
    """The copy a ``{"seq", "cross": i}`` entry of ``rollup``'s log stands for."""
    index = entry["cross"]
    if set(entry) != {"seq", "cross"} or not _is_int(index, len(bundles) - 1):
        raise ValueError("a cross entry must name a bundle of the slot")
    bundle = bundles[index]
    # Verify the bundle spans this rollup: its copy here is that leg.
    if all(leg.rollup != rollup for leg in bundle.legs):
        raise ValueError("a cross entry names a bundle that does not span this rollup")
    used.add(index)
    return compute_bid_copy(bundle, rollup)
