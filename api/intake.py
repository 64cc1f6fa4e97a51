"""Intake: every request that may become an event in a slot's log, from the transports to the
store, and what its sender hears back.

``Intake`` authenticates and rate-limits a searcher, turns each request into its event with the
core's one function (``auction.intake.compute_intake_event``, off the event loop for large
requests), appends it to its slot's log under the intake limits, files a refused bundle in its
slot's history, and sends the sender's ``received`` / ``cancelled`` notifications. It reads
and moves only the rollups' ``ChainState`` (protected txs, the pool's view). Shell only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import operator
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from api.chain import ChainState
from api.history import RefusalRecorder
from api.receipts import Receipter
from auction import constants as C
from auction.auth import recover_evidence
from auction.bundles import compute_cancel_slots, parse_quantity
from auction.errors import (
    BlockspaceError,
    BundleNotFound,
    InvalidParams,
    RateLimited,
    SlotClosed,
    UnknownRollup,
)
from auction.hashing import from_hex, to_hex
from auction.intake import (
    CANCEL_BUNDLE,
    SEND_BUNDLE,
    SEND_PRIVATE_TX,
    SEND_RAW_TX,
    IntakeContext,
    Refused,
    compute_intake_event,
    compute_refused,
)
from auction.legs import compute_bid_copies
from auction.presets import Policy, Preset, Rollup
from auction.sealed import SEND_ENCRYPTED_BUNDLE
from auction.slots import SlotClock, compute_slot_at
from auction.transactions import decode_transaction
from auction.types import (
    Bid,
    BidOutcome,
    Cancel,
    Evidence,
    IntakeEvent,
    PublicTx,
    SealedBid,
    SlotResult,
    Tx,
)
from node.escrow import Escrow
from node.metrics import Metrics
from node.notify import Notifier
from node.stores.base import IntakeLimits, Store

log = logging.getLogger("blockspace.intake")

# Signed requests at least this large are decoded in a worker thread (decision 19; the
# setting decode_offload_bytes).
OFFLOAD_BYTES = 32 * 1024
# A signed cancel takes effect once, when first seen; it is remembered this long, so a replay
# (or a retry) within it changes nothing (docs/protocol.md: cancels).
CANCEL_WINDOW_MS = 7 * 24 * 3600 * 1000


def compute_intake_limits(policy: Policy) -> IntakeLimits:
    """The limits a slot's log enforces with every append, from the rollup's policy."""
    return IntakeLimits(
        max_bundles=policy.max_bundles_per_searcher_per_slot,
        max_bytes=policy.max_bytes_per_searcher_per_slot,
        max_slot_events=policy.max_bids_per_slot,
        max_slot_bytes=policy.max_bytes_per_slot,
    )


# The decoded transactions intake remembers (their sender recoveries): at most this many, and
# at most this many bytes of raw transactions between them.
DECODED_TXS = 65_536
DECODED_TX_BYTES = 32 * 1024 * 1024


class DecodedTxCache:
    """Transactions already decoded here, by their exact raw bytes: a back-run names a victim
    transaction many searchers send, and a searcher resends its bundle every slot, so each is
    decoded (one ECDSA recovery) once.

    Decoding is a pure function of the bytes and the key is the bytes themselves (a dict compares
    them in full after the hash), so no input can make another's entry answer for it; refusals
    are not remembered. Bounded by entries and bytes, least recently used out first: a flood of
    distinct transactions only evicts, and costs the flooder its own rate limit. Thread-safe
    (large requests are decoded in a worker thread)."""

    def __init__(self, max_entries: int = DECODED_TXS, max_bytes: int = DECODED_TX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.hits = 0
        self._bytes = 0
        self._txs: OrderedDict[bytes, Tx] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._txs)

    def decode(self, raw: bytes) -> Tx:
        """``decode_transaction(raw)``, remembered."""
        with self._lock:
            tx = self._txs.get(raw)
            if tx is not None:
                self._txs.move_to_end(raw)
                self.hits += 1
                return tx
        tx = decode_transaction(raw)
        if len(raw) > self.max_bytes:
            return tx
        with self._lock:
            if raw not in self._txs:
                self._txs[raw] = tx
                self._bytes += len(raw)
                while len(self._txs) > self.max_entries or self._bytes > self.max_bytes:
                    old, _ = self._txs.popitem(last=False)
                    self._bytes -= len(old)
        return tx


class TokenBucket:
    """Per-searcher flood control; time is passed in."""

    __slots__ = ("rate", "burst", "tokens", "last_ms")

    def __init__(self, rate_per_s: float, burst: float, now_ms: int) -> None:
        self.rate, self.burst, self.tokens, self.last_ms = rate_per_s, burst, burst, now_ms

    def take(self, now_ms: int) -> bool:
        elapsed = max(0, now_ms - self.last_ms)
        self.last_ms = now_ms
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate / 1000.0)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class Intake:
    """The intake of one engine process (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        rollups: Mapping[int, Rollup],
        chains: Mapping[int, ChainState],
        preset: Preset,
        clock: SlotClock,
        max_slots_ahead: int,
        clock_ms: Callable[[], int],
        notifier: Notifier,
        metrics: Metrics,
        decode_offload_bytes: int = OFFLOAD_BYTES,
        receipter: Receipter | None = None,
        escrow: Escrow | None = None,
        committee_id: Callable[[], bytes | None] = lambda: None,
    ) -> None:
        self.store = store
        self.rollups = rollups
        self.default_rollup = next(iter(rollups))
        self.chains = chains
        self.preset = preset
        self.clock = clock
        self.max_slots_ahead = max_slots_ahead
        self._clock_ms = clock_ms
        self.notifier = notifier
        self.metrics = metrics
        self.decode_offload_bytes = decode_offload_bytes
        self.receipter = receipter  # None: no receipts (only to measure what they cost)
        self.escrow = escrow  # None: deposits are not enforced
        self._committee_id = committee_id  # encrypted bids' committee, read per request
        self.refusals = RefusalRecorder()  # refused bundles, for their slot's history
        self._buckets: dict[str, TokenBucket] = {}
        self.decoded_txs = DecodedTxCache()
        self._intake_limits: dict[int, tuple[Policy, IntakeLimits]] = {}
        # The context of each endpoint as last built, with what it was built from (the chains'
        # protected sets, compared by identity, and the committee id): rebuilt when one changes.
        self._contexts: dict[
            int | None, tuple[tuple[frozenset[str], ...], bytes | None, IntakeContext]
        ] = {}

    def _rate_check(self, searcher: str, now_ms: int) -> None:
        bucket = self._buckets.get(searcher)
        if bucket is None:
            bucket = self._buckets[searcher] = TokenBucket(
                self.preset.searcher_rate_per_s, self.preset.searcher_burst, now_ms
            )
        if not bucket.take(now_ms):
            raise RateLimited("too many requests from this searcher; slow down")

    def authenticate(self, body: bytes, signature: str | None) -> tuple[str, Evidence]:
        """The searcher who signed ``body``, and the evidence (its signature header canonical)."""
        return recover_evidence(body, signature)

    def _endpoint_rollup(self, endpoint_rollup: int | None) -> int:
        if endpoint_rollup is None:
            return self.default_rollup
        if endpoint_rollup not in self.rollups:
            raise UnknownRollup(f"rollup {endpoint_rollup} is not served here")
        return endpoint_rollup

    def intake_context(self, endpoint_rollup: int | None) -> IntakeContext:
        """What requests to ``endpoint_rollup`` (None: ``POST /``) are judged against."""
        # A bundle's rollup is only known once decoded; protected hashes of every rollup are
        # few, and a hash names one tx on one chain, so the union is exact.
        chains = self.chains.values() if endpoint_rollup is None else (
            [self.chains[endpoint_rollup]] if endpoint_rollup in self.chains else []
        )
        sources = tuple(c.protected for c in chains)  # each the same object until it changes
        committee_id = self._committee_id()
        cached = self._contexts.get(endpoint_rollup)
        if (
            cached is not None
            and cached[1] == committee_id
            and len(cached[0]) == len(sources)
            and all(map(operator.is_, cached[0], sources))
        ):
            return cached[2]
        ctx = IntakeContext(
            rollups=self.rollups,
            clock=self.clock,
            max_slots_ahead=self.max_slots_ahead,
            default_rollup=self.default_rollup,
            endpoint_rollup=endpoint_rollup,
            protected_hashes=frozenset().union(*sources),
            max_rollups_per_bundle=self.preset.max_rollups_per_bundle,
            decode=self.decoded_txs.decode,
            committee_id=committee_id,
        )
        if endpoint_rollup is None or endpoint_rollup in self.rollups:
            self._contexts[endpoint_rollup] = (sources, committee_id, ctx)
        return ctx

    async def _derive(
        self,
        method: str,
        params: Any,
        ctx: IntakeContext,
        received_ms: int,
        signer: tuple[str, Evidence] | None = None,
    ) -> IntakeEvent | SealedBid | Refused:
        """The request's event, or its refusal (``auction.intake``). A large request (long
        access lists) takes tens of ms to decode: off the event loop, so it never delays other
        searchers' acknowledgements."""
        body = signer[1].body if signer is not None else b""
        signature = signer[1].signature if signer is not None else None
        request = {"method": method, "params": params}
        if len(body) < self.decode_offload_bytes:
            return compute_intake_event(
                body, signature, received_ms, ctx, request=request, signer=signer
            )
        derive = functools.partial(
            compute_intake_event, body, signature, received_ms, ctx, request=request, signer=signer
        )
        return await asyncio.to_thread(derive)

    async def _event(
        self,
        method: str,
        params: Any,
        ctx: IntakeContext,
        received_ms: int,
        signer: tuple[str, Evidence] | None = None,
    ) -> IntakeEvent | SealedBid:
        """The request's event; its refusal is raised."""
        event = await self._derive(method, params, ctx, received_ms, signer)
        if isinstance(event, Refused):
            raise event.error
        return event

    def _file_refusal(self, refused: Refused) -> None:
        """A refused bundle whose target slot is still open goes into that slot's history."""
        record = refused.record
        if record is not None and record.rollup in self.rollups:
            self.refusals.record(
                self.store,
                record,
                closed_through=self.chains[record.rollup].closed_through,
                open_slot=compute_slot_at(self.clock, self._clock_ms()),
                max_slots_ahead=self.max_slots_ahead,
            )

    async def submit_bundle(
        self,
        params: Any,
        *,
        searcher: str,
        evidence: Evidence,
        endpoint_rollup: int | None,
        transport: str,
        receipts: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """eth_sendBundle; a refusal whose target slot is still open goes into its history. A
        cross-rollup bundle is logged in every rollup it spans at once, or nowhere. With
        ``receipts``, the receipt of every logged copy is appended to it (by rollup)."""
        received_ms = self._clock_ms()
        ctx = self.intake_context(endpoint_rollup)
        refused: Refused | None = None
        try:
            self._rate_check(searcher, received_ms)
            event = await self._derive(SEND_BUNDLE, params, ctx, received_ms, (searcher, evidence))
            if isinstance(event, Refused):
                refused = event
            else:
                assert isinstance(event, Bid)
                copies = compute_bid_copies(event)
                t0 = time.perf_counter()
                await self._hold_deposit(event)
                await self._log_bid(copies)
        except BlockspaceError as exc:  # rate limits and the store's limits
            refused = compute_refused(exc, SEND_BUNDLE, params, searcher, received_ms, ctx)
        if refused is not None:
            self._file_refusal(refused)
            raise refused.error
        # One acknowledged request, counted once (under its lowest rollup for a cross bundle)
        first = copies[0]
        self.metrics.count_bid(first.rollup, first.slot, transport, time.perf_counter() - t0)
        spans = [b.rollup for b in copies] if len(copies) > 1 else None
        for bid in copies if self.notifier.watches_searcher(searcher) else ():
            received = {
                "rollup": bid.rollup,
                "slot": bid.slot,
                "bundleHash": bid.bundle_hash,
                "bidWei": str(bid.bid_wei),
            }
            self.notifier.to_searcher(searcher, "received", received | _rollups(spans))
        if receipts is not None and self.receipter is not None:
            receipts.extend(await self.receipter.sign(
                [self.receipter.bid_receipt(bid) for bid in copies]))  # fmt: skip
        return {"bundleHash": first.bundle_hash} | _rollups(spans)

    async def _hold_deposit(self, bid: Bid) -> None:
        """With deposits enforced, hold the bid against its searcher's free balance before it is
        logged (refused with ``insufficient_deposit``; docs/accountability.md)."""
        if self.escrow is not None:
            await self.escrow.hold_bid(bid)

    async def submit_sealed_bundle(
        self,
        params: Any,
        *,
        searcher: str,
        evidence: Evidence,
        endpoint_rollup: int | None,
        transport: str,
        receipts: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """bs_sendEncryptedBundle: check what can be seen, log the ciphertext as the bid's
        evidence, acknowledge it. Nothing of the bundle is known here, so the answer, the
        notification and the receipt carry ids and public fields only (docs/encryption.md)."""
        received_ms = self._clock_ms()
        self._rate_check(searcher, received_ms)
        ctx = self.intake_context(endpoint_rollup)
        sealed = await self._event(
            SEND_ENCRYPTED_BUNDLE, params, ctx, received_ms, (searcher, evidence)
        )
        assert isinstance(sealed, SealedBid)
        t0 = time.perf_counter()
        await self.store.append_sealed_bid(sealed, self._limits(sealed.rollup))
        self.metrics.count_bid(sealed.rollup, sealed.slot, transport, time.perf_counter() - t0)
        answer = {"bidId": sealed.bid_id, "ciphertextHash": sealed.ciphertext_hash}
        self.notifier.to_searcher(
            searcher,
            "received",
            {"rollup": sealed.rollup, "slot": sealed.slot, "encrypted": True} | answer,
        )
        if receipts is not None and self.receipter is not None:
            receipts.extend(await self.receipter.sign([self.receipter.sealed_bid_receipt(sealed)]))
        return answer

    async def _log_bid(self, copies: Sequence[Bid]) -> None:
        """Append a bid to its slot's log; a cross-rollup bundle's copies to every spanned
        rollup's log in one atomic store step, each under its rollup's limits."""
        if len(copies) == 1:
            await self.store.append_bid(copies[0], self._limits(copies[0].rollup))
        else:
            await self.store.append_bid_copies(copies, [self._limits(b.rollup) for b in copies])

    def _limits(self, rollup: int) -> IntakeLimits:
        """``compute_intake_limits`` of the rollup's policy, built once per policy."""
        policy = self.rollups[rollup].policy
        cached = self._intake_limits.get(rollup)
        if cached is None or cached[0] is not policy:
            cached = self._intake_limits[rollup] = (policy, compute_intake_limits(policy))
        return cached[1]

    async def submit_public_tx(
        self,
        params: Any,
        *,
        endpoint_rollup: int | None,
        protected: bool,
        receipts: list[dict[str, Any]] | None = None,
    ) -> str:
        """A public tx for the rollup's lane (``eth_sendRawTransaction`` / private: protected).
        With ``receipts``, the receipt of the logged tx is appended (none for a tx that was
        already waiting: its first acknowledgement had one)."""
        method = SEND_PRIVATE_TX if protected else SEND_RAW_TX
        ctx = self.intake_context(endpoint_rollup)
        ptx = await self._event(method, params, ctx, self._clock_ms())
        assert isinstance(ptx, PublicTx)
        # Verify the pool takes it: the sender's cap, and room or a better fee than the cheapest
        # (False: it already waits, so logging it again would only grow the log)
        if self.chains[ptx.rollup].pool.check(ptx.tx):
            slot = await self._log_public_tx(ptx)
            if receipts is not None and self.receipter is not None:
                receipts.extend(
                    await self.receipter.sign([self.receipter.public_tx_receipt(ptx, slot)])
                )
        return ptx.tx.hash

    async def requeue_public_txs(self, arrivals: Sequence[PublicTx]) -> None:
        """Log again, in the open slot, the public txs that arrived during a slot that failed to
        be signed: that block never happened, so they are still waiting (docs/committee.md).
        They keep their arrival time and protection; their inclusion-list age restarts."""
        for ptx in arrivals:
            try:
                await self._log_public_tx(ptx)
            except BlockspaceError as exc:  # one tx lost is logged, the others still go in
                log.warning("could not re-log public tx %s: %s", ptx.tx.hash, exc.message)

    async def _log_public_tx(self, ptx: PublicTx) -> int:
        """Log a public tx in the open slot; return the slot it went into."""
        slot = compute_slot_at(self.clock, self._clock_ms())
        try:
            await self.store.append_public_tx(ptx, slot)
        except SlotClosed:
            # The slot closed between the clock read and the write: the tx joins the next one.
            slot += 1
            await self.store.append_public_tx(ptx, slot)
        self.chains[ptx.rollup].arrived(ptx)
        return slot

    async def cancel_bundle(
        self,
        params: Any,
        *,
        searcher: str,
        evidence: Evidence,
        endpoint_rollup: int | None,
        receipts: list[dict[str, Any]] | None = None,
    ) -> bool:
        """eth_cancelBundle. With ``receipts``, the receipt of the cancel in every slot it was
        logged in is appended (none when it found nothing to cancel)."""
        now = self._clock_ms()
        self._rate_check(searcher, now)
        self._endpoint_rollup(endpoint_rollup)  # a cancel's rollup is its endpoint's: served?
        ctx = self.intake_context(endpoint_rollup)
        cancel = await self._event(CANCEL_BUNDLE, params, ctx, now, (searcher, evidence))
        assert isinstance(cancel, Cancel)
        # The answer and the notifications depend only on this searcher's own bids.
        done = await self.store.append_cancel(
            cancel,
            compute_cancel_slots(cancel, self.clock, self.max_slots_ahead),
            self._limits(cancel.rollup),
            CANCEL_WINDOW_MS,
        )
        for slot in done:
            self.notifier.to_searcher(
                searcher,
                "cancelled",
                {"rollup": cancel.rollup, "slot": slot, "replacementUuid": cancel.replacement_uuid},
            )
        if receipts is not None and self.receipter is not None:
            receipts.extend(await self.receipter.sign(
                [self.receipter.cancel_receipt(cancel, slot) for slot in done]))  # fmt: skip
        return bool(done)

    async def bundle_stats(
        self, params: Any, *, searcher: str, endpoint_rollup: int | None
    ) -> dict[str, Any]:
        """flashbots_getBundleStatsV2 for the searcher's own bundle; nothing about others'."""
        if isinstance(params, list) and len(params) == 1:
            params = params[0]
        if not isinstance(params, dict):
            raise InvalidParams("flashbots_getBundleStatsV2 takes one object parameter")
        try:
            bundle_hash = to_hex(from_hex(params.get("bundleHash"), what="bundleHash", length=32))
        except ValueError as exc:
            raise InvalidParams(str(exc), field="bundleHash") from None
        slot = parse_quantity(params.get("blockNumber"), "blockNumber")
        if slot is None:
            raise InvalidParams("blockNumber is required", field="blockNumber")
        # At a rollup's endpoint, its log; at POST /, the default rollup's, then every other
        # served rollup's (a cross-rollup bundle is logged only in the rollups it spans).
        first = self._endpoint_rollup(endpoint_rollup)
        candidates = [first] if endpoint_rollup is not None else [
            first, *(r for r in sorted(self.rollups) if r != first)]  # fmt: skip
        seq, rollup = None, first
        for rollup in candidates:
            seq = await self.store.find_bid_seq(rollup, slot, f"{searcher}:{bundle_hash}")
            if seq is not None:
                break
        if seq is None:
            raise BundleNotFound("no bundle with that hash from this searcher for that slot")
        received_ms = int(seq.split("-")[0])
        out: dict[str, Any] = {
            "isSimulated": False,
            "isHighPriority": True,
            "receivedAt": _iso(received_ms),
            "status": "pending",
        }
        result = await self.store.get_result(rollup, slot)
        if result is not None:
            await self._add_outcome(out, result, searcher, bundle_hash)
        return out

    async def _add_outcome(
        self, out: dict[str, Any], result: SlotResult, searcher: str, bundle_hash: str
    ) -> None:
        """The closed slot's outcome of the bundle; a cross-rollup bundle's payment is the sum of
        its shares in every rollup it spans (its outcome is the same in each)."""
        sealed_at = _iso(result.deadline_ms)
        out["consideredByBuildersAt"] = [{"pubkey": "blockspace", "timestamp": sealed_at}]
        status = C.OUTCOME_LOST
        for o in result.outcomes:
            if o.bid.searcher == searcher and o.bid.bundle_hash == bundle_hash:
                status = o.outcome
                if o.outcome == C.OUTCOME_WON:
                    out["sealedByBuildersAt"] = [{"pubkey": "blockspace", "timestamp": sealed_at}]
                    out["paymentWei"] = str(await self._whole_payment(o))
                if o.bid.legs:
                    out["rollups"] = list(o.bid.rollups)
                break
        out["status"] = status

    async def _whole_payment(self, o: BidOutcome) -> int:
        """What a winner pays for its whole bundle: a cross-rollup one's shares summed."""
        if not o.bid.legs:
            return o.payment_wei
        total = 0
        for rollup in o.bid.rollups:
            result = await self.store.get_result(rollup, o.bid.slot)
            total += sum(x.payment_wei for x in (result.outcomes if result else ())
                         if x.bid.bid_id == o.bid.bid_id)  # fmt: skip
        return total


def _rollups(spans: list[int] | None) -> dict[str, Any]:
    """The ``rollups`` a cross-rollup bundle's answer and notifications name (none otherwise:
    a single-rollup bundle's answer is Flashbots' exact shape)."""
    return {"rollups": spans} if spans is not None else {}


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
