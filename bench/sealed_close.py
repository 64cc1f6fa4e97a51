"""CPU cost of the committee's part of closing a slot with encrypted bids (issue 14, stage 2b).

    .venv/bin/python -m bench.sealed_close [--repeat 3] [--n 10] [--t 7] [--loads 2000x200]

For each load (bids, searchers; each searcher's bids of the slot under one encapsulation) it
measures, as medians over repeats of process CPU time:

- release (one member): ``sealing.release_key_share`` on the whole request: decode, re-derive
  every sealed bid from its signed call (signature recovery, intake rules), the root, the
  durable commitment (SQLite, fsync), the commitment partial and the key share;
- release streamed (one member): the same request to a member that checked every sealed call
  as it streamed in while the slot was open (``Member.accept_stream``, batches of 100): it
  re-derives none, and checks the slot-wide rules, the root and the digest; measured
  alternately with the plain release in the same run (the ratio is streamed / plain), and
  beside it the CPU the member spent on the stream while the slot was open;
- collect (coordinator): verify t answers (commitment partial and key share: two pairing checks
  each), combine the key (checked) and the commitment certificate;
- open (engine, and again each member in ``check_sealed_proposal``): ``compute_openings``: one
  decapsulation per searcher, one AEAD and the plaintext intake rules per bid.

The issue's budget (key release, combine, open and validate within 250 ms of CPU on one core)
is the sum of collect and open; each member's release runs on its own machine.

``--reopen`` measures instead one member's re-opening of a proposal (``reopening.
check_openings``, the "decode" phase of its check) on ``bench.committee_latency``'s slot of
2,000 bids from 200 searchers (its gas mix and storage-key conflicts, so the winners are what
its runs see), every bid sealed, the block the slot function's: **full** (every opened bid
re-derived, the offline verifier's mode) against **sampled** (the member's rule: every
ciphertext opened, winners, replacements and a fresh random sample of 16 derived in full, the
other opened bids bound to their payloads without ECDSA), alternating, medians of process CPU
time; and the floor, opening every ciphertext and nothing else. Results:
bench/results/sealed_close.txt; discussion: docs/encryption.md, "Close" and "Which bids a
member re-opens".
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from api.searcher import BundleEncryptor, SearcherKey, bundle_params, encrypted_bundle_params
from auction.encoding import ZERO_HASH
from auction.intake import compute_intake_event
from auction.results import SlotPart, compute_slot_results
from auction.slots import SlotClock, compute_deadline_ms, compute_slot_start_ms
from auction.types import LoggedSealedBid, SealedBid
from bench.committee_latency import BidPool, SealedPool
from committee import bls, encryption, threshold
from committee.checks import MemberConfig, compute_full_ids, compute_slot_event_ids
from committee.keyrelease import ReleaseAnswer, _Answers, _check_release
from committee.member import DEFAULT_EVIDENCE_SAMPLE, Member
from committee.opening import compute_opened_log, compute_openings
from committee.proposal import Proposal, SlotProposal
from committee.protection import ProtectionStore
from committee.reopening import check_openings, compute_sealed_context
from committee.sealedset import (
    SealedOpening,
    compute_sealed_entry_bytes,
    compute_sealed_order,
    compute_slot_ciphertext_root,
)
from committee.sealing import (
    ReleaseRequest,
    encode_release_request,
    release_key_share,
)
from committee.signer import compute_member_config
from committee.stream import MAX_STREAM_BATCH, encode_stream_batch
from node.settings import Settings

LOADS = ((2000, 200), (500, 50))
ROLLUP = 167_001
SLOT = 1_000
BUDGET_MS = 250.0
GWEI = 10**9


def cpu_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median process CPU time of ``fn`` over ``repeat`` calls (after a warm-up call)."""
    fn()
    runs = []
    for _ in range(repeat):
        c0 = time.process_time_ns()
        fn()
        runs.append(time.process_time_ns() - c0)
    return statistics.median(runs) / 1e6


