"""One member's full check of a shared slot against a single rollup's, offline, in one process.

    PYTHONPATH=. .venv/bin/python -m bench.member_recheck [--bids 2000] [--rollups 3]
        [--cross-share 0.2] [--slots 2] [--repeat 7] [--profile shared]
        [--baseline REV [--rounds 4] [--cases single shared]]

Builds, for each of ``--slots`` slots, two slots with the same number of bids (real signed bundles:
``bench.committee_latency.BidPool``, ``bench.shared_slot.CrossPool``):

- ``single``: one rollup (167001) holding every bid (today's single rollup);
- ``shared``: ``--rollups`` rollups under one slot root, ``--cross-share`` of the bundles spanning
  two rollups (a copy in each spanned rollup's log), the rest split evenly: the same generators
  and proportions as ``bench.committee_latency --shared-rollups``.

Each slot is also checked the streaming way (``committee.stream``): a fresh member takes the
slot's logs in batches while the slot is open (timed apart: that CPU is spread over the slot),
then signs the version-7 proposal naming all of it as streamed; the figure that matters is
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

``--baseline REV`` compares the streaming member's deadline work of this tree with that of
revision ``REV`` (issue 12's deadline target, decisions 149-152): the revision is exported once
(``git archive``, to ``/tmp/blockspace-baseline-<rev>``, its numba cache warmed there), and this
same script runs as a child in each tree in turn (``--rounds`` rounds, the order alternating,
so both see the same load): each child builds the same slots (same seeds), streams them into
fresh members and times ``--repeat`` deadlines (CPU of ``sign_proposal``: tail, re-run,
compare, sign). Printed: the medians of both trees, the ratio, and the coordinator's CPU at t
partials both ways (each partial verified, then combined and verified, as before decision
145, against combined and verified once), and the replaced steps alone, old and new
interleaved in this process (``function_ratios``).

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
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from auction.encoding import compute_bid_set_root
from auction.results import compute_event_id
from auction.slots import SlotClock, compute_deadline_ms, compute_slot_at
from auction.types import Bid
from bench.committee_latency import ROLLUP, BidPool
from bench.shared_slot import ROLLUPS, CrossPool, build_parts
from committee import bls, keyfiles, threshold
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
from ordering.problem import Item, compute_block_order

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


def bench_committee(workdir: Path) -> tuple[threshold.CommitteeInfo, threshold.KeyShare]:
    """A 3-of-4 committee dealt into ``workdir``, and member 1's key share."""
    committee_path, share_paths = write_committee_files(workdir / "keys", 4, 3)
    committee = keyfiles.read_committee_file(committee_path)
    return committee, keyfiles.read_share_file(share_paths[0])[0]


