"""From a signed ``eth_sendBundle`` / ``eth_cancelBundle`` request to a Bid or a Cancel.

Every rule a bundle must pass at intake lives here, in the order they are checked; the transports
(HTTP, websocket) only parse JSON and hand over the params.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from auction import constants as C
from auction.errors import (
    BidTooHigh,
    BidTooLow,
    BundleGasTooHigh,
    BundleTooLarge,
    ChainIdMismatch,
    DuplicateTransaction,
    EmptyBundle,
    InvalidParams,
    InvalidTimestampRange,
    InvalidTransaction,
    ProtectedTransactionMisplaced,
    UnknownRollup,
)
from auction.hashing import from_hex, keccak256, to_hex
from auction.legs import (
    DEFAULT_MAX_ROLLUPS_PER_BUNDLE,
    compute_bid_copy,
    compute_decode_limits,
    compute_legs,
    parse_stated_rollups,
)
from auction.pool import check_public_tx_admissible
from auction.presets import Policy, Rollup
from auction.slots import SlotClock, check_target_slot, compute_slot_at, compute_slot_timestamp
from auction.transactions import compute_bundle_hash, compute_tip_wei, decode_transaction
from auction.types import Bid, Cancel, Evidence, Leg, PublicTx, Tx

# Decodes one raw signed transaction (``decode_transaction``, or a memo of it: decoding is a
# pure function of the bytes, so a remembered result is what decoding again gives).
TxDecoder = Callable[[bytes], Tx]

_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_MAX_UINT256 = (1 << 256) - 1
_MAX_TIMESTAMP = (1 << 63) - 1


def parse_quantity(
    value: Any, what: str, *, allow_decimal_string: bool = False, maximum: int = _MAX_UINT256
) -> int | None:
    """A JSON quantity: int, 0x-hex string (or decimal string where allowed). None/0 mean unset."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidParams(f"{what} must be a number or a hex string", field=what)
    if isinstance(value, int):
        out = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            if text.startswith(("0x", "0X")):
                out = int(text, 16) if len(text) > 2 else 0
            elif allow_decimal_string and text.isdigit():
                out = int(text)
            else:
                raise ValueError
        except ValueError:
            raise InvalidParams(f"{what} is not a valid quantity", field=what) from None
    else:
        raise InvalidParams(f"{what} must be a number or a hex string", field=what)
    if out < 0 or out > maximum:
        raise InvalidParams(f"{what} is out of range", field=what)
    return out


def compute_bid_id(evidence: Evidence) -> str:
    """Unique id of one signed submission: keccak256(signature header || body)."""
    return to_hex(keccak256(evidence.signature.encode() + b"\n" + evidence.body))


def parse_params(params: Any, method: str) -> Mapping[str, Any]:
    """The one parameter object of ``method`` (alone, or alone in a list)."""
    if isinstance(params, list):
        if len(params) != 1:
            raise InvalidParams(f"{method} takes exactly one parameter object")
        params = params[0]
    if not isinstance(params, Mapping):
        raise InvalidParams(f"{method} parameter must be an object")
    return params


