"""Encrypted bids at intake and after opening: the rules on what the engine can see.

``compute_sealed_bid`` turns a signed ``bs_sendEncryptedBundle`` into a ``SealedBid``: it checks
only what is visible without the slot key (the signature binds the searcher, the ciphertext's
shape, committee and slot, that the call's public fields are the ones the ciphertext
authenticates, the rollups and the gas bound) and learns nothing else. Once the slot key
exists, the opened payload goes through the same rules as any ``eth_sendBundle``
(``auction.intake.compute_intake_event`` with ``opened_from``), then ``check_opened_bid``
refuses a bundle that contradicts what its public fields promised. ``check_encryption_policy``
is the per-rollup ``encryption: required`` rule for plaintext bundles. Pure: time is an
argument. docs/encryption.md, "Intake".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from auction import constants as C
from auction.bundles import compute_bid_id, parse_params, parse_quantity, parse_replacement_uuid
from auction.ciphertext import WrongCommittee, WrongSlot, parse_ciphertext
from auction.errors import (
    BundleGasTooHigh,
    CiphertextSearcherMismatch,
    CrossRollupNotAllowedHere,
    EncryptionNotServed,
    EncryptionRequired,
    InvalidParams,
    OpenedBidMismatch,
    PublicFieldsMismatch,
    UnknownRollup,
)
from auction.hashing import from_hex, keccak256, to_hex
from auction.legs import DEFAULT_MAX_ROLLUPS_PER_BUNDLE, parse_stated_rollups
from auction.presets import Rollup
from auction.slots import SlotClock, check_target_slot
from auction.types import Bid, Evidence, SealedBid

SEND_ENCRYPTED_BUNDLE: Final = "bs_sendEncryptedBundle"
_MAX_SLOT: Final = (1 << 63) - 1
# The public fields a call repeats from its ciphertext, in their wire names.
PUBLIC_FIELDS: Final = ("slot", "maxGas", "rollups", "replacementUuid", "searcher")


def compute_public_fields(p: Mapping[str, Any], slot: int, max_gas: int) -> bytes:
    """The canonical public fields (docs/encryption.md) a call's parameters state: what the
    ciphertext's authenticated header must carry byte for byte."""
    fields: dict[str, Any] = {"slot": slot, "maxGas": max_gas, "searcher": p.get("searcher")}
    for key in ("rollups", "replacementUuid"):
        if p.get(key) is not None:
            fields[key] = p[key]
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def _first_difference(stated: bytes, sealed: bytes) -> str:
    """The first public field in which the call and the ciphertext differ (for the error)."""
    try:
        inside = orjson.loads(sealed)
    except orjson.JSONDecodeError:
        return "publicFields"
    if not isinstance(inside, dict):
        return "publicFields"
    outside = orjson.loads(stated)
    for key in PUBLIC_FIELDS:
        if outside.get(key) != inside.get(key):
            return key
    return "publicFields"  # same values, other bytes (not canonical JSON)


def compute_sealed_rollups(
    stated: frozenset[int] | None,
    rollups: Mapping[int, Rollup],
    endpoint_rollup: int | None,
    rollup: int,
) -> tuple[int, tuple[int, ...]]:
    """The rollup whose log takes a sealed bid and every rollup it may span (ascending): the
    stated ones (each served; only the endpoint's at a rollup's endpoint), else ``rollup``."""
    if stated is None:
        if rollup not in rollups:
            raise UnknownRollup(f"rollup {rollup} is not served here", chain_id=rollup)
        return rollup, (rollup,)
    # Verify a rollup's own endpoint gets bundles for it alone
    if endpoint_rollup is not None and stated != {endpoint_rollup}:
        raise CrossRollupNotAllowedHere(
            f"rollups names {sorted(stated)}; this endpoint serves only {endpoint_rollup}",
            endpoint=endpoint_rollup,
        )
    # Verify every stated rollup is served here
    for chain_id in sorted(stated):
        if chain_id not in rollups:
            raise UnknownRollup(f"rollup {chain_id} is not served here", chain_id=chain_id)
    spans = tuple(sorted(stated))
    return (rollup if rollup in stated else spans[0]), spans


