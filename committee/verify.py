"""Offline verification of a signed block against the public committee file.

What ``blockspace verify BLOCK.json --committee COMMITTEE.json`` runs, and what a rollup's own
verifier should do (docs/protocol.md, "Slot roots"): recompute the block hash from the fields
and the raw transactions, check the block's proof under the slot root (and, given the
deployment's rollups, that the slot has exactly those), recompute the slot signing root, check
the group signature, then check the record of who signed. Given partner blocks (other rollups'
signed blocks of the same slot), check that each is under the same signed root. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from auction.encoding import compute_header_hash
from auction.errors import FairnessViolation
from auction.fairness import check_cross_entries
from auction.slotroot import verify_slot_proof
from committee import bls, threshold
from committee.errors import InvalidSignedBlock
from committee.records import SignedBlock, compute_tx_hashes
from committee.signing import compute_slot_signing_root


def compute_block_hash_of(signed: SignedBlock) -> str:
    """The block hash the signed block's fields and raw transactions imply."""
    return compute_header_hash(signed.block, compute_tx_hashes(signed.block))


def _check_block_and_slot(signed: SignedBlock, expected_rollups: Iterable[int] | None) -> None:
    """The block hash, the slot's rollup list and the block's proof under the slot root."""
    b = signed.block
    # Verify the public lane count fits the transactions.
    if b.public_tx_count > len(b.txs):
        raise InvalidSignedBlock(
            "public_tx_count exceeds the number of transactions", field="public_tx_count"
        )
    # Verify the block hash: the header fields and every raw transaction are committed to.
    if compute_block_hash_of(signed) != b.block_hash:
        raise InvalidSignedBlock(
            "block_hash does not match the block's fields and transactions", field="block_hash"
        )
    # Verify the stated rollup list is the leaves' (ascending, one per leaf, this block's at
    # its index): the proof authenticates the count and this position.
    rollups, proof = signed.slot_rollups, signed.slot_proof
    ascending = all(x < y for x, y in zip(rollups, rollups[1:], strict=False))
    if not ascending or len(rollups) != proof.leaf_count:
        raise InvalidSignedBlock(
            "slot_rollups must be ascending, one per leaf of the slot", field="slot_rollups"
        )
    if not 0 <= proof.leaf_index < len(rollups) or rollups[proof.leaf_index] != b.rollup:
        raise InvalidSignedBlock(
            "the block's rollup is not at its leaf index in slot_rollups", field="slot_proof"
        )
    # Verify the block's leaf is under the slot root (the one root the committee signs).
    if not verify_slot_proof(signed.slot_root, b.rollup, b.block_hash, proof):
        raise InvalidSignedBlock(
            "the slot proof does not put the block under the slot root", field="slot_proof"
        )
    # Verify completeness against the deployment's rollups, when the verifier knows them.
    if expected_rollups is not None and list(rollups) != sorted(set(expected_rollups)):
        raise InvalidSignedBlock(
            f"the slot's rollups {list(rollups)} are not the expected "
            f"{sorted(set(expected_rollups))}",
            field="slot_rollups",
        )