def parse_replacement_uuid(value: Any) -> str | None:
    """A replacementUuid in its canonical form (lower-case hex, no dashes); None if unset."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _UUID.match(value):
        raise InvalidParams("replacementUuid must be a UUID string", field="replacementUuid")
    return value.lower().replace("-", "")


def _decode_txs(
    raw_list: Any, max_txs: int, max_bytes: int, decode: TxDecoder = decode_transaction
) -> tuple[Tx, ...]:
    if not isinstance(raw_list, list):
        raise InvalidParams("txs must be a list of raw transaction hex strings", field="txs")
    # Verify the bundle is neither empty nor over the size limits, before any crypto
    if not raw_list:
        raise EmptyBundle("a bundle needs at least one transaction")
    if len(raw_list) > max_txs:
        raise BundleTooLarge(f"a bundle may hold at most {max_txs} transactions", limit=max_txs)
    raws: list[bytes] = []
    size = 0
    for i, item in enumerate(raw_list):
        try:
            raw = from_hex(item, what=f"txs[{i}]")
        except ValueError as exc:
            raise InvalidParams(str(exc), field="txs", index=i) from None
        size += len(raw)
        raws.append(raw)
    if size > max_bytes:
        raise BundleTooLarge(f"bundle is {size} bytes; the limit is {max_bytes}", limit=max_bytes)
    txs: list[Tx] = []
    for i, raw in enumerate(raws):
        try:
            txs.append(check_tx_gas(decode(raw)))
        except InvalidTransaction as exc:
            exc.data.setdefault("index", i)
            raise
    return tuple(txs)


def check_tx_gas(t: Tx) -> Tx:
    """Refuse a transaction whose gas limit is below the intrinsic gas of any transaction."""
    # Verify the gas limit could pay for the cheapest transaction (a 0-gas tx never executes)
    if t.gas_limit < C.MIN_TX_GAS:
        raise InvalidTransaction(
            f"gas limit {t.gas_limit} is below the intrinsic {C.MIN_TX_GAS}",
            gas=t.gas_limit,
            minimum=C.MIN_TX_GAS,
        )
    return t


def compute_request_allowance(tx_bytes: int, tx_count: int) -> int:
    """The most bytes an honest signed ``eth_sendBundle`` needs for its transactions: their hex
    (twice their bytes), a reverting and a dropping hash for each, JSON punctuation, and 2 KiB
    for the other fields. A longer request is padding that every committee member would have to
    receive."""
    return 2 * tx_bytes + 160 * tx_count + 2048


def compute_bid(
    params: Any,
    *,
    searcher: str,
    evidence: Evidence,
    rollups: Mapping[int, Rollup],
    clock: SlotClock,
    now_ms: int,
    max_slots_ahead: int,
    endpoint_rollup: int | None = None,
    protected_hashes: frozenset[str] = frozenset(),
    rollup: int | None = None,
    max_rollups_per_bundle: int = DEFAULT_MAX_ROLLUPS_PER_BUNDLE,
    decode: TxDecoder = decode_transaction,
) -> Bid:
    """Validate ``eth_sendBundle`` params and build the Bid. Raises a BlockspaceError subclass.
    The checks run in this order, cheapest first. A cross-rollup bundle comes back as its copy
    for ``rollup`` if it spans it, else for its lowest rollup (``auction.legs``:
    ``compute_bid_copies`` gives every copy)."""
    p = parse_params(params, "eth_sendBundle")
    # Verify the target slot first: it is cheap and most floods fail it
    slot = parse_quantity(p.get("blockNumber"), "blockNumber", maximum=_MAX_TIMESTAMP)
    if slot is None:
        raise InvalidParams("blockNumber (the target slot) is required", field="blockNumber")
    check_target_slot(clock, slot, now_ms, max_slots_ahead)
    stated = parse_stated_rollups(p.get("rollups"), max_rollups_per_bundle)
    # Decode (size limits before decoding use the loosest rollups; each leg's own after)
    txs = _decode_txs(
        p.get("txs"), *compute_decode_limits(rollups, max_rollups_per_bundle), decode
    )
    legs = compute_legs(
        txs,
        rollups,
        endpoint_rollup=endpoint_rollup,
        stated=stated,
        max_rollups=max_rollups_per_bundle,
    )
    checked: list[Leg] = []
    for leg_rollup, leg_txs in legs:
        check_bundle_size(leg_txs, leg_rollup.policy, evidence, request_txs=txs)
        gas = check_bundle_txs(leg_txs, leg_rollup.policy, protected_hashes)
        checked.append(Leg(leg_rollup.chain_id, leg_txs, gas))
    reverting = compute_reverting_hashes(p, txs)
    min_ts, max_ts = compute_timestamp_window(p, clock, slot)
    reserve_wei = sum(r.policy.reserve_price_wei for r, _ in legs)
    bid_wei, explicit = compute_bid_amount(p, txs, reserve_wei)
    whole = Bid(
        bid_id=compute_bid_id(evidence),
        rollup=checked[0].rollup,
        slot=slot,
        searcher=searcher,
        bundle_hash=compute_bundle_hash([t.hash for t in txs]),
        txs=checked[0].txs,
        bid_wei=bid_wei,
        gas=checked[0].gas,
        received_ms=now_ms,
        evidence=evidence,
        replacement_uuid=parse_replacement_uuid(p.get("replacementUuid")),
        reverting_tx_hashes=reverting,
        min_timestamp=min_ts,
        max_timestamp=max_ts,
        explicit_bid=explicit,
        legs=tuple(checked) if len(checked) > 1 else (),
    )
    return compute_bid_copy(whole, rollup)


def check_bundle_size(
    txs: Sequence[Tx],
    policy: Policy,
    evidence: Evidence,
    *,
    request_txs: Sequence[Tx] | None = None,
) -> None:
    """Refuse a bundle (or a cross-rollup bundle's leg) over its rollup's limits: transactions,
    bytes, the signed request's padding (over every transaction of the request,
    ``request_txs``), and the storage keys its access lists name (each is a conflict key)."""
    # Verify the count and bytes of the transactions
    if len(txs) > policy.max_txs_per_bundle:
        raise BundleTooLarge(f"at most {policy.max_txs_per_bundle} transactions per bundle")
    size = sum(len(t.raw) for t in txs)
    if size > policy.max_bundle_bytes:
        raise BundleTooLarge(f"bundle is {size} bytes; the limit is {policy.max_bundle_bytes}")
    # Verify the signed request is not padded beyond what its transactions need
    every = txs if request_txs is None else request_txs
    allowance = compute_request_allowance(sum(len(t.raw) for t in every), len(every))
    if len(evidence.body) > allowance:
        raise BundleTooLarge(
            f"the signed request is {len(evidence.body)} bytes; its transactions need at most "
            f"{allowance}",
            limit=allowance,
        )
    # Verify the access lists name a bounded number of storage keys
    access_keys = sum(len(t.access_keys) for t in txs)
    if access_keys > policy.max_access_keys_per_bundle:
        raise BundleTooLarge(
            f"the access lists name {access_keys} storage keys; the limit is "
            f"{policy.max_access_keys_per_bundle}",
            limit=policy.max_access_keys_per_bundle,
        )


def check_bundle_txs(txs: Sequence[Tx], policy: Policy, protected_hashes: frozenset[str]) -> int:
    """Refuse a bundle whose transactions repeat, front-run a protected tx, or need more gas
    than bundles may use; return its gas."""
    # Verify no transaction appears twice
    hashes = [t.hash for t in txs]
    if len(set(hashes)) != len(hashes):
        raise DuplicateTransaction("a transaction appears twice in the bundle")
    nonces = [(t.sender, t.nonce) for t in txs]
    if len(set(nonces)) != len(nonces):
        raise DuplicateTransaction("two transactions of the bundle share sender and nonce")
    # Verify protected transactions only open a bundle (back-runs yes, front-runs no)
    for i, t in enumerate(txs):
        if i > 0 and t.hash in protected_hashes:
            raise ProtectedTransactionMisplaced(
                "a protected transaction may only be the first of a bundle", index=i, tx=t.hash
            )
    # Verify the bundle fits the gas bundles may use
    gas = sum(t.gas_limit for t in txs)
    bundle_gas = policy.gas_limit - policy.reserved_public_gas
    if gas > bundle_gas:
        raise BundleGasTooHigh(f"bundle needs {gas} gas; bundles get {bundle_gas}", gas=gas)
    return gas


def compute_reverting_hashes(p: Mapping[str, Any], txs: Sequence[Tx]) -> tuple[str, ...]:
    """``revertingTxHashes``: hashes of the bundle's own transactions, each at most once."""
    reverting_raw = p.get("revertingTxHashes") or []
    if not isinstance(reverting_raw, list) or len(reverting_raw) > len(txs):
        raise InvalidParams(
            "revertingTxHashes must be a list of at most one hash per transaction",
            field="revertingTxHashes",
        )
    hashes = {t.hash for t in txs}
    reverting: list[str] = []
    for h in reverting_raw:
        try:
            hh = to_hex(from_hex(h, what="revertingTxHashes entry", length=32))
        except ValueError as exc:
            raise InvalidParams(str(exc), field="revertingTxHashes") from None
        # Verify it names a transaction of the bundle, once
        if hh not in hashes or hh in reverting:
            raise InvalidParams(f"reverting hash {hh} is not in the bundle, or named twice")
        reverting.append(hh)
    return tuple(reverting)


