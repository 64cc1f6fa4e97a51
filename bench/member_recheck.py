"""One member's full check of a shared slot against a single rollup's, offline, in one process.

    PYTHONPATH=. .venv/bin/python -m bench.member_recheck [--bids 2000] [--rollups 3]
        [--cross-share 0.2] [--slots 2] [--repeat 7] [--profile shared]

Builds, for each of ``--slots`` slots, two slots with the same number of bids (real signed bundles:
``bench.committee_latency.BidPool``, ``bench.shared_slot.CrossPool``):

- ``single``: one rollup (167001) holding every bid (today's single rollup);
- ``shared``: ``--rollups`` rollups under one slot root, ``--cross-share`` of the bundles spanning
  two rollups (a copy in each spanned rollup's log), the rest split evenly: the same generators
  and proportions as ``bench.committee_latency --shared-rollups``.

Each slot is also checked the streaming way (``committee.stream``): a fresh member takes the
slot's logs in batches while the slot is open (timed apart: that CPU is spread over the slot),
then signs the version-4 proposal naming all of it as streamed; the figure that matters is
the CPU of that deadline work beside the whole check's (``--stream-check full|sample``).

Each slot's blocks come from the joint close (``auction.results.compute_slot_results``, as the
engine builds them), its proposal from ``committee.proposal.compute_slot_proposal`` and
``encode_proposal`` (the coordinator's path), and one fresh member (its own protection file)
checks and signs it: decode, parent and pool, evidence, the slot's re-run, fairness and
atomicity, sign; ``--repeat`` times per slot, the two cases alternating. Prints the medians
over every check of the member's CPU time (this process's, less noisy than wall time
on a shared machine), wall time and phases (wall) for both, the
ratio shared / single of the CPU time (issue 13's target: <= 1.0), proposal bytes and the engine
side (slot results, build + encode proposal). ``--profile shared|single`` adds a cProfile of
one more check of that slot (top functions by cumulative time). No processes, no sockets: the
figures are one core's, without the noise of 20 signer processes.

In the streaming path the member re-runs the slot from the encoding it kept as the events
streamed in (``auction.columnar``); the rows ``repack from scratch`` and ``repack from
columns`` time that re-run both ways on the member's streamed logs (``compute_expected_results``
without and with the encoder, alternating, collector paused as the member runs it; identical
results checked), the same-run comparison for decisions 137-140.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from auction.slots import SlotClock, compute_deadline_ms, compute_slot_at
from bench.committee_latency import ROLLUP, BidPool
from bench.shared_slot import ROLLUPS, CrossPool, build_parts
from committee import keyfiles, threshold
from committee.checks import compute_expected_results
from committee.local import write_committee_files
from committee.member import STREAM_CHECKS, Member
from committee.proposal import SlotProposal, compute_slot_proposal, encode_proposal
from committee.protection import ProtectionStore
from committee.signer import compute_member_config
from committee.stream import (
    MAX_STREAM_BATCH,
    compute_digests,
    compute_entry_bytes,
    encode_stream_batch,
)
from node.collector import paused_gc
from node.settings import Settings
from ordering import packer

SLOT_MS = 6_000
CASES = ("single", "shared")
PHASES = ("decode", "checks", "evidence", "repack", "sign")


class Case:
    """One deployment's bid generators and settings (single rollup, or several)."""

    def __init__(self, ids: list[int], bids: int, cross_share: float) -> None:
        self.ids = ids
        self.settings = Settings(slot_ms=SLOT_MS, rollups=ids, genesis_ms=0)
        if len(ids) == 1:
            self.pools = {ids[0]: BidPool(bids, self.settings)}
            self.cross: CrossPool | None = None
            return
        n_cross = int(bids * cross_share)
        rest = (bids - n_cross) // len(ids)
        self.pools = {r: BidPool(rest + (i < (bids - n_cross) % len(ids)), self.settings,
                                 seed=7 + i, rollup=r) for i, r in enumerate(ids)}
        self.cross = CrossPool(n_cross, self.settings, tuple(ids))

    def proposal_bytes(self, committee_id: bytes, slot: int
                       ) -> tuple[bytes, dict[str, float], SlotProposal]:
        """The slot's proposal as the coordinator sends it, the engine side's times, and the
        proposal itself."""
        t0 = time.perf_counter()
        parts = build_parts(self.settings, committee_id, slot, self.pools, self.cross)
        t1 = time.perf_counter()
        proposal = compute_slot_proposal(committee_id, slot, parts)
        body = encode_proposal(proposal)
        t2 = time.perf_counter()
        logged = sum(len(p.log) for p in parts)
        winners = sum(len(p.block.bundles) for p in parts)
        return body, {"results (engine close)": (t1 - t0) * 1e3,
                      "build + encode proposal": (t2 - t1) * 1e3,
                      "log entries": logged, "winning entries": winners}, proposal


