"""What one member pays to check and sign a shared slot: several rollups under one slot root.

    .venv/bin/python -m bench.shared_slot [--totals 300 2000] [--rollups 3] [--repeat 5]

For each total number of bids, one member (in this process, no contention, its protection file
on disk) checks and signs, fresh each time:

- ``one``: a slot of one rollup holding every bid (today's single rollup);
- ``shared``: a slot of ``--rollups`` rollups, the bids split evenly (one proposal, every part
  checked, one signature over the slot root);
- ``per rollup``: the same split signed as that many one-rollup proposals (what a committee
  signing each rollup alone would pay, summed);
- ``cross``: the ``shared`` slot with 20% of its bundles spanning two rollups (one copy per
  spanned rollup's log, packed jointly).

Prints the medians over ``--repeat`` runs (ms) with the member's phases, and the ratios shared /
one and shared / per rollup in the same run. Real signed bids (bench.committee_latency.BidPool):
1-2 transactions each, half touching 40 hot storage slots.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.searcher import SearcherKey, bundle_params
from auction.bundles import compute_bid, compute_bid_id
from auction.encoding import ZERO_HASH
from auction.legs import compute_bid_copies
from auction.results import SlotPart, compute_slot_results
from auction.slots import SlotClock, compute_deadline_ms, compute_slot_at, compute_slot_start_ms
from auction.types import Bid, Evidence, LoggedEvent
from bench.committee_latency import BidPool
from committee import keyfiles, threshold
from committee.local import write_committee_files
from committee.member import Member
from committee.proposal import Proposal, compute_slot_proposal, encode_proposal
from committee.protection import ProtectionStore
from committee.signer import compute_member_config
from node.settings import Settings
from ordering import packer

ROLLUPS = (167_001, 10, 8453, 42161, 8)
SLOT_MS = 2_000
CASES = ("one", "shared", "per rollup", "cross")
GWEI = 10**9
# Share of a slot's bundles that span two rollups in the ``cross`` case.
CROSS_SHARE = 0.2


def build_parts(
    settings: Settings, committee_id: bytes, slot: int, pools: dict[int, BidPool],
    cross: CrossPool | None = None,
) -> list[Proposal]:
    """Every rollup's part of ``slot``: its bids (and the cross bundles' copies) re-signed for
    the slot, every block built by the joint close, as the engine does."""
    rollups = settings.rollup_configs()
    clock = SlotClock(genesis_ms=settings.genesis_ms, slot_ms=settings.slot_ms)
    deadline = compute_deadline_ms(clock, slot)
    now = compute_slot_start_ms(clock, slot) + 5
    bids: dict[int, list[Bid]] = {r: list(pool.bids_for(slot, now)) for r, pool in pools.items()}
    for copy in cross.copies_for(slot, now) if cross is not None else ():
        bids.setdefault(copy.rollup, []).append(copy)
    logs = {r: tuple(LoggedEvent(f"{i}-0", b) for i, b in enumerate(bs)) for r, bs in bids.items()}
    parts = [SlotPart(rollups[r], ZERO_HASH, logs[r]) for r in sorted(logs)]
    results = compute_slot_results(slot, deadline, parts)
    return [Proposal(committee_id, r.rollup, slot, r.block, None, (), logs[r.rollup])
            for r in results]  # fmt: skip


class CrossPool:
    """``size`` signed cross-rollup bundles, each a transaction on two of ``ids`` (half touching
    hot storage keys); per slot only the request body is re-signed, as ``BidPool`` does."""

    def __init__(self, size: int, settings: Settings, ids: tuple[int, ...], seed: int = 3) -> None:
        rng = random.Random(seed)
        rollups = settings.rollup_configs()
        clock = SlotClock(genesis_ms=settings.genesis_ms, slot_ms=settings.slot_ms)
        slot0 = compute_slot_at(clock, int(time.time() * 1000)) + 1
        self.templates: list[tuple[SearcherKey, list[bytes], int, Bid]] = []
        for i in range(size):
            k = SearcherKey.from_seed(5_000 + i)
            txs = []
            for n, chain in enumerate(sorted(rng.sample(ids, 2))):
                hot = rng.random() < 0.5
                access = [{"address": "0x" + "aa" * 20,
                           "storageKeys": ["0x" + f"{rng.randrange(40):064x}"]}] if hot else []
                txs.append(k.sign_tx(
                    type=2, chainId=chain, nonce=n, maxPriorityFeePerGas=GWEI,
                    maxFeePerGas=200 * GWEI, gas=rng.choice((90_000, 150_000)),
                    to="0x" + "bb" * 20, value=0, data=b"", accessList=access))  # fmt: skip
            bid_wei = int(rng.paretovariate(1.5) * 2 * 10**15) + i
            params = bundle_params(txs, slot0, bid_wei=bid_wei)
            body = k.request("eth_sendBundle", [params])
            template = compute_bid(
                params, searcher=k.address, evidence=Evidence(body, k.sign_body(body)),
                rollups=rollups, clock=clock, now_ms=compute_slot_start_ms(clock, slot0),
                max_slots_ahead=settings.base_preset().max_slots_ahead,
            )
            self.templates.append((k, txs, bid_wei, template))

    def copies_for(self, slot: int, now_ms: int) -> list[Bid]:
        out: list[Bid] = []
        for k, txs, bid_wei, template in self.templates:
            body = k.request("eth_sendBundle", [bundle_params(txs, slot, bid_wei=bid_wei)])
            evidence = Evidence(body, k.sign_body(body))
            bid = dataclasses.replace(template, slot=slot, evidence=evidence,
                                      bid_id=compute_bid_id(evidence), received_ms=now_ms)
            out.extend(compute_bid_copies(bid))
        return out


@dataclass
class Signer:
    """A fresh member (its own protection file) serving ``rollups``, just after the close."""

    committee: threshold.CommitteeInfo
    share: threshold.KeyShare
    now_ms: int
    workdir: Path

    def check_ms(self, rollups: tuple[int, ...], bodies: list[bytes], name: str,
                 phases: dict[str, float]) -> float:
        """Sign ``bodies`` in turn; return the wall ms and add the member's phases."""
        settings = Settings(slot_ms=SLOT_MS, rollups=list(rollups), genesis_ms=0)
        member = Member(
            self.share,
            compute_member_config(settings, self.committee, self.share.index),
            ProtectionStore(self.workdir / f"{name}.sqlite3"),
            clock_ms=lambda: self.now_ms,
        )
        t0 = time.perf_counter()
        for body in bodies:
            for k, v in member.sign_proposal(body).timings_ms.items():
                phases[k] = phases.get(k, 0.0) + v
        elapsed = (time.perf_counter() - t0) * 1e3
        member.protection.close()
        return elapsed