def compute_timestamp_window(
    p: Mapping[str, Any], clock: SlotClock, slot: int
) -> tuple[int | None, int | None]:
    """``minTimestamp`` / ``maxTimestamp`` (0 or absent: unset), which must admit the slot's
    block timestamp."""
    min_ts = parse_quantity(p.get("minTimestamp"), "minTimestamp", maximum=_MAX_TIMESTAMP) or None
    max_ts = parse_quantity(p.get("maxTimestamp"), "maxTimestamp", maximum=_MAX_TIMESTAMP) or None
    ts = compute_slot_timestamp(clock, slot)
    # Verify the window is a window, and admits the slot's block
    if min_ts is not None and max_ts is not None and min_ts > max_ts:
        raise InvalidTimestampRange("minTimestamp is after maxTimestamp")
    if (min_ts is not None and min_ts > ts) or (max_ts is not None and max_ts < ts):
        raise InvalidTimestampRange(
            f"the bundle's timestamp window excludes slot {slot} (timestamp {ts})", timestamp=ts
        )
    return min_ts, max_ts


def compute_bid_amount(
    p: Mapping[str, Any], txs: Sequence[Tx], reserve_price_wei: int
) -> tuple[int, bool]:
    """The bid in wei: the explicit field (our extension) or the priority tips of every
    transaction (of every leg); and whether it was explicit. ``reserve_price_wei``: the sum of
    the spanned rollups' reserve prices."""
    explicit = parse_quantity(p.get("bid"), "bid", allow_decimal_string=True)
    bid_wei = explicit if explicit is not None else sum(compute_tip_wei(t) for t in txs)
    source = "explicit bid" if explicit is not None else "bid (the bundle's priority tips)"
    # Verify the bid fits the block's amount fields with room for a slot's sums
    if bid_wei > C.MAX_BID_WEI:
        raise BidTooHigh(
            f"{source} is above the maximum {C.MAX_BID_WEI} wei", maximum_wei=str(C.MAX_BID_WEI)
        )
    # Verify the reserve price
    minimum = max(reserve_price_wei, 1)
    if bid_wei < minimum:
        raise BidTooLow(
            f"{source} of {bid_wei} wei is below the minimum {minimum} wei "
            f"(reserve price {reserve_price_wei})",
            minimum_wei=str(minimum),
            reserve_price_wei=str(reserve_price_wei),
        )
    return bid_wei, explicit is not None


