"""Offline verification of a signed block against the public committee file.

What ``blockspace verify BLOCK.json --committee COMMITTEE.json`` runs, and what a rollup's own
verifier should do (docs/committee.md): recompute the block hash from the fields and the raw
transactions, recompute the signing root, check the group signature, then check the record of
who signed. Pure: no I/O.
"""

from __future__ import annotations

from auction.encoding import compute_header_hash
from committee import bls, threshold
from committee.errors import InvalidSignedBlock
from committee.records import SignedBlock, compute_tx_hashes
from committee.signing import compute_signing_root


def compute_block_hash_of(signed: SignedBlock) -> str:
    """The block hash the signed block's fields and raw transactions imply."""
    return compute_header_hash(signed.block, compute_tx_hashes(signed.block))


def verify_signed_block(
    signed: SignedBlock, committee: threshold.CommitteeInfo, *, check_partials: bool = True
) -> None:
    """Raise ``InvalidSignedBlock`` unless ``signed`` is a block the committee signed.

    Costs one pairing for the group signature, plus one per partial with ``check_partials``.
    """
    b = signed.block
    # Verify the block is for this committee.
    if signed.committee_id != committee.committee_id:
        raise InvalidSignedBlock(
            "the block was signed by another committee", field="committee_id"
        )
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
    # Verify the group signature over the signing root: the one check a rollup needs.
    root = compute_signing_root(signed.committee_id, b.rollup, b.slot, b.block_hash)
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