def run_total(total: int, n_rollups: int, repeat: int, workdir: Path) -> dict[str, Any]:
    """Median ms of the three cases for ``total`` bids, and the last run's phases."""
    ids = ROLLUPS[:n_rollups]
    settings = Settings(slot_ms=SLOT_MS, rollups=list(ids), genesis_ms=0)
    committee_path, share_paths = write_committee_files(workdir / f"keys-{total}", 4, 3)
    committee = keyfiles.read_committee_file(committee_path)
    share = keyfiles.read_share_file(share_paths[0])[0]
    clock = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
    one_pool = {ids[0]: BidPool(total, settings, seed=7, rollup=ids[0])}
    split = {r: BidPool(total // n_rollups, settings, seed=7 + i, rollup=r)
             for i, r in enumerate(ids)}
    n_cross = int(total * CROSS_SHARE)
    rest = {r: BidPool((total - n_cross) // n_rollups, settings, seed=7 + i, rollup=r)
            for i, r in enumerate(ids)}
    cross_pool = CrossPool(n_cross, settings, ids)
    times: dict[str, list[float]] = {c: [] for c in CASES}
    phases: dict[str, dict[str, float]] = {}
    cid = committee.committee_id
    for run in range(repeat):
        slot = compute_slot_at(clock, int(time.time() * 1000)) + 10 + run
        one = build_parts(settings, cid, slot, one_pool)
        shared = build_parts(settings, cid, slot, split)
        signer = Signer(committee, share, compute_deadline_ms(clock, slot) + 1, workdir)
        phases = {c: {} for c in CASES}
        times["one"].append(signer.check_ms(
            (ids[0],), [encode_proposal(compute_slot_proposal(cid, slot, one))],
            f"one-{total}-{run}", phases["one"]))
        times["shared"].append(signer.check_ms(
            ids, [encode_proposal(compute_slot_proposal(cid, slot, shared))],
            f"shared-{total}-{run}", phases["shared"]))
        crossed = build_parts(settings, cid, slot, rest, cross_pool)
        times["cross"].append(signer.check_ms(
            ids, [encode_proposal(compute_slot_proposal(cid, slot, crossed))],
            f"cross-{total}-{run}", phases["cross"]))
        # a committee per rollup: a member (and protection file) per rollup, each rollup's
        # block built alone (its own budget), summed
        alone = [build_parts(settings, cid, slot, {r: split[r]})[0] for r in ids]
        times["per rollup"].append(sum(
            signer.check_ms((p.rollup,), [encode_proposal(compute_slot_proposal(cid, slot, [p]))],
                            f"per-{total}-{run}-{p.rollup}", phases["per rollup"])
            for p in alone
        ))
    return {"ms": {c: statistics.median(v) for c, v in times.items()}, "phases": phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--totals", type=int, nargs="+", default=[300, 2000])
    parser.add_argument("--rollups", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    packer.warm_up()
    with tempfile.TemporaryDirectory(prefix="bench-shared-slot-") as tmp:
        for total in args.totals:
            r = run_total(total, args.rollups, args.repeat, Path(tmp))
            one, shared, per, cross = (r["ms"][c] for c in CASES)
            print(f"{total} bids: one rollup {one:.0f} ms | {args.rollups} rollups under one "
                  f"slot root {shared:.0f} ms | {args.rollups} one-rollup proposals {per:.0f} ms"
                  f" | shared/one {shared / one:.2f} | shared/per-rollup {shared / per:.2f}"
                  f" | {CROSS_SHARE:.0%} cross-rollup {cross:.0f} ms, cross/shared "
                  f"{cross / shared:.2f}")
            for case in CASES:
                phases = {k: round(v, 1) for k, v in r["phases"][case].items()}
                print(f"    {case:>10} (last run) phases ms: {phases}")


if __name__ == "__main__":
    main()