def compute_cancel(
    params: Any,
    *,
    searcher: str,
    evidence: Evidence,
    rollup: int,
    clock: SlotClock,
    now_ms: int,
    max_slots_ahead: int,
) -> Cancel:
    """Validate ``eth_cancelBundle`` params (``{"replacementUuid": ...}``, optionally with our
    ``blockNumber`` extension naming the one slot it cancels in)."""
    p = parse_params(params, "eth_cancelBundle")
    uuid = parse_replacement_uuid(p.get("replacementUuid"))
    if uuid is None:
        raise InvalidParams("replacementUuid is required", field="replacementUuid")
    slot = parse_quantity(p.get("blockNumber"), "blockNumber", maximum=_MAX_TIMESTAMP)
    if slot is not None:
        # Verify the named slot still takes events (a cancel bound to a slot dies with it)
        check_target_slot(clock, slot, now_ms, max_slots_ahead)
    return Cancel(
        rollup=rollup,
        searcher=searcher,
        replacement_uuid=uuid,
        received_ms=now_ms,
        evidence=evidence,
        slot=slot,
    )


def compute_cancel_slots(cancel: Cancel, clock: SlotClock, max_slots_ahead: int) -> list[int]:
    """The slots a cancel may apply to: the one it names, else every slot open when it arrived
    (its validity window: a replay after they closed cancels nothing)."""
    if cancel.slot is not None:
        return [cancel.slot]
    current = compute_slot_at(clock, cancel.received_ms)
    return list(range(current, current + max_slots_ahead + 1))


def compute_public_tx(
    params: Any,
    *,
    rollups: Mapping[int, Rollup],
    now_ms: int,
    endpoint_rollup: int | None = None,
    protected: bool = False,
) -> PublicTx:
    """Validate ``eth_sendRawTransaction`` (``["0x.."]``) or ``eth_sendPrivateTransaction``
    (``[{"tx": "0x.."}]``) params into a public tx for the rollup's lane."""
    if not isinstance(params, list) or len(params) != 1:
        raise InvalidParams("takes exactly one parameter")
    raw_hex = params[0].get("tx") if isinstance(params[0], Mapping) else params[0]
    try:
        raw = from_hex(raw_hex, what="transaction")
    except ValueError as exc:
        raise InvalidParams(str(exc), field="tx") from None
    t = check_tx_gas(decode_transaction(raw))
    # Verify the tx is for a rollup served here (and this endpoint's, if it names one)
    if t.chain_id is None or t.chain_id not in rollups:
        raise UnknownRollup(f"chain id {t.chain_id} is not served here", chain_id=t.chain_id)
    if endpoint_rollup is not None and t.chain_id != endpoint_rollup:
        raise ChainIdMismatch(
            f"transaction is for chain {t.chain_id}, this endpoint serves {endpoint_rollup}"
        )
    # Verify the public pool may take it: fee floor and gas cap (auction/pool.py)
    check_public_tx_admissible(rollups[t.chain_id].policy, t)
    return PublicTx(rollup=t.chain_id, tx=t, received_ms=now_ms, protected=protected)
