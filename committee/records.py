"""What the committee publishes and keeps: signed blocks, failed slots, partials, evidence.

Plain frozen values and their JSON forms (snake_case, wei as decimal strings, bytes as ``0x``
hex), shared by the coordinator, the stores, the blocks API and ``blockspace verify``. The JSON of
a signed block is the delivery format rollups read; docs/committee.md documents it field by
field. Decoding is strict (``committee.wire``): a signed block usually comes from a third party.

The committee signs a whole slot (every rollup's block) once, over its slot root; each rollup's
signed block carries that root, its own inclusion proof and the slot's rollup list
(``compute_signed_slot``). Partials and evidence are kept per rollup: the same slot partial is
recorded under each rollup of the slot, with that rollup's block hash, so each rollup's records
stand alone. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from auction.codec import block_to_json
from auction.hashing import keccak256, to_hex
from auction.slotroot import (
    MAX_SLOT_LEAVES,
    SlotLeaf,
    SlotProof,
    compute_slot_proof,
    compute_slot_root,
)
from auction.types import Block, LegEntry, WinningBundle
from committee import bls, wire
from committee.errors import InvalidSignedBlock
from committee.signing import compute_slot_signing_root

SIGNED_BLOCK_KIND: Final[str] = "blockspace-signed-block"
# 2: signed under the slot root (one signature per slot over every rollup's block), with the
# block's slot proof; 1 signed each rollup's block alone (never accepted now).
FORMAT_VERSION: Final[int] = 2

STATUS_SIGNED: Final[str] = "signed"
STATUS_FAILED: Final[str] = "failed"
STATUS_PENDING: Final[str] = "pending"  # never stored: some partials, fewer than t (yet)

# Why a slot failed.
FAILED_NOT_ENOUGH_PARTIALS: Final[str] = "not_enough_partials"
FAILED_NOT_PROPOSED: Final[str] = "not_proposed"  # the engine restarted before proposing it
FAILED_CLOSE: Final[str] = "close_failed"  # the engine could not build the slot's result
# An earlier block some members signed is still being completed: a block on its parent would
# be its sibling, which those members never sign (docs/committee.md, "Safety and liveness").
FAILED_BLOCKED: Final[str] = "blocked_by_pending_slot"
# Fewer than t members committed to the slot's sealed bids and released their key shares in
# the signing window: nobody can open them, so the slot cannot be built (docs/encryption.md).
FAILED_KEY_NOT_RELEASED: Final[str] = "key_not_released"

# Kinds of member evidence.
EVIDENCE_INVALID_PARTIAL: Final[str] = "invalid_partial"
EVIDENCE_EQUIVOCATION: Final[str] = "equivocation"

# A lying member may answer anything; evidence keeps at most this many of its bytes.
MAX_EVIDENCE_BYTES: Final[int] = 4096


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


# --- signed blocks ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedBlock:
    """One rollup's block of a signed slot: the block, the slot root the committee signed, the
    block's proof under it, the slot's rollups, the threshold signature and its partials."""

    block: Block
    committee_id: bytes
    slot_root: bytes
    slot_proof: SlotProof  # the block's leaf under ``slot_root``
    slot_rollups: tuple[int, ...]  # every rollup of the slot, ascending (the leaves' order)
    signature: bytes
    partials: tuple[tuple[int, bytes], ...]  # (member index, partial), ascending index
    deadline_ms: int  # the slot's auction deadline
    published_ms: int

    @property
    def signers(self) -> tuple[int, ...]:
        """Indices of the members whose partials make the signature."""
        return tuple(i for i, _ in self.partials)

    @property
    def signing_root(self) -> bytes:
        return compute_slot_signing_root(self.committee_id, self.block.slot, self.slot_root)


def compute_slot_leaves(blocks: Sequence[Block]) -> list[SlotLeaf]:
    """The leaves of a slot's blocks (one per rollup)."""
    return [SlotLeaf(b.rollup, b.block_hash) for b in blocks]