def compute_sealed_bid(
    params: Any,
    *,
    searcher: str,
    evidence: Evidence,
    committee_id: bytes | None,
    rollups: Mapping[int, Rollup],
    clock: SlotClock,
    now_ms: int,
    max_slots_ahead: int,
    rollup: int,
    endpoint_rollup: int | None = None,
    max_rollups_per_bundle: int = DEFAULT_MAX_ROLLUPS_PER_BUNDLE,
) -> SealedBid:
    """Validate ``bs_sendEncryptedBundle`` params and build the SealedBid; raise a
    BlockspaceError. Cheapest checks first; nothing is decrypted."""
    p = parse_params(params, SEND_ENCRYPTED_BUNDLE)
    # Verify a slot key can ever exist for it
    if committee_id is None:
        raise EncryptionNotServed("this engine has no committee to encrypt bundles to")
    # Verify the target slot takes bids
    slot = parse_quantity(p.get("blockNumber"), "blockNumber", maximum=_MAX_SLOT)
    if slot is None:
        raise InvalidParams("blockNumber (the target slot) is required", field="blockNumber")
    check_target_slot(clock, slot, now_ms, max_slots_ahead)
    # Verify the ciphertext's shape, then that it is for this committee and slot
    try:
        ciphertext = from_hex(p.get("ciphertext"), what="ciphertext")
    except ValueError as exc:
        raise InvalidParams(str(exc), field="ciphertext") from None
    ct = parse_ciphertext(ciphertext)
    if ct.committee_id != committee_id:
        raise WrongCommittee("ciphertext is for another committee", slot=ct.slot)
    if ct.slot != slot:
        raise WrongSlot(f"ciphertext is for slot {ct.slot}", slot=ct.slot, expected=slot)
    # Verify the call's public fields are those the ciphertext authenticates, byte for byte
    max_gas = parse_quantity(p.get("maxGas"), "maxGas", maximum=_MAX_SLOT)
    if max_gas is None or max_gas < C.MIN_TX_GAS:
        raise InvalidParams(f"maxGas must be at least {C.MIN_TX_GAS}", field="maxGas")
    stated = compute_public_fields(p, slot, max_gas)
    if stated != ct.public_fields:
        field = _first_difference(stated, ct.public_fields)
        raise PublicFieldsMismatch(f"{field} is not the ciphertext's", field=field)
    # Verify the ciphertext names the searcher who signed the call (no one resends another's)
    if p.get("searcher") != searcher:
        raise CiphertextSearcherMismatch(
            "the ciphertext names another searcher than the call's signer", signer=searcher
        )
    # Verify its rollups are served and its gas bound fits in them
    own, spans = compute_sealed_rollups(
        parse_stated_rollups(p.get("rollups"), max_rollups_per_bundle),
        rollups,
        endpoint_rollup,
        rollup,
    )
    gas_limit = sum(rollups[r].policy.gas_limit for r in spans)
    if max_gas > gas_limit:
        raise BundleGasTooHigh(f"maxGas {max_gas} is over the gas limit {gas_limit}",
                               limit=gas_limit)  # fmt: skip
    return SealedBid(
        bid_id=compute_bid_id(evidence),
        rollup=own,
        slot=slot,
        searcher=searcher,
        max_gas=max_gas,
        received_ms=now_ms,
        evidence=evidence,
        ciphertext=ciphertext,
        encapsulation=ct.encapsulation,
        ciphertext_hash=to_hex(keccak256(ciphertext)),
        rollups=spans if p.get("rollups") is not None else (),
        replacement_uuid=parse_replacement_uuid(p.get("replacementUuid")),
    )


def check_opened_bid(bid: Bid, sealed: SealedBid) -> None:
    """Refuse an opened bundle that contradicts its public fields: what the engine acted on
    before opening (gas, rollups, slot, replacement, searcher) must be what the searcher sent."""
    spans = sealed.rollups or (sealed.rollup,)
    gas = sum(leg.gas for leg in bid.legs) if bid.legs else bid.gas
    checks = (
        ("slot", bid.slot == sealed.slot),
        ("searcher", bid.searcher == sealed.searcher),
        ("maxGas", gas <= sealed.max_gas),
        ("rollups", bid.rollups == spans),
        ("replacementUuid", bid.replacement_uuid == sealed.replacement_uuid),
    )
    for field, ok in checks:
        if not ok:
            raise OpenedBidMismatch(
                f"the opened bundle's {field} contradicts its public fields",
                field=field,
                bid_id=sealed.bid_id,
            )


def check_encryption_policy(bid: Bid, rollups: Mapping[int, Rollup]) -> None:
    """Refuse a plaintext bundle for a rollup whose policy is ``encryption: required``."""
    for chain_id in bid.rollups:
        if rollups[chain_id].policy.encryption == C.ENCRYPTION_REQUIRED:
            raise EncryptionRequired(
                f"rollup {chain_id} takes encrypted bundles only (bs_sendEncryptedBundle)",
                rollup=chain_id,
            )


def is_opened_bid(bid: Bid) -> bool:
    """Whether ``bid`` was opened from a sealed bid (``compute_opened_bid``): its evidence is
    the signed ``bs_sendEncryptedBundle`` call that carried its ciphertext, so no plaintext log
    entry holds it. Parsed, not searched: a JSON string may spell the method with escapes."""
    if b"bs_sendEncryptedBundle" not in bid.evidence.body and b"\\u" not in bid.evidence.body:
        return False  # cheap: the method's name cannot be in the call
    try:
        request = orjson.loads(bid.evidence.body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(request, dict) and request.get("method") == SEND_ENCRYPTED_BUNDLE
