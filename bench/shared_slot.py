"""What one member pays to check and sign a shared slot: several rollups under one slot root.

    .venv/bin/python -m bench.shared_slot [--totals 300 2000] [--rollups 3] [--repeat 5]

For each total number of bids, one member (in this process, no contention, its protection file
on disk) checks and signs, fresh each time:

- ``one``: a slot of one rollup holding every bid (today's single rollup);
- ``shared``: a slot of ``--rollups`` rollups, the bids split evenly (one proposal, every part
  checked, one signature over the slot root);
- ``per rollup``: the same split signed as that many one-rollup proposals (what a committee
  signing each rollup alone would pay, summed).

Prints the medians over ``--repeat`` runs (ms) with the member's phases, and the ratios shared /
one and shared / per rollup in the same run. Real signed bids (bench.committee_latency.BidPool):
1-2 transactions each, half touching 40 hot storage slots.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auction.encoding import ZERO_HASH
from auction.results import compute_slot_result
from auction.slots import SlotClock, compute_deadline_ms, compute_slot_at, compute_slot_start_ms
from auction.types import LoggedEvent
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
CASES = ("one", "shared", "per rollup")


def build_parts(
    settings: Settings, committee_id: bytes, slot: int, pools: dict[int, BidPool]
) -> list[Proposal]:
    """Each rollup's part of ``slot``: its bids re-signed for the slot, its block built."""
    rollups = settings.rollup_configs()
    clock = SlotClock(genesis_ms=settings.genesis_ms, slot_ms=settings.slot_ms)
    deadline = compute_deadline_ms(clock, slot)
    parts = []
    for rollup, pool in pools.items():
        bids = pool.bids_for(slot, compute_slot_start_ms(clock, slot) + 5)
        log = tuple(LoggedEvent(f"{i}-0", b) for i, b in enumerate(bids))
        block = compute_slot_result(rollups[rollup], slot, deadline, ZERO_HASH, log).block
        parts.append(Proposal(committee_id, rollup, slot, block, None, (), log))
    return parts


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
        # a committee per rollup: a member (and protection file) per rollup, summed
        times["per rollup"].append(sum(
            signer.check_ms((p.rollup,), [encode_proposal(compute_slot_proposal(cid, slot, [p]))],
                            f"per-{total}-{run}-{p.rollup}", phases["per rollup"])
            for p in shared
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
            one, shared, per = (r["ms"][c] for c in CASES)
            print(f"{total} bids: one rollup {one:.0f} ms | {args.rollups} rollups under one "
                  f"slot root {shared:.0f} ms | {args.rollups} one-rollup proposals {per:.0f} ms"
                  f" | shared/one {shared / one:.2f} | shared/per-rollup {shared / per:.2f}")
            for case in CASES:
                phases = {k: round(v, 1) for k, v in r["phases"][case].items()}
                print(f"    {case:>10} (last run) phases ms: {phases}")


if __name__ == "__main__":
    main()