def compute_signed_slot(
    blocks: Sequence[Block],
    committee_id: bytes,
    signature: bytes,
    partials: Sequence[tuple[int, bytes]],
    *,
    deadline_ms: int,
    published_ms: int,
    ciphertext_root: bytes | None = None,
) -> list[SignedBlock]:
    """Every rollup's signed block of one signed slot (ascending rollup), each with its proof
    (which carries the slot's ciphertext-set root, if it had encrypted bids)."""
    leaves = compute_slot_leaves(blocks)
    root = compute_slot_root(leaves, ciphertext_root)
    rollups = tuple(sorted(b.rollup for b in blocks))
    return [
        SignedBlock(
            block=b,
            committee_id=committee_id,
            slot_root=root,
            slot_proof=compute_slot_proof(leaves, b.rollup, ciphertext_root),
            slot_rollups=rollups,
            signature=signature,
            partials=tuple(partials),
            deadline_ms=deadline_ms,
            published_ms=published_ms,
        )
        for b in sorted(blocks, key=lambda b: b.rollup)
    ]


def block_fields_to_json(b: Block) -> dict[str, Any]:
    """The block's fields in delivery order (the header fields, then the raw transactions)."""
    return block_to_json(b)


def slot_proof_to_json(p: SlotProof) -> dict[str, Any]:
    out: dict[str, Any] = {
        "leaf_index": p.leaf_index,
        "leaf_count": p.leaf_count,
        "siblings": [_hex(s) for s in p.siblings],
    }
    if p.ciphertext_root is not None:
        out["ciphertext_root"] = _hex(p.ciphertext_root)
    return out


def slot_proof_from_json(value: Any, field: str) -> SlotProof:
    """Read a slot proof from untrusted JSON (types and lengths; ``verify`` checks the rest)."""
    d = wire.obj(value, field)
    wire.exact_keys(d, {"leaf_index", "leaf_count", "siblings", "ciphertext_root"}, field + ".")
    ciphertext_root = (
        wire.hex_bytes(d["ciphertext_root"], field + ".ciphertext_root", 32)
        if "ciphertext_root" in d
        else None
    )
    return SlotProof(
        leaf_index=wire.integer(wire.get(d, "leaf_index", field + "."), field + ".leaf_index"),
        leaf_count=wire.integer(wire.get(d, "leaf_count", field + "."), field + ".leaf_count"),
        siblings=tuple(
            wire.array(
                wire.get(d, "siblings", field + "."),
                field + ".siblings",
                lambda v, f: wire.hex_bytes(v, f, 32),
                max_items=64,  # a path in a tree of at most 2^16 leaves has at most 16
            )
        ),
        ciphertext_root=ciphertext_root,
    )


def signed_block_to_json(s: SignedBlock) -> dict[str, Any]:
    """The delivery JSON of a signed block (``GET /v1/blocks/...``, websocket, ``verify``)."""
    return {
        "kind": SIGNED_BLOCK_KIND,
        "version": FORMAT_VERSION,
        "status": STATUS_SIGNED,
        **block_fields_to_json(s.block),
        "committee_id": _hex(s.committee_id),
        "slot_root": _hex(s.slot_root),
        "slot_proof": slot_proof_to_json(s.slot_proof),
        "slot_rollups": list(s.slot_rollups),
        "signing_root": _hex(s.signing_root),
        "signature": _hex(s.signature),
        "signers": list(s.signers),
        "partials": [{"index": i, "partial": _hex(p)} for i, p in s.partials],
        "deadline_ms": s.deadline_ms,
        "published_ms": s.published_ms,
    }