def _streamed_member(
    case: Case,
    committee: threshold.CommitteeInfo,
    share: threshold.KeyShare,
    proposal: SlotProposal,
    path: Path,
    stream_check: str,
) -> tuple[Member, list[int], dict[int, tuple[int, bytes]]]:
    """A fresh member that took the whole slot's logs as they streamed in (half a slot before
    the deadline by its clock, ``now[0]``, which the caller moves); with what it streamed, by
    rollup (entries, digest), for the version-7 proposal."""
    clock = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
    slot = proposal.slot
    now = [compute_deadline_ms(clock, slot) - SLOT_MS // 2]
    member = Member(share, compute_member_config(case.settings, committee, share.index),
                    ProtectionStore(path), evidence_sample=case.settings.signer_evidence_sample,
                    clock_ms=lambda: now[0], stream_check=stream_check)
    streamed = {}
    for part in proposal.parts:
        raw = [compute_entry_bytes(e) for e in part.log]
        for start in range(0, len(raw), MAX_STREAM_BATCH):
            member.accept_stream(encode_stream_batch(
                committee.committee_id, slot, part.rollup, start,
                raw[start:start + MAX_STREAM_BATCH]))
        streamed[part.rollup] = (len(raw), compute_digests(raw)[-1])
    return member, now, streamed


def stream_once(case: Case, committee: threshold.CommitteeInfo, share: threshold.KeyShare,
                proposal: SlotProposal, path: Path, stream_check: str) -> dict[str, float]:
    """Streaming: one fresh member takes the whole slot's logs as they stream in (before the
    deadline, by the member's clock), then signs the version-7 proposal that names all of it
    as streamed. Returns the CPU of the streaming (spread over the open slot) and of the
    deadline's work alone (tail: none; re-run, compare, sign), and the deadline's phases."""
    clock = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
    slot = proposal.slot
    c0 = time.process_time()
    member, now, streamed = _streamed_member(case, committee, share, proposal, path, stream_check)
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
    deadline = _sign_at_deadline(member, now, compute_deadline_ms(clock, slot), body)
    return {"stream_cpu": (c1 - c0) * 1e3, **deadline, "bytes": len(body),
            "repack_scratch": statistics.median(repack["scratch"]),
            "repack_columns": statistics.median(repack["columns"])}


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    ids = [ROLLUP, *(r for r in ROLLUPS if r != ROLLUP)][: args.rollups]
    cases = {"single": Case([ROLLUP], args.bids, args.cross_share),
             "shared": Case(ids, args.bids, args.cross_share)}
    committee, share = bench_committee(workdir)
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
    print(f"  {'proposal (version 7)':<36} {st['single']['bytes'] / 1e3:8.1f} kB "
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


def deadline_child(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The streaming member's deadline work on this tree (the one on ``PYTHONPATH``): for each
    case, ``--slots`` slots, each streamed into ``--repeat`` fresh members whose deadline is
    timed. Returns the medians (CPU, wall, phases) by case."""
    ids = [ROLLUP, *(r for r in ROLLUPS if r != ROLLUP)][: args.rollups]
    committee, share = bench_committee(workdir)
    clock = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
    base = compute_slot_at(clock, int(time.time() * 1000)) + 10
    out: dict[str, Any] = {}
    for name in args.cases:
        case = Case([ROLLUP] if name == "single" else ids, args.bids, args.cross_share)
        rows = []
        for slot in range(base, base + args.slots):
            _body, _side, proposal = case.proposal_bytes(committee.committee_id, slot)
            for k in range(args.repeat):
                rows.append(_stream_deadline(case, committee, share, proposal,
                                             workdir / f"{name}-{slot}-{k}.sqlite3",
                                             args.stream_check))  # fmt: skip
        out[name] = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    return out


def _stream_deadline(case: Case, committee: threshold.CommitteeInfo, share: threshold.KeyShare,
                     proposal: SlotProposal, path: Path, stream_check: str) -> dict[str, float]:
    """``stream_once`` without the repack comparison: stream the slot in, then time the
    deadline (``sign_proposal`` of the version-7 proposal)."""
    clock = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
    slot = proposal.slot
    member, now, streamed = _streamed_member(case, committee, share, proposal, path, stream_check)
    return _sign_at_deadline(member, now, compute_deadline_ms(clock, slot),
                             encode_proposal(proposal, streamed))  # fmt: skip


def _sign_at_deadline(member: Member, now: list[int], deadline_ms: int,
                      body: bytes) -> dict[str, float]:  # fmt: skip
    """Move the member's clock past the deadline and time its check and signature of the
    version-7 proposal ``body``: CPU, wall and its phases."""
    now[0] = deadline_ms + 1
    c0, t0 = time.process_time(), time.perf_counter()
    reply = member.sign_proposal(body)
    total = (time.perf_counter() - t0) * 1e3
    cpu = (time.process_time() - c0) * 1e3
    member.protection.close()
    return {"cpu": cpu, "total": total, **{p: reply.timings_ms.get(p, 0.0) for p in PHASES}}


def _baseline_tree(rev: str) -> Path:
    """Revision ``rev`` of this repository exported to a directory of its own (kept, with its
    numba cache warmed, for later runs)."""
    here = Path(__file__).resolve().parent.parent
    full = subprocess.run(["git", "-C", str(here), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    tree = Path(tempfile.gettempdir()) / f"blockspace-baseline-{full[:12]}"
    if not (tree / ".warm").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(here), "archive", full], check=True,
                                 capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        print(f"baseline {rev} ({full[:12]}) exported to {tree}; warming its numba cache",
              flush=True)  # fmt: skip
        subprocess.run([sys.executable, "-m", "api.cli", "warm-up"], cwd=tree, check=True,
                       env={**os.environ, "PYTHONPATH": str(tree)})  # fmt: skip
        (tree / ".warm").write_text(full)
    return tree


def _run_child(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--deadline-child",
           "--bids", str(args.bids), "--rollups", str(args.rollups),
           "--cross-share", str(args.cross_share), "--slots", str(args.slots),
           "--repeat", str(args.repeat), "--stream-check", args.stream_check,
           "--cases", *args.cases]  # fmt: skip
    done = subprocess.run(cmd, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                          check=True, capture_output=True, text=True)  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def coordinator_cpu(repeat: int = 15) -> dict[str, float]:
    """The coordinator's CPU at t = 7 of n = 10 partials: each verified alone as it arrives,
    then combined and the combination verified (before decision 151), and combined and
    verified once (after). Medians over ``repeat``."""
    committee, shares = threshold.deal(10, 7, bytes(32))
    root = bytes(range(32))
    partials = [(s.index, threshold.partial_sign(s, root)) for s in shares[:7]]
    before, after = [], []
    for _ in range(repeat):
        c0 = time.process_time()
        assert all(threshold.verify_partial(committee.member_public_key(i), root, p)
                   for i, p in partials)  # fmt: skip
        signature = threshold.combine(partials, 7, 10)
        assert bls.verify(committee.group_public_key, root, signature)
        c1 = time.process_time()
        signature = threshold.combine(partials, 7, 10)
        assert bls.verify(committee.group_public_key, root, signature)
        c2 = time.process_time()
        before.append((c1 - c0) * 1e3)
        after.append((c2 - c1) * 1e3)
    return {"before": statistics.median(before), "after": statistics.median(after)}


def function_ratios(args: argparse.Namespace, workdir: Path, repeat: int = 15) -> None:
    """The replaced steps alone, old and new interleaved in this process on one streamed slot of
    each case (CPU medians): the block order with a Fraction per winner against the float
    order (decision 149), and the bid-set roots from scratch against the encoder's kept trees
    (decision 150)."""
    ids = [ROLLUP, *(r for r in ROLLUPS if r != ROLLUP)][: args.rollups]
    committee, share = bench_committee(workdir)
    clock = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
    slot = compute_slot_at(clock, int(time.time() * 1000)) + 10
    for name in args.cases:
        case = Case([ROLLUP] if name == "single" else ids, args.bids, args.cross_share)
        _body, _side, proposal = case.proposal_bytes(committee.committee_id, slot)
        _stream_deadline(case, committee, share, proposal, workdir / f"f-{name}.sqlite3",
                         args.stream_check)  # fmt: skip
        member, _now, _streamed = _streamed_member(case, committee, share, proposal,
                                                   workdir / f"g-{name}.sqlite3", "full")
        stream = member.streams.get(slot)
        assert stream is not None
        logs = {r: list(log.entries) for r, log in stream.logs.items()}
        by_id = {e.event.bid_id: e.event for p in proposal.parts for e in p.log
                 if isinstance(e.event, Bid)}  # fmt: skip
        winners = [Item(w.bid_id, w.searcher, w.bid_wei, by_id[w.bid_id].gas, ())
                   for p in proposal.parts for w in p.block.bundles]  # fmt: skip
        rows: dict[str, list[float]] = {k: [] for k in ("order_old", "order_new", "root_old",
                                                        "root_new")}  # fmt: skip
        for _ in range(repeat):
            with paused_gc():
                c0 = time.process_time()
                old = sorted(winners, key=lambda it: (-Fraction(it.bid_wei, max(it.gas, 1)), it.id))
                c1 = time.process_time()
                new = compute_block_order(winners)
                c2 = time.process_time()
                old_roots = [compute_bid_set_root([compute_event_id(e) for e in log])
                             for log in logs.values()]  # fmt: skip
                c3 = time.process_time()
                new_roots = [stream.encoder.compute_bid_set_root(r, log)
                             for r, log in logs.items()]  # fmt: skip
                c4 = time.process_time()
            if old != new or old_roots != new_roots:
                raise AssertionError("the new block order or bid-set root differs from the old")
            for key, a, b in (("order", c0, c1), ("root", c2, c3)):
                rows[f"{key}_old"].append((b - a) * 1e3)
            rows["order_new"].append((c2 - c1) * 1e3)
            rows["root_new"].append((c4 - c3) * 1e3)
        med = {k: statistics.median(v) for k, v in rows.items()}
        print(f"  {name}: block order of {len(winners)} winners {med['order_old']:.2f} -> "
              f"{med['order_new']:.2f} ms ({med['order_new'] / med['order_old']:.2f}); bid-set "
              f"roots of {sum(map(len, logs.values()))} entries {med['root_old']:.2f} -> "
              f"{med['root_new']:.2f} ms ({med['root_new'] / med['root_old']:.2f})")
        member.protection.close()


def compare_baseline(args: argparse.Namespace) -> None:
    """``--baseline``: this tree's deadline against ``args.baseline``'s, alternating."""
    here = Path(__file__).resolve().parent.parent
    trees = {"baseline": _baseline_tree(args.baseline), "this tree": here}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    load = [os.getloadavg()[0]]
    for k in range(args.rounds):
        order = list(trees) if k % 2 == 0 else list(reversed(trees))
        for name in order:
            runs[name].append(_run_child(trees[name], args))
        load.append(os.getloadavg()[0])
        print(f"  round {k + 1}/{args.rounds} done (load average {load[-1]:.1f})", flush=True)
    head = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    print(f"\nstreaming member's deadline ({args.stream_check} check while open), {args.bids} "
          f"bids, medians over {args.rounds} rounds x {args.slots} slots x {args.repeat} "
          f"members per tree, alternating; baseline {args.baseline}, this tree {head} (+ "
          f"uncommitted changes, if any); load average {min(load):.1f}-{max(load):.1f}")
    for case in args.cases:
        print(f"  {case}: {'':<22} {'baseline':>10} {'this tree':>10} {'ratio':>7}")
        for key in ("cpu", "total", *PHASES):
            a = statistics.median(r[case][key] for r in runs["baseline"])
            b = statistics.median(r[case][key] for r in runs["this tree"])
            label = {"cpu": "deadline CPU", "total": "deadline wall"}.get(key, f"  {key} (wall)")
            ratio = f"{b / a:7.2f}" if a else "    n/a"
            print(f"    {label:<28} {a:8.1f} ms {b:8.1f} ms {ratio}")
    print("the replaced steps alone, old and new interleaved in this process (CPU medians):")
    packer.warm_up()
    with tempfile.TemporaryDirectory(prefix="bench-member-functions-") as tmp:
        function_ratios(args, Path(tmp))
    coord = coordinator_cpu()
    print(f"coordinator CPU at t=7 of n=10 partials: each verified then combined "
          f"{coord['before']:.1f} ms, combined and verified once {coord['after']:.1f} ms "
          f"(ratio {coord['after'] / coord['before']:.2f})")


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
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="compare the streaming deadline with revision REV's")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=4, help="--baseline: alternating rounds")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--deadline-child", action="store_true", dest="deadline_child",
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.baseline is not None:
        compare_baseline(args)
        return
    packer.warm_up()
    if args.deadline_child:
        with tempfile.TemporaryDirectory(prefix="bench-member-deadline-") as tmp:
            print(json.dumps(deadline_child(args, Path(tmp))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-member-recheck-") as tmp:
        report(args, run(args, Path(tmp)))


if __name__ == "__main__":
    main()
