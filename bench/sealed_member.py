"""One member's check of a sealed slot's proposal at the deadline, this tree against a baseline
revision, alternating in one run (issue 14's levers, docs/encryption.md "Not yet").

    .venv/bin/python -m bench.sealed_member [--baseline main] [--against REV ...] [--rounds 4]
                                            [--repeat 3] [--bids 2000] [--searchers 200]

Each round runs one child process per tree (the baseline, each ``--against`` revision, or else
this working tree; the order rotates and alternates), with that tree on ``PYTHONPATH``. A child
builds ``bench.sealed_close``'s re-open slot (``bench.
committee_latency``'s bundles, every one sealed, ``--bids`` from ``--searchers``, opened and
packed as the engine does) and, ``--repeat`` times, a fresh member (its own protection file)
that commits and releases its key share for the slot (``release_key_share``; then it holds the
committed set, as every member that released does) and then checks and
signs the proposal as the coordinator encodes it (``encode_proposal``): its process CPU, wall
time and phases (``timings_ms``), and the proposal's and the release request's bytes. The
member first checks every sealed call as it streams in (``bench.sealed_close.stream_sealed``,
not timed), as with ``committee_streaming``; its release (timed) is then the streamed one: the
whole set (release version 1) on a tree without release version 2, else the request naming
every call as streamed (decision 159). The figures are the medians over every member of every
round, per tree, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PHASES = ("decode", "checks", "evidence", "repack", "sign")


def child(args: argparse.Namespace) -> dict[str, Any]:
    """This tree's member (the one on ``PYTHONPATH``): medians over ``--repeat`` members."""
    from auction.slots import SlotClock, compute_deadline_ms, compute_slot_start_ms
    from bench.sealed_close import ROLLUP, SLOT, build_reopen_proposal, stream_sealed
    from committee import threshold
    from committee.member import Member
    from committee.proposal import encode_proposal
    from committee.protection import ProtectionStore
    from committee.sealedset import compute_sealed_entry_bytes
    from committee.sealing import ReleaseRequest, encode_release_request, release_key_share
    from committee.signer import compute_member_config
    from node.settings import Settings

    committee, shares = threshold.deal(10, 7, bytes(range(32)))
    settings = Settings(rollups=[ROLLUP], slot_ms=2000, genesis_ms=0)
    clock = SlotClock(genesis_ms=0, slot_ms=2000)
    after = compute_deadline_ms(clock, SLOT) + 5
    proposal = build_reopen_proposal(committee, shares, settings, args.bids, args.searchers)
    sealed = proposal.sealed
    assert sealed is not None
    request = encode_release_request(ReleaseRequest(committee.committee_id, SLOT,
                                                    sealed.ciphertext_root, sealed.entries))
    body = encode_proposal(proposal)
    config = compute_member_config(settings, committee, shares[0].index)
    streamed_request = request  # a tree without release version 2 sends the whole set
    try:
        from committee.sealing import RELEASE_STREAMED_VERSION  # noqa: F401
        from committee.stream import compute_digests

        raws = [compute_sealed_entry_bytes(e) for e in sealed.entries]
        streamed_request = encode_release_request(ReleaseRequest(
            committee.committee_id, SLOT, sealed.ciphertext_root, (),
            ((ROLLUP, len(raws), compute_digests(raws)[-1]),)))  # type: ignore[call-arg]
    except ImportError:
        pass
    rows = []
    now = [0]
    with tempfile.TemporaryDirectory(prefix="bench-sealed-member-") as tmp:
        for k in range(args.repeat + 1):  # the first is a warm-up
            # A member that checked every sealed call as it streamed in (not timed), then
            # commits and releases at the deadline (timed) and checks the proposal (timed)
            now[0] = compute_slot_start_ms(clock, SLOT) + 100
            member = Member(shares[0], config, ProtectionStore(Path(tmp) / f"m{k}.sqlite3"),
                            clock_ms=lambda: now[0])  # fmt: skip
            stream_sealed(member, committee.committee_id, list(sealed.entries))
            now[0] = after
            c0 = time.process_time()
            release_key_share(member, streamed_request)
            release_cpu = (time.process_time() - c0) * 1e3
            c0, t0 = time.process_time(), time.perf_counter()
            reply = member.sign_proposal(body)
            total = (time.perf_counter() - t0) * 1e3
            cpu = (time.process_time() - c0) * 1e3
            member.protection.close()
            if k:
                rows.append({"cpu": cpu, "total": total, "release cpu": release_cpu,
                             **{p: reply.timings_ms.get(p, 0.0) for p in PHASES}})  # fmt: skip
    out: dict[str, Any] = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    out["proposal kB"] = len(body) / 1e3
    out["release kB"] = len(streamed_request) / 1e3
    out["winners"] = len(proposal.parts[0].block.bundles)
    return out