# A bundle entry of a block; a cross-rollup bundle's also has ``legs`` (every leg's rollup
# and tx hashes, committed by the block hash under encoding version 2): what
# ``committee.verify.verify_partner_blocks`` checks against the partner blocks
# (docs/protocol.md, "Cross-rollup entries").
_BUNDLE_KEYS = {"bid_id", "bundle_hash", "searcher", "bid_wei", "payment_wei", "gas", "legs"}
_LEG_KEYS = {"rollup", "txs"}
# A bundle spans at most 64 rollups (``auction.presets.MAX_ROLLUPS_PER_BUNDLE``); a leg's tx
# count is a u16 in the block encoding.
_MAX_LEGS = 64
_MAX_LEG_TXS = (1 << 16) - 1
_BLOCK_KEYS = {
    "rollup", "slot", "parent_hash", "block_hash", "bid_set_root", "carried_root",
    "pending_root", "public_tx_count", "gas_used", "revenue_wei", "bundles", "txs",
}
_SIGNED_KEYS = _BLOCK_KEYS | {
    "kind", "version", "status", "committee_id", "slot_root", "slot_proof", "slot_rollups",
    "signing_root", "signature", "signers", "partials", "deadline_ms", "published_ms",
}


# A block's header as a streamed proposal carries it (committee.proposal, version 7): every
# field but the bodies (``bundles``, ``txs``), which the block hash commits to and a member
# re-derives.
HEADER_KEYS: Final[set[str]] = _BLOCK_KEYS - {"bundles", "txs"}


def header_fields_to_json(b: Block) -> dict[str, Any]:
    """The block's header fields (``HEADER_KEYS``)."""
    out = block_to_json(b)
    del out["bundles"], out["txs"]
    return out


def header_from_json_strict(d: dict[str, Any], *, prefix: str = "") -> Block:
    """Read a block header (``HEADER_KEYS``, exactly) from untrusted JSON: a ``Block`` whose
    ``bundles`` and ``txs`` are empty."""
    wire.exact_keys(d, HEADER_KEYS, prefix)
    return block_from_json_strict(d, prefix=prefix, with_txs=False, with_bundles=False)


def _bundle_from_json(value: Any, field: str) -> WinningBundle:
    d = wire.obj(value, field)
    wire.exact_keys(d, _BUNDLE_KEYS, field + ".")
    return WinningBundle(
        bid_id=wire.hash_hex(wire.get(d, "bid_id", field + "."), field + ".bid_id"),
        bundle_hash=wire.hash_hex(wire.get(d, "bundle_hash", field + "."), field + ".bundle_hash"),
        searcher=wire.hash_hex(wire.get(d, "searcher", field + "."), field + ".searcher", 20),
        bid_wei=wire.wei(wire.get(d, "bid_wei", field + "."), field + ".bid_wei"),
        payment_wei=wire.wei(wire.get(d, "payment_wei", field + "."), field + ".payment_wei"),
        gas=wire.integer(wire.get(d, "gas", field + "."), field + ".gas"),
        legs=_legs_from_json(d, field) if "legs" in d else (),
    )


def _legs_from_json(d: dict[str, Any], field: str) -> tuple[LegEntry, ...]:
    """A cross-rollup entry's legs: at least two, rollups ascending (the verifier checks them
    against the partner blocks); an empty ``legs`` is refused (a single-rollup entry has none)."""
    legs = tuple(wire.array(d["legs"], field + ".legs", _leg_from_json, _MAX_LEGS))
    rollups = [g.rollup for g in legs]
    if len(legs) < 2 or any(a >= b for a, b in zip(rollups, rollups[1:], strict=False)):
        raise wire.FieldError(field + ".legs", "must be two or more legs, rollups ascending")
    if not all(g.tx_hashes for g in legs):
        raise wire.FieldError(field + ".legs", "a leg has at least one transaction")
    return legs


def _leg_from_json(value: Any, field: str) -> LegEntry:
    d = wire.obj(value, field)
    wire.exact_keys(d, _LEG_KEYS, field + ".")
    return LegEntry(
        rollup=wire.integer(wire.get(d, "rollup", field + "."), field + ".rollup"),
        tx_hashes=tuple(
            wire.array(wire.get(d, "txs", field + "."), field + ".txs", wire.hash_hex,
                       _MAX_LEG_TXS)
        ),
    )