def check_once(case: Case, committee: threshold.CommitteeInfo, share: threshold.KeyShare,
               body: bytes, slot: int, path: Path, profile: cProfile.Profile | None = None,
               ) -> dict[str, float]:
    """One fresh member checks and signs ``body``: its wall ms and phases."""
    clock = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
    member = Member(share, compute_member_config(case.settings, committee, share.index),
                    ProtectionStore(path), evidence_sample=case.settings.signer_evidence_sample,
                    clock_ms=lambda: compute_deadline_ms(clock, slot) + 1)
    c0, t0 = time.process_time(), time.perf_counter()
    if profile is not None:
        profile.enable()
    reply = member.sign_proposal(body)
    if profile is not None:
        profile.disable()
    total = (time.perf_counter() - t0) * 1e3
    cpu = (time.process_time() - c0) * 1e3
    member.protection.close()
    return {"cpu": cpu, "total": total, **{p: reply.timings_ms.get(p, 0.0) for p in PHASES}}


def stream_once(case: Case, committee: threshold.CommitteeInfo, share: threshold.KeyShare,
                proposal: SlotProposal, path: Path, stream_check: str) -> dict[str, float]:
    """Streaming: one fresh member takes the whole slot's logs as they stream in (before the
    deadline, by the member's clock), then signs the version-4 proposal that names all of it
    as streamed. Returns the CPU of the streaming (spread over the open slot) and of the
    deadline's work alone (tail: none; re-run, compare, sign), and the deadline's phases."""
    clock = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
    slot = proposal.slot
    now = [compute_deadline_ms(clock, slot) - SLOT_MS // 2]
    member = Member(share, compute_member_config(case.settings, committee, share.index),
                    ProtectionStore(path), evidence_sample=case.settings.signer_evidence_sample,
                    clock_ms=lambda: now[0], stream_check=stream_check)
    streamed = {}
    c0 = time.process_time()
    for part in proposal.parts:
        raw = [compute_entry_bytes(e) for e in part.log]
        for start in range(0, len(raw), MAX_STREAM_BATCH):
            member.accept_stream(encode_stream_batch(
                committee.committee_id, slot, part.rollup, start,
                raw[start:start + MAX_STREAM_BATCH]))
        streamed[part.rollup] = (len(raw), compute_digests(raw)[-1])
    c1 = time.process_time()
    # The re-run both ways on what the member holds (the deadline's repack, alternating).
    stream = member.streams.get(slot)
    assert stream is not None
    held = dataclasses.replace(proposal, parts=tuple(
        dataclasses.replace(p, log=tuple(stream.logs[p.rollup].entries))
        for p in proposal.parts))  # fmt: skip
    repack: dict[str, list[float]] = {"scratch": [], "columns": []}
    results = {}
    for _ in range(3):
        for name, enc in (("scratch", None), ("columns", stream.encoder)):
            with paused_gc():
                r0 = time.process_time()
                results[name] = compute_expected_results(member.config, held, enc)
                repack[name].append((time.process_time() - r0) * 1e3)
    if results["scratch"] != results["columns"]:
        raise AssertionError("the re-run from columns differs from the re-run from scratch")
    body = encode_proposal(proposal, streamed)
    now[0] = compute_deadline_ms(clock, slot) + 1
    c2, t0 = time.process_time(), time.perf_counter()
    reply = member.sign_proposal(body)
    total = (time.perf_counter() - t0) * 1e3
    cpu = (time.process_time() - c2) * 1e3
    member.protection.close()
    return {"stream_cpu": (c1 - c0) * 1e3, "cpu": cpu, "total": total,
            "bytes": len(body), **{p: reply.timings_ms.get(p, 0.0) for p in PHASES},
            "repack_scratch": statistics.median(repack["scratch"]),
            "repack_columns": statistics.median(repack["columns"])}


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    ids = [ROLLUP, *(r for r in ROLLUPS if r != ROLLUP)][: args.rollups]
    cases = {"single": Case([ROLLUP], args.bids, args.cross_share),
             "shared": Case(ids, args.bids, args.cross_share)}
    committee_path, share_paths = write_committee_files(workdir / "keys", 4, 3)
    committee = keyfiles.read_committee_file(committee_path)
    share = keyfiles.read_share_file(share_paths[0])[0]
    cid = committee.committee_id
    clock = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
    member: dict[str, list[dict[str, float]]] = {c: [] for c in CASES}
    engine: dict[str, list[dict[str, float]]] = {c: [] for c in CASES}
    sizes: dict[str, list[int]] = {c: [] for c in CASES}
    base = compute_slot_at(clock, int(time.time() * 1000)) + 10
    bodies: dict[str, tuple[bytes, int]] = {}
    proposals: dict[str, SlotProposal] = {}
    streamed: dict[str, list[dict[str, float]]] = {c: [] for c in CASES}
    for slot in range(base, base + args.slots):
        for name in CASES:
            body, side, proposals[name] = cases[name].proposal_bytes(cid, slot)
            bodies[name] = (body, slot)
            engine[name].append(side)
            sizes[name].append(len(body))
        # The checks alternate, so both cases and both paths see the same drift of the load.
        for run_index in range(args.repeat):
            for name in CASES if run_index % 2 == 0 else reversed(CASES):
                body, _ = bodies[name]
                member[name].append(check_once(cases[name], committee, share, body, slot,
                                               workdir / f"{name}-{slot}-{run_index}.sqlite3"))
                streamed[name].append(stream_once(
                    cases[name], committee, share, proposals[name],
                    workdir / f"{name}-{slot}-{run_index}-stream.sqlite3", args.stream_check))
    out: dict[str, Any] = {"ids": ids, "member": {}, "engine": {}, "bytes": {}}
    for name in CASES:
        out["member"][name] = {k: statistics.median(r[k] for r in member[name])
                               for k in member[name][0]}
        out["engine"][name] = {k: statistics.median(r[k] for r in engine[name])
                               for k in engine[name][0]}
        out["bytes"][name] = statistics.median(sizes[name])
        out.setdefault("streamed", {})[name] = {k: statistics.median(r[k] for r in streamed[name])
                                                for k in streamed[name][0]}
    if args.profile:
        body, slot = bodies[args.profile]
        prof = cProfile.Profile()
        # (a fresh member and protection file sign the same body again)
        check_once(cases[args.profile], committee, share, body, slot,
                   workdir / "profile.sqlite3", prof)
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(args.profile_top)
        out["profile"] = text.getvalue()
    return out


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    single, shared = r["member"]["single"], r["member"]["shared"]
    print(f"one member's full check, {args.bids} bids in total, medians over {args.slots} slots"
          f" x {args.repeat} checks per case (one process, alternating; load average "
          f"{os.getloadavg()[0]:.1f})")
    print(f"  single: 1 rollup [{ROLLUP}]")
    print(f"  shared: {args.rollups} rollups {r['ids']}, {args.cross_share:.0%} of the bundles "
          f"spanning two rollups")
    print(f"  {'':<28} {'single':>10} {'shared':>10} {'shared/single':>14}")
    for key in ("cpu", "total", *PHASES):
        a, b = single[key], shared[key]
        name = {"cpu": "CPU time", "total": "wall time"}.get(key, key)
        print(f"  member {name:<21} {a:8.1f} ms {b:8.1f} ms {b / a if a else float('nan'):12.2f}")
    for key in r["engine"]["single"]:
        a, b = r["engine"]["single"][key], r["engine"]["shared"][key]
        unit = " ms" if "entries" not in key else "   "
        print(f"  {key:<28} {a:8.1f}{unit} {b:8.1f}{unit} {b / a if a else float('nan'):12.2f}")
    a, b = r["bytes"]["single"], r["bytes"]["shared"]
    print(f"  {'proposal':<28} {a / 1e6:8.2f} MB {b / 1e6:8.2f} MB {b / a:12.2f}")
    wall = shared["total"] / single["total"]
    print(f"ratio shared/single (member full check, median CPU time): "
          f"{shared['cpu'] / single['cpu']:.2f} (wall time {wall:.2f})")
    print(f"\nstreaming ({args.stream_check} check of each event as it arrives), the same "
          f"slots: the deadline's work alone against the whole check above")
    print(f"  {'':<36} {'single':>10} {'shared':>10}")
    st = r["streamed"]
    for key, name in (("stream_cpu", "CPU while the slot is open"),
                      ("cpu", "CPU at the deadline"), ("total", "wall at the deadline"),
                      *((p, f"  {p}") for p in PHASES),
                      ("repack_scratch", "repack from scratch (CPU)"),
                      ("repack_columns", "repack from columns (CPU)")):
        print(f"  {name:<36} {st['single'][key]:8.1f} ms {st['shared'][key]:8.1f} ms")
    print(f"  {'proposal (version 4)':<36} {st['single']['bytes'] / 1e3:8.1f} kB "
          f"{st['shared']['bytes'] / 1e3:8.1f} kB")
    for name in CASES:
        whole, tail = r["member"][name]["cpu"], st[name]["cpu"]
        print(f"ratio deadline CPU streaming / whole check, {name}: {tail / whole:.2f} "
              f"({tail:.1f} ms vs {whole:.1f} ms)")
    for name in CASES:
        a, b = st[name]["repack_scratch"], st[name]["repack_columns"]
        print(f"ratio repack from columns / from scratch, {name}: {b / a:.2f} "
              f"({b:.1f} ms vs {a:.1f} ms CPU)")
    print(f"ratio shared/single (streaming, deadline CPU): "
          f"{st['shared']['cpu'] / st['single']['cpu']:.2f}")
    if "profile" in r:
        print(f"\ncProfile of one {args.profile} check:\n{r['profile']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bids", type=int, default=2000)
    parser.add_argument("--rollups", type=int, default=3)
    parser.add_argument("--cross-share", type=float, default=0.2, dest="cross_share")
    parser.add_argument("--slots", type=int, default=2, help="slots built per case")
    parser.add_argument("--repeat", type=int, default=7, help="checks of each slot per case")
    parser.add_argument("--stream-check", choices=STREAM_CHECKS, default="full",
                        dest="stream_check", help="how a streaming member checks each event")
    parser.add_argument("--profile", choices=CASES, default=None)
    parser.add_argument("--profile-top", type=int, default=40, dest="profile_top")
    args = parser.parse_args()
    packer.warm_up()
    with tempfile.TemporaryDirectory(prefix="bench-member-recheck-") as tmp:
        report(args, run(args, Path(tmp)))


if __name__ == "__main__":
    main()