def run_child(tree: Path, script: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(script), "--child", "--bids", str(args.bids),
           "--searchers", str(args.searchers), "--repeat", str(args.repeat)]  # fmt: skip
    done = subprocess.run(cmd, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                          check=True, capture_output=True, text=True)  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def short(here: Path, rev: str) -> str:
    return subprocess.run(["git", "-C", str(here), "rev-parse", "--short", rev], check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="main", metavar="REV")
    parser.add_argument("--against", nargs="*", default=None, metavar="REV",
                        help="compare with these revisions, exported (default: this tree)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="members per child")
    parser.add_argument("--bids", type=int, default=2000)
    parser.add_argument("--searchers", type=int, default=200)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    from bench.member_recheck import _baseline_tree

    here = Path(__file__).resolve().parent.parent
    trees = {f"{args.baseline} ({short(here, args.baseline)})": _baseline_tree(args.baseline)}
    for rev in args.against or []:
        trees[short(here, rev)] = _baseline_tree(rev)
    if not args.against:
        trees[f"this tree ({short(here, 'HEAD')}+)"] = here
    names = list(trees)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    # The child is this script as it is now, copied (editing the tree mid-run changes nothing)
    script = Path(tempfile.mkdtemp(prefix="bench-sealed-member-")) / "sealed_member_child.py"
    shutil.copyfile(Path(__file__).resolve(), script)
    load = [os.getloadavg()[0]]
    for k in range(args.rounds):
        # Each round in another order: the trees rotate, and every other round is reversed
        order = names[k % len(names):] + names[: k % len(names)]
        for name in order if k % 2 == 0 else list(reversed(order)):
            runs[name].append(run_child(trees[name], script, args))
        load.append(os.getloadavg()[0])
        print(f"  round {k + 1}/{args.rounds} done (load average {load[-1]:.1f})", flush=True)
    winners = runs[names[-1]][0]["winners"]
    print(f"\none member's sealed slot at the deadline, {args.bids} sealed bids from "
          f"{args.searchers} searchers ({winners} winners), committee 7 of 10, the member "
          f"holding every sealed call from the stream; medians over {args.rounds} rounds x "
          f"{args.repeat} members per tree, interleaved; ratios to {names[0]}; load average "
          f"{min(load):.1f}-{max(load):.1f}")  # fmt: skip
    print(f"  {'':<28}" + "".join(f"{n:>24}" for n in names))
    labels = {"cpu": "proposal check CPU", "total": "proposal check wall",
              "release cpu": "streamed release CPU", "proposal kB": "proposal",
              "release kB": "streamed release request"}  # fmt: skip
    for key in ("cpu", "total", *PHASES, "release cpu", "proposal kB", "release kB"):
        unit = "kB" if key.endswith("kB") else "ms"
        med = [statistics.median(r[key] for r in runs[n]) for n in names]
        cells = [f"{med[0]:>13.1f} {unit}{'':>8}"]
        cells += [f"{m:>13.1f} {unit} ({m / med[0] if med[0] else 0:4.2f}x)" for m in med[1:]]
        print(f"  {labels.get(key, f'  {key} (wall)'):<28}" + "".join(f"{c:>24}" for c in cells))


if __name__ == "__main__":
    main()