def block_from_json_strict(
    d: dict[str, Any], *, prefix: str = "", with_txs: bool = True, with_bundles: bool = True
) -> Block:
    """Read a block's fields from untrusted JSON (every type and length checked); without
    ``txs`` or ``bundles`` (a header), those are left empty."""

    def g(key: str) -> Any:
        return wire.get(d, key, prefix)

    def f(key: str) -> str:
        return prefix + key

    return Block(
        rollup=wire.integer(g("rollup"), f("rollup")),
        slot=wire.integer(g("slot"), f("slot")),
        parent_hash=wire.hash_hex(g("parent_hash"), f("parent_hash")),
        bundles=tuple(wire.array(g("bundles"), f("bundles"), _bundle_from_json))
        if with_bundles
        else (),
        txs=tuple(wire.array(g("txs"), f("txs"), wire.hex_bytes)) if with_txs else (),
        gas_used=wire.integer(g("gas_used"), f("gas_used")),
        revenue_wei=wire.wei(g("revenue_wei"), f("revenue_wei")),
        bid_set_root=wire.hash_hex(g("bid_set_root"), f("bid_set_root")),
        block_hash=wire.hash_hex(g("block_hash"), f("block_hash")),
        public_tx_count=wire.integer(g("public_tx_count"), f("public_tx_count"), 1 << 32),
        carried_root=wire.hash_hex(g("carried_root"), f("carried_root")),
        pending_root=wire.hash_hex(g("pending_root"), f("pending_root")),
    )


def _partial_from_json(value: Any, field: str) -> tuple[int, bytes]:
    d = wire.obj(value, field)
    wire.exact_keys(d, {"index", "partial"}, field + ".")
    index = wire.integer(wire.get(d, "index", field + "."), field + ".index")
    partial = wire.hex_bytes(
        wire.get(d, "partial", field + "."), field + ".partial", bls.SIGNATURE_LENGTH
    )
    return index, partial


def signed_block_from_json(d: Any) -> SignedBlock:
    """Read a signed block from untrusted JSON; raise ``InvalidSignedBlock`` naming the field.

    Only the shape is checked here; ``committee.verify.verify_signed_block`` checks the hash and
    the signature.
    """
    try:
        doc = wire.obj(d, "document")
        wire.exact_keys(doc, _SIGNED_KEYS, "")
        if doc.get("kind") != SIGNED_BLOCK_KIND:
            raise wire.FieldError("kind", f"must be {SIGNED_BLOCK_KIND!r}")
        if doc.get("version") != FORMAT_VERSION or isinstance(doc.get("version"), bool):
            raise wire.FieldError("version", f"must be {FORMAT_VERSION}")
        if doc.get("status", STATUS_SIGNED) != STATUS_SIGNED:
            raise wire.FieldError("status", f"must be {STATUS_SIGNED!r}")
        block = block_from_json_strict(doc)
        partials = tuple(wire.array(wire.get(doc, "partials"), "partials", _partial_from_json))
        signers = wire.array(wire.get(doc, "signers"), "signers", wire.integer)
        # Verify the signer list names exactly the partials' members, in the same order.
        if signers != [i for i, _ in partials]:
            raise wire.FieldError("signers", "must list the partials' member indices in order")
        signed = SignedBlock(
            block=block,
            committee_id=wire.hex_bytes(wire.get(doc, "committee_id"), "committee_id", 32),
            slot_root=wire.hex_bytes(wire.get(doc, "slot_root"), "slot_root", 32),
            slot_proof=slot_proof_from_json(wire.get(doc, "slot_proof"), "slot_proof"),
            slot_rollups=tuple(
                wire.array(
                    wire.get(doc, "slot_rollups"), "slot_rollups", wire.integer, MAX_SLOT_LEAVES
                )
            ),
            signature=wire.hex_bytes(
                wire.get(doc, "signature"), "signature", bls.SIGNATURE_LENGTH
            ),
            partials=partials,
            deadline_ms=wire.integer(wire.get(doc, "deadline_ms"), "deadline_ms"),
            published_ms=wire.integer(wire.get(doc, "published_ms"), "published_ms"),
        )
        stated_root = wire.hex_bytes(wire.get(doc, "signing_root"), "signing_root", 32)
    except wire.FieldError as exc:
        raise InvalidSignedBlock(f"bad signed block: {exc}", field=exc.field) from None
    # Verify the stated signing root is the one the fields imply (it is a convenience copy).
    if stated_root != signed.signing_root:
        raise InvalidSignedBlock("signing_root does not match the slot root", field="signing_root")
    return signed


