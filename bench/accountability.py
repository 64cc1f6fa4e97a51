"""What operator endorsements and rule-breaking evidence cost, offline, in one process.

    PYTHONPATH=. .venv/bin/python -m bench.accountability [--bids 500] [--repeat 7]

Builds one slot of ``--bids`` real signed bundles for one rollup (``bench.member_recheck.Case``:
the engine's joint close, the coordinator's proposal encoding) and prints medians of
``--repeat`` runs of this process's CPU time:

- the coordinator's endorsement of a slot (one EIP-712 signature) and a member's check of it
  (one recovery), beside the member's whole check of the slot: the member checks an endorsed and
  an unendorsed body alternately, so the difference is measured in the same run;
- checking rule-breaking evidence (``verify_evidence``: the endorsement, the partial, the
  re-run of the member's checks) on the same slot with its first winner underpaid, beside the
  member's own check of the honest slot.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from auction.encoding import compute_header_hash
from auction.slots import SlotClock, compute_deadline_ms, compute_slot_at
from bench.committee_latency import ROLLUP
from bench.member_recheck import SLOT_MS, Case
from committee import keyfiles, threshold
from committee.endorsement import (
    Endorsement,
    sign_endorsement,
    verify_endorsement,
    wrap_proposal,
)
from committee.evidence import compute_rule_breaking_evidence, verify_evidence
from committee.local import write_committee_files
from committee.member import Member
from committee.proposal import compute_slot_proposal
from committee.protection import ProtectionStore
from committee.records import compute_tx_hashes
from committee.signer import compute_member_config
from committee.signing import compute_slot_signing_root
from node.operator import generate_operator_key


def cpu_ms(fn: Callable[[], Any]) -> float:
    c0 = time.process_time()
    fn()
    return (time.process_time() - c0) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.accountability")
    parser.add_argument("--bids", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        committee_path, share_paths = write_committee_files(work / "keys", 4, 3)
        committee = keyfiles.read_committee_file(committee_path)
        share = keyfiles.read_share_file(share_paths[0])[0]
        cid = committee.committee_id
        case = Case([ROLLUP], args.bids, 0.0)
        clock = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
        slot = compute_slot_at(clock, int(time.time() * 1000)) + 10
        body, _, proposal = case.proposal_bytes(cid, slot)
        key = generate_operator_key()
        root = proposal.compute_slot_root()
        config = compute_member_config(case.settings, committee, 1)

        sign = [cpu_ms(lambda: sign_endorsement(cid, slot, root, key))
                for _ in range(200)]
        endorsement: Endorsement = sign_endorsement(cid, slot, root, key)
        check = [cpu_ms(lambda: verify_endorsement(endorsement, key.address))
                 for _ in range(200)]
        endorsed = wrap_proposal(body, endorsement)
        member_cpu: dict[str, list[float]] = {"unendorsed": [], "endorsed": []}
        for i in range(args.repeat):
            for name in ("unendorsed", "endorsed") if i % 2 == 0 else ("endorsed", "unendorsed"):
                member = Member(share, config, ProtectionStore(work / f"m-{name}-{i}.sqlite3"),
                                clock_ms=lambda: compute_deadline_ms(clock, slot) + 1,
                                operator=key.address if name == "endorsed" else None)
                data = endorsed if name == "endorsed" else body
                member_cpu[name].append(cpu_ms(lambda: member.sign_proposal(data)))  # noqa: B023
                member.protection.close()

        # The same slot with its first winner underpaid, signed by member 1: evidence
        (part,) = proposal.parts
        winners = list(part.block.bundles)
        winners[0] = dataclasses.replace(winners[0], payment_wei=0)
        block = dataclasses.replace(part.block, bundles=tuple(winners))
        block = dataclasses.replace(
            block, block_hash=compute_header_hash(block, compute_tx_hashes(block)))
        bad = compute_slot_proposal(cid, slot, [dataclasses.replace(part, block=block)])
        bad_root = bad.compute_slot_root()
        bad_endorsement = sign_endorsement(cid, slot, bad_root, key)
        partial = threshold.partial_sign(share, compute_slot_signing_root(cid, slot, bad_root))
        doc = orjson.loads(orjson.dumps(
            compute_rule_breaking_evidence(bad, bad_endorsement, 1, partial)))
        evidence_cpu = [cpu_ms(lambda: verify_evidence(doc, committee, operator=key.address,
                                                       rules=config))
                        for _ in range(args.repeat)]
    med = statistics.median
    print(f"slot: {args.bids} bids, one rollup, proposal {len(body):,} bytes; "
          f"CPU ms, medians")
    print(f"endorse a slot (coordinator, once per slot): {med(sign):.3f} ms (of 200)")
    print(f"check an endorsement (member):               {med(check):.3f} ms (of 200)")
    print(f"member's whole check, unendorsed body:       {med(member_cpu['unendorsed']):.1f} ms "
          f"(of {args.repeat})")
    print(f"member's whole check, endorsed, pinned:      {med(member_cpu['endorsed']):.1f} ms")
    print(f"  ratio endorsed / unendorsed:               "
          f"{med(member_cpu['endorsed']) / med(member_cpu['unendorsed']):.3f}")
    print(f"verify rule-breaking evidence (re-run):      {med(evidence_cpu):.1f} ms "
          f"(of {args.repeat})")
    print(f"  ratio evidence / member's check:           "
          f"{med(evidence_cpu) / med(member_cpu['unendorsed']):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