def build_entries(committee: threshold.CommitteeInfo, settings: Settings, bids: int,
                  searchers: int) -> list[LoggedSealedBid]:  # fmt: skip
    """``bids`` sealed bids from ``searchers`` searchers, as intake logs them."""
    config = compute_member_config(settings, committee, 1)
    ctx = compute_sealed_context(config, ROLLUP)
    start = compute_slot_start_ms(config.clock, SLOT)
    entries: list[LoggedSealedBid] = []
    for s in range(searchers):
        k = SearcherKey.from_seed(10_000 + s)
        enc = BundleEncryptor(committee, SLOT, searcher=k.address)
        for j in range(bids // searchers):
            raw = k.sign_tx(type=2, chainId=ROLLUP, nonce=j, maxPriorityFeePerGas=2 * GWEI,
                            maxFeePerGas=100 * GWEI, gas=21_000, to="0x" + "42" * 20, value=0,
                            data=b"")  # fmt: skip
            body = k.request("eth_sendBundle", [bundle_params([raw], SLOT,
                                                              bid_wei=10**15 + j)])  # fmt: skip
            call = k.request("bs_sendEncryptedBundle",
                             [encrypted_bundle_params(enc.encrypt(body))])  # fmt: skip
            event = compute_intake_event(call, k.sign_body(call), start + 10, ctx)
            if not isinstance(event, SealedBid):
                raise RuntimeError(f"intake refused a bench bid: {event}")
            entries.append(LoggedSealedBid(f"{start + 10}-{len(entries)}", event))
    return compute_sealed_order(entries)


def stream_sealed(member: Member, committee_id: bytes, entries: list[LoggedSealedBid]) -> float:
    """Stream ``entries`` (one rollup's sealed calls) to ``member`` in batches as the feeder
    sends them; the member's CPU ms."""
    raws = [compute_sealed_entry_bytes(e) for e in entries]
    c0 = time.process_time_ns()
    for start in range(0, len(raws), MAX_STREAM_BATCH):
        body = encode_stream_batch(committee_id, SLOT, ROLLUP, start,
                                   raws[start : start + MAX_STREAM_BATCH], sealed=True)
        member.accept_stream(body)
    return (time.process_time_ns() - c0) / 1e6


def measure_releases(
    shares: list[threshold.KeyShare],
    config: MemberConfig,
    body: bytes,
    entries: list[LoggedSealedBid],
    after: int,
    tmp: str,
    repeat: int,
) -> tuple[float, float, float]:
    """A member's release CPU ms without and with the sealed calls streamed in first
    (alternating, medians), and the stream's own CPU ms."""
    counter = iter(range(10**6))
    clock = {"ms": compute_slot_start_ms(config.clock, SLOT) + 100}
    streamed = Member(shares[0], config, ProtectionStore(Path(tmp) / "streamed.sqlite3"),
                      clock_ms=lambda: clock["ms"])  # fmt: skip
    stream_ms = stream_sealed(streamed, config.committee.committee_id, entries)
    clock["ms"] = after

    def release(with_stream: bool) -> float:
        # A fresh protection file each time: a first commitment, not a repeat; the streamed
        # member's stream state (what it checked while the slot was open) carried over
        path = Path(tmp) / f"m{next(counter)}.sqlite3"
        member = Member(shares[0], config, ProtectionStore(path), clock_ms=lambda: after)
        if with_stream:
            member.streams = streamed.streams
        try:
            c0 = time.process_time_ns()
            release_key_share(member, body)
            return (time.process_time_ns() - c0) / 1e6
        finally:
            member.protection.close()

    release(False)
    release(True)
    plain, pre = [], []
    for _ in range(repeat):
        plain.append(release(False))
        pre.append(release(True))
    streamed.protection.close()
    return statistics.median(plain), statistics.median(pre), stream_ms


def measure_load(
    committee: threshold.CommitteeInfo,
    shares: list[threshold.KeyShare],
    settings: Settings,
    after: int,
    bids: int,
    searchers: int,
    args: argparse.Namespace,
) -> tuple[float, float, float, float, float]:
    """One load's release (plain, streamed), stream, collect and open CPU ms (module
    docstring)."""
    entries = build_entries(committee, settings, bids, searchers)
    root = compute_slot_ciphertext_root(committee.committee_id, SLOT, entries)
    body = encode_release_request(ReleaseRequest(committee.committee_id, SLOT, root,
                                                 tuple(entries)))  # fmt: skip
    config = compute_member_config(settings, committee, 1)
    with tempfile.TemporaryDirectory() as tmp:
        release_ms, streamed_ms, stream_ms = measure_releases(shares, config, body, entries,
                                                              after, tmp, args.repeat)
        answers = []
        for share in shares[: args.t]:
            m = Member(share, compute_member_config(settings, committee, share.index),
                       ProtectionStore(Path(tmp) / f"a{share.index}.sqlite3"),
                       clock_ms=lambda: after)  # fmt: skip
            answers.append(ReleaseAnswer(share.index, release=release_key_share(m, body)))
            m.protection.close()

    def collect() -> bytes:
        out = _Answers()
        for a in answers:
            _check_release(committee, SLOT, root, a, out)
        key = encryption.combine_key_shares(
            committee, SLOT, {i: r.key_share for i, r in out.valid.items()})
        threshold.combine({i: r.commitment_partial for i, r in out.valid.items()}, args.t,
                          args.n)  # fmt: skip
        return key

    collect_ms = cpu_ms(collect, args.repeat)
    key = collect()
    ctx = compute_sealed_context(config, ROLLUP)
    open_ms = cpu_ms(lambda: compute_openings(committee, SLOT, key, entries, ctx),
                     args.repeat)  # fmt: skip
    opened = compute_openings(committee, SLOT, key, entries, ctx)
    if sum(1 for o in opened.openings if o.bids) != bids:
        raise RuntimeError("not every bench bid opened")
    return release_ms, streamed_ms, stream_ms, collect_ms, open_ms


def parse_loads(text: str) -> list[tuple[int, int]]:
    """``2000x200,500x50`` as [(bids, searchers), ...]."""
    loads = []
    for part in text.split(","):
        bids, _, searchers = part.partition("x")
        loads.append((int(bids), int(searchers)))
    return loads


def build_reopen_proposal(committee: threshold.CommitteeInfo,
                          shares: list[threshold.KeyShare], settings: Settings, bids: int,
                          searchers: int) -> SlotProposal:  # fmt: skip
    """``bench.committee_latency``'s slot of ``bids`` bundles from ``searchers`` searchers,
    every one sealed, opened and closed as the engine does: the proposal members check (its
    commitment certificate is not checked by ``check_openings``: the caller's)."""
    config = compute_member_config(settings, committee, 1)
    now = compute_slot_start_ms(config.clock, SLOT) + 10
    pool = SealedPool(BidPool(bids, settings, searchers=searchers), committee)
    entries = compute_sealed_order([LoggedSealedBid(f"{now}-{i}", sealed)
                                    for i, sealed in enumerate(pool.sealed_for(SLOT, now))])
    key = encryption.combine_key_shares(
        committee, SLOT, {s.index: encryption.key_share(s, SLOT) for s in shares[: committee.t]})
    ctx = compute_sealed_context(config, ROLLUP)
    opened = compute_openings(committee, SLOT, key, entries, ctx)
    if sum(1 for o in opened.openings if o.bids) != bids:
        raise RuntimeError("not every bench bid opened")
    log = tuple(compute_opened_log(ROLLUP, [], opened))
    deadline = compute_deadline_ms(config.clock, SLOT)
    [result] = compute_slot_results(SLOT, deadline, [SlotPart(config.rollups[ROLLUP], ZERO_HASH,
                                                              log)], price_of_fairness=False)
    cid = committee.committee_id
    root = compute_slot_ciphertext_root(cid, SLOT, entries)
    sealed = SealedOpening(root, key, bytes(bls.SIGNATURE_LENGTH), tuple(entries))
    part = Proposal(cid, ROLLUP, SLOT, result.block, None, (), log)
    return SlotProposal(cid, SLOT, (part,), sealed=sealed)


def main_reopen(args: argparse.Namespace, committee: threshold.CommitteeInfo,
                shares: list[threshold.KeyShare], settings: Settings) -> None:  # fmt: skip
    """One member's re-opening, full against sampled (module docstring)."""
    bids, searchers = 2000, 200
    proposal = build_reopen_proposal(committee, shares, settings, bids, searchers)
    config = compute_member_config(settings, committee, 1)
    rng = random.SystemRandom()
    ids = compute_slot_event_ids(proposal)
    sample = frozenset(rng.sample(ids, min(DEFAULT_EVIDENCE_SAMPLE, len(ids))))
    derived = compute_full_ids(proposal, sample)
    winners = len(proposal.parts[0].block.bundles)
    sealed = proposal.sealed
    assert sealed is not None

    def floor() -> object:
        opener = encryption.Opener(committee, SLOT, sealed.slot_key)
        return [opener.open(e.event.ciphertext) for e in sealed.entries]

    def full() -> object:
        return check_openings(config, proposal)

    def sampled() -> object:
        # A fresh sample each check, as a member draws one per proposal
        fresh = frozenset(rng.sample(ids, min(DEFAULT_EVIDENCE_SAMPLE, len(ids))))
        return check_openings(config, proposal, sample=fresh)

    if full() != sampled():
        raise RuntimeError("the two modes disagree on the opened bids")
    load0 = os.getloadavg()[0]
    runs: dict[str, list[float]] = {"full": [], "sampled": [], "open only": []}
    for _ in range(args.repeat):
        for name, fn in (("full", full), ("sampled", sampled), ("open only", floor)):
            c0 = time.process_time_ns()
            fn()
            runs[name].append((time.process_time_ns() - c0) / 1e6)
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"one member's re-opening of {bids} sealed bids from {searchers} searchers "
          f"(bench.committee_latency's slot: {winners} winners; sampled derives "
          f"{len(derived)} in full: winners, replacements, a sample of "
          f"{DEFAULT_EVIDENCE_SAMPLE}); medians of {args.repeat} alternating runs, process CPU "
          f"ms; load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after")  # fmt: skip
    for name in ("full", "sampled", "open only"):
        print(f"  {name:<10} {med[name]:>8.1f} ms   ({' '.join(f'{x:.0f}' for x in runs[name])})")
    print(f"  sampled / full = {med['sampled'] / med['full']:.2f}; "
          f"per bid beyond opening: full {(med['full'] - med['open only']) / bids * 1e3:.0f} us, "
          f"sampled {(med['sampled'] - med['open only']) / bids * 1e3:.0f} us")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--t", type=int, default=7)
    parser.add_argument("--loads", type=parse_loads, default=list(LOADS),
                        help="bids x searchers, comma separated (default 2000x200,500x50)")
    parser.add_argument("--reopen", action="store_true",
                        help="one member's re-opening of a proposal, full against sampled")
    args = parser.parse_args()
    committee, shares = threshold.deal(args.n, args.t, bytes(range(32)))
    settings = Settings(rollups=[ROLLUP], slot_ms=2000, genesis_ms=0)
    clock = SlotClock(genesis_ms=0, slot_ms=2000)
    after = compute_deadline_ms(clock, SLOT) + 5
    if args.reopen:
        main_reopen(args, committee, shares, settings)
        return
    print(f"committee {args.t} of {args.n}; medians of {args.repeat} runs, process CPU ms; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'bids':>6} {'searchers':>9} | {'release (1 member)':>18} | "
          f"{'release streamed':>16} | {'ratio':>5} | {'stream (open)':>13} | "
          f"{'collect t':>9} | {'open':>8} | {'collect + open':>14} | "
          f"within {BUDGET_MS:.0f} ms")  # fmt: skip
    for bids, searchers in args.loads:
        release_ms, streamed_ms, stream_ms, collect_ms, open_ms = measure_load(
            committee, shares, settings, after, bids, searchers, args)  # fmt: skip
        total = collect_ms + open_ms
        print(f"{bids:>6} {searchers:>9} | {release_ms:>18.1f} | {streamed_ms:>16.1f} | "
              f"{streamed_ms / release_ms:>5.2f} | {stream_ms:>13.1f} | {collect_ms:>9.1f} | "
              f"{open_ms:>8.1f} | {total:>14.1f} | {'yes' if total <= BUDGET_MS else 'no'}",
              flush=True)  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