# --- failed slots -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FailedSlot:
    """A slot published as failed: its block never got t valid partials by the deadline."""

    rollup: int
    slot: int
    committee_id: bytes
    block_hash: str  # the proposed block (NOT signed, never a parent); zero if there was none
    reason: str  # one of the FAILED_* codes above
    valid: tuple[int, ...]  # members whose valid partial arrived in time
    refused: tuple[tuple[int, str], ...]  # (member, refusal code)
    invalid: tuple[int, ...]  # members that answered an invalid partial
    missing: tuple[int, ...]  # members with no answer (down, unreachable, too slow)
    deadline_ms: int
    published_ms: int


def failed_slot_to_json(f: FailedSlot) -> dict[str, Any]:
    return {
        "status": STATUS_FAILED,
        "rollup": f.rollup,
        "slot": f.slot,
        "committee_id": _hex(f.committee_id),
        "block_hash": f.block_hash,
        "reason": f.reason,
        "valid": list(f.valid),
        "refused": [{"index": i, "code": c} for i, c in f.refused],
        "invalid": list(f.invalid),
        "missing": list(f.missing),
        "deadline_ms": f.deadline_ms,
        "published_ms": f.published_ms,
    }


def failed_slot_from_json(d: dict[str, Any]) -> FailedSlot:
    """Decode a failed-slot record written by ``failed_slot_to_json`` (our own store)."""
    return FailedSlot(
        rollup=d["rollup"],
        slot=d["slot"],
        committee_id=bytes.fromhex(d["committee_id"][2:]),
        block_hash=d["block_hash"],
        reason=d["reason"],
        valid=tuple(d["valid"]),
        refused=tuple((r["index"], r["code"]) for r in d["refused"]),
        invalid=tuple(d["invalid"]),
        missing=tuple(d["missing"]),
        deadline_ms=d["deadline_ms"],
        published_ms=d["published_ms"],
    )


def signed_block_from_store(d: dict[str, Any]) -> SignedBlock:
    """Decode a signed block written by our own store (trusted, so no re-checks)."""
    proof = d["slot_proof"]
    return SignedBlock(
        block=block_from_json_strict(d),
        committee_id=bytes.fromhex(d["committee_id"][2:]),
        slot_root=bytes.fromhex(d["slot_root"][2:]),
        slot_proof=SlotProof(
            proof["leaf_index"],
            proof["leaf_count"],
            tuple(bytes.fromhex(s[2:]) for s in proof["siblings"]),
            bytes.fromhex(proof["ciphertext_root"][2:]) if "ciphertext_root" in proof else None,
        ),
        slot_rollups=tuple(d["slot_rollups"]),
        signature=bytes.fromhex(d["signature"][2:]),
        partials=tuple((p["index"], bytes.fromhex(p["partial"][2:])) for p in d["partials"]),
        deadline_ms=d["deadline_ms"],
        published_ms=d["published_ms"],
    )


# --- partials and evidence --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartialRecord:
    """A valid partial signature one member gave for one block of a (rollup, slot)."""

    rollup: int
    slot: int
    member: int
    committee_id: bytes
    block_hash: str
    signing_root: bytes
    partial: bytes
    received_ms: int


def partial_to_json(p: PartialRecord) -> dict[str, Any]:
    return {
        "rollup": p.rollup,
        "slot": p.slot,
        "member": p.member,
        "committee_id": _hex(p.committee_id),
        "block_hash": p.block_hash,
        "signing_root": _hex(p.signing_root),
        "partial": _hex(p.partial),
        "received_ms": p.received_ms,
    }