def verify_signed_block(
    signed: SignedBlock,
    committee: threshold.CommitteeInfo,
    *,
    check_partials: bool = True,
    expected_rollups: Iterable[int] | None = None,
) -> None:
    """Raise ``InvalidSignedBlock`` unless ``signed`` is a block under a slot root the committee
    signed. With ``expected_rollups`` (the deployment's rollups), the slot must have exactly
    those.

    Costs one pairing for the group signature, plus one per partial with ``check_partials``.
    """
    # Verify the block is for this committee.
    if signed.committee_id != committee.committee_id:
        raise InvalidSignedBlock(
            "the block was signed by another committee", field="committee_id"
        )
    _check_block_and_slot(signed, expected_rollups)
    # Verify the group signature over the slot signing root: the one check a rollup needs.
    root = compute_slot_signing_root(signed.committee_id, signed.block.slot, signed.slot_root)
    if not bls.verify(committee.group_public_key, root, signed.signature):
        raise InvalidSignedBlock("the committee signature does not verify", field="signature")
    # Verify the record of who signed: t distinct members, ascending.
    signers = signed.signers
    if list(signers) != sorted(set(signers)) or not all(1 <= i <= committee.n for i in signers):
        raise InvalidSignedBlock(
            f"signers must be distinct member indices 1..{committee.n}, ascending",
            field="signers",
        )
    if len(signers) < committee.t:
        raise InvalidSignedBlock(
            f"{len(signers)} signers listed; the committee needs {committee.t}", field="signers"
        )
    if not check_partials:
        return
    # Verify each listed partial, and that they interpolate to the signature.
    for index, partial in signed.partials:
        if not threshold.verify_partial(committee.member_public_key(index), root, partial):
            raise InvalidSignedBlock(
                f"the partial of member {index} does not verify", field="partials", index=index
            )
    if threshold.combine(signed.partials, committee.t, committee.n) != signed.signature:
        raise InvalidSignedBlock(
            "the listed partials do not combine to the signature", field="partials"
        )


def verify_partner_blocks(
    signed: SignedBlock, partners: Sequence[SignedBlock], committee: threshold.CommitteeInfo
) -> dict[int, SignedBlock]:
    """Check that every partner (another rollup's signed block) is under the same signed slot
    root as ``signed`` (which the caller verified with ``verify_signed_block``); return the
    slot's blocks by rollup, ``signed`` included.

    Each partner's hash and proof are checked against the same root, committee, slot and rollup
    list; its signature costs a pairing only if it is not the same bytes as ``signed``'s. With
    every partner given, the whole rollup list is authenticated (each partner's proof pins its
    rollup at its index). Then the atomicity of every cross-rollup entry of ``signed`` is
    checked against the partners given (``auction.fairness.check_cross_entries``: the same
    bundle in the block of every rollup it names, each leg's txs in order, the payment split by
    gas). A named rollup whose partner is not given is not checked here:
    ``compute_unchecked_rollups`` names them, and a verifier must not call such a block atomic.
    """
    by_rollup = {signed.block.rollup: signed}
    for p in partners:
        what = f"partner block of rollup {p.block.rollup}"
        same = (p.committee_id, p.block.slot, p.slot_root, p.slot_rollups) == (
            signed.committee_id, signed.block.slot, signed.slot_root, signed.slot_rollups,
        )
        if not same:
            raise InvalidSignedBlock(
                f"the {what} is not of the same signed slot (committee, slot, slot root, "
                "rollups)",
                field="partners",
                rollup=p.block.rollup,
            )
        if p.block.rollup in by_rollup:
            raise InvalidSignedBlock(
                f"rollup {p.block.rollup} is given twice", field="partners", rollup=p.block.rollup
            )
        try:
            _check_block_and_slot(p, None)
        except InvalidSignedBlock as exc:
            raise InvalidSignedBlock(
                f"{what}: {exc.message}", field="partners", rollup=p.block.rollup
            ) from None
        if p.signature != signed.signature:
            message = compute_slot_signing_root(p.committee_id, p.block.slot, p.slot_root)
            if not bls.verify(committee.group_public_key, message, p.signature):
                raise InvalidSignedBlock(
                    f"the {what}'s signature does not verify", field="partners",
                    rollup=p.block.rollup,
                )
        by_rollup[p.block.rollup] = p
    try:
        check_cross_entries(signed.block, {r: s.block for r, s in by_rollup.items()})
    except FairnessViolation as exc:
        raise InvalidSignedBlock(
            f"a cross-rollup bundle is not atomic: {exc.message}", field="bundles", **exc.data
        ) from None
    return by_rollup


def compute_unchecked_rollups(
    signed: SignedBlock, by_rollup: Mapping[int, SignedBlock]
) -> list[int]:
    """The rollups that a cross-rollup entry of ``signed`` names but whose block is not in
    ``by_rollup``: that entry's atomicity cannot be checked without them."""
    named = {r for w in signed.block.bundles for r in w.rollups}
    return sorted(named - set(by_rollup) - {signed.block.rollup})