def partial_from_json(d: dict[str, Any]) -> PartialRecord:
    return PartialRecord(
        rollup=d["rollup"],
        slot=d["slot"],
        member=d["member"],
        committee_id=bytes.fromhex(d["committee_id"][2:]),
        block_hash=d["block_hash"],
        signing_root=bytes.fromhex(d["signing_root"][2:]),
        partial=bytes.fromhex(d["partial"][2:]),
        received_ms=d["received_ms"],
    )


@dataclass(frozen=True, slots=True)
class MemberEvidence:
    """Evidence against one member, kept for slashing and audits.

    ``invalid_partial``: ``partial`` is what the member answered for ``block_hash`` (truncated to
    ``MAX_EVIDENCE_BYTES``) and does not verify under its public key share.
    ``equivocation``: ``first`` and ``second`` are two valid partials by the member for two
    different blocks of the same (rollup, slot): anyone can check both with the member's key.
    """

    kind: str
    rollup: int
    slot: int
    member: int
    committee_id: bytes
    detail: str
    recorded_ms: int
    block_hash: str = ""
    signing_root: bytes = b""
    partial: bytes = b""
    first: PartialRecord | None = None
    second: PartialRecord | None = None


def evidence_to_json(e: MemberEvidence) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": e.kind,
        "rollup": e.rollup,
        "slot": e.slot,
        "member": e.member,
        "committee_id": _hex(e.committee_id),
        "detail": e.detail,
        "recorded_ms": e.recorded_ms,
    }
    if e.kind == EVIDENCE_EQUIVOCATION:
        assert e.first is not None and e.second is not None
        out["first"] = partial_to_json(e.first)
        out["second"] = partial_to_json(e.second)
    else:
        out["block_hash"] = e.block_hash
        out["signing_root"] = _hex(e.signing_root)
        out["partial"] = _hex(e.partial)
    return out


def evidence_from_json(d: dict[str, Any]) -> MemberEvidence:
    common: dict[str, Any] = dict(
        kind=d["kind"],
        rollup=d["rollup"],
        slot=d["slot"],
        member=d["member"],
        committee_id=bytes.fromhex(d["committee_id"][2:]),
        detail=d["detail"],
        recorded_ms=d["recorded_ms"],
    )
    if d["kind"] == EVIDENCE_EQUIVOCATION:
        return MemberEvidence(
            **common, first=partial_from_json(d["first"]), second=partial_from_json(d["second"])
        )
    return MemberEvidence(
        **common,
        block_hash=d["block_hash"],
        signing_root=bytes.fromhex(d["signing_root"][2:]),
        partial=bytes.fromhex(d["partial"][2:]),
    )


def compute_equivocation_detail(member: int, slot: int) -> str:
    return f"member {member} signed two different blocks for slot {slot}"


def compute_equivocation(
    first: PartialRecord, second: PartialRecord, recorded_ms: int
) -> MemberEvidence | None:
    """Return equivocation evidence if the two partials are one member's for two blocks of one
    (rollup, slot) under one committee; None otherwise."""
    # Verify they are about the same member, committee and slot, but different messages.
    same_place = (first.rollup, first.slot, first.member, first.committee_id) == (
        second.rollup,
        second.slot,
        second.member,
        second.committee_id,
    )
    if not same_place or first.signing_root == second.signing_root:
        return None
    return MemberEvidence(
        kind=EVIDENCE_EQUIVOCATION,
        rollup=first.rollup,
        slot=first.slot,
        member=first.member,
        committee_id=first.committee_id,
        detail=compute_equivocation_detail(first.member, first.slot),
        recorded_ms=recorded_ms,
        first=first,
        second=second,
    )


def compute_tx_hashes(block: Block) -> list[str]:
    """The block's transaction hashes (keccak-256 of each raw transaction), in block order."""
    return [to_hex(keccak256(t)) for t in block.txs]
