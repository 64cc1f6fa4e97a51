"""``blockspace evidence``: check accountability evidence, and build censorship evidence.

* ``evidence verify FILE --committee COMMITTEE.json [--operator ADDRESS]``: exit 0 when the
  evidence is valid (prints its kind, the offender and the evidence id), 1 when it is refused
  (prints the stable code and why), 2 when a file cannot be read.
* ``evidence censorship --receipt R.json (--url ENGINE | --block B.json --events E.json)
  [--member SIGNER] [--out FILE]``: a searcher's censorship evidence from its receipt (the
  receipt, or the whole JSON-RPC answer that carried it) and the slot's signed block and event
  list, fetched from the engine's block API or read from files; with ``--member`` the event
  list comes from a member that signed the slot (its signer's ``GET
  /v1/blocks/{rollup}/{slot}/events``). It is only assembled here; ``verify`` judges it.

Shell only: files and HTTP around ``committee.evidence`` (pure). docs/accountability.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

_PROG = "blockspace evidence"


def _read_json(path: str) -> Any:
    return orjson.loads(Path(path).read_bytes())


def _verify(args: argparse.Namespace) -> int:
    from auction.errors import EvidenceRefused
    from committee import keyfiles
    from committee.errors import CommitteeError
    from committee.evidence import describe_refusal, verify_evidence
    from committee.signer import compute_member_config
    from node.settings import Settings

    try:
        committee = keyfiles.read_committee_file(args.committee)
        document = _read_json(args.file)
        # Rule-breaking evidence re-runs the slot under the deployment's rules: this
        # process's BLOCKSPACE_* settings, read as a member reads its own.
        rules = compute_member_config(Settings(), committee, 1)
    except (OSError, orjson.JSONDecodeError, CommitteeError, ValueError) as exc:
        print(f"{_PROG} verify: cannot read: {exc}", file=sys.stderr)
        return 2
    try:
        verdict = verify_evidence(document, committee, operator=args.operator, rules=rules)
    except EvidenceRefused as exc:
        print(f"INVALID {describe_refusal(exc)}", file=sys.stderr)
        return 1
    print(f"VALID {verdict.kind}")
    print(f"offender: {verdict.offender}")
    print(f"evidence id: {verdict.evidence_id}")
    print(f"committee: 0x{verdict.committee_id.hex()} slot {verdict.slot}"
          + (f" rollup {verdict.rollup}" if verdict.rollup is not None else ""))
    print(verdict.detail)
    return 0


def compute_receipt_document(doc: Any) -> Any:
    """The receipt in a receipt file: the receipt itself, or a JSON-RPC answer carrying one."""
    if isinstance(doc, dict) and "receipt" in doc and "signature" not in doc:
        return doc["receipt"]
    return doc


def _fetch_block(url: str, rollup: int, slot: int) -> Any:
    """The slot's signed block from an engine's block API, or why not (a str)."""
    import httpx

    with httpx.Client(base_url=url.rstrip("/"), timeout=30) as http:
        block = http.get(f"/v1/blocks/{rollup}/{slot}")
    if block.status_code != 200:
        return f"no signed block for slot {slot} of rollup {rollup}: {block.text}"
    return block.json()


def _fetch_events(url: str, rollup: int, slot: int, who: str) -> Any:
    """A slot's event list (ids; from the engine also the committed ciphertexts) from an
    engine's block API or a member's signer (the same route), or why not (a str)."""
    import httpx

    with httpx.Client(base_url=url.rstrip("/"), timeout=30) as http:
        events = http.get(f"/v1/blocks/{rollup}/{slot}/events")
    if events.status_code != 200:
        return f"{who} does not serve slot {slot}'s event list: {events.text}"
    return events.json()


def _censorship(args: argparse.Namespace) -> int:
    import httpx

    from auction.errors import EvidenceRefused
    from auction.receipts import KIND_SEALED_BID, receipt_from_json
    from committee.errors import InvalidSignedBlock
    from committee.evidence import compute_censorship_evidence
    from committee.records import signed_block_from_json
    from committee.wire import FieldError

    if args.block and not (args.events or args.member):
        print(f"{_PROG} censorship: --block needs --events or --member", file=sys.stderr)
        return 2
    try:
        receipt = compute_receipt_document(_read_json(args.receipt))
        rollup, slot = receipt["rollup"], receipt["slot"]
        block_doc = _fetch_block(args.url, rollup, slot) if args.url else _read_json(args.block)
        # The event list: from a member that signed the slot (nothing asked of the engine),
        # the engine, or a file
        if args.member:
            events: Any = _fetch_events(args.member, rollup, slot, "the member")
        elif args.url:
            events = _fetch_events(args.url, rollup, slot, "the engine")
        else:
            events = _read_json(args.events)
        for fetched in (block_doc, events):
            if isinstance(fetched, str):
                print(f"{_PROG} censorship: {fetched}", file=sys.stderr)
                return 1
        event_ids = events["event_ids"] if isinstance(events, dict) else events
        # An encrypted bid is checked against the slot's committed ciphertext set (served by
        # the engine; a member keeps event ids only)
        ciphertexts = (events.get("ciphertexts", []) if isinstance(events, dict) else []
                       ) if receipt.get("kind") == KIND_SEALED_BID else None  # fmt: skip
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, httpx.HTTPError) as exc:
        print(f"{_PROG} censorship: cannot read: {exc}", file=sys.stderr)
        return 2
    try:
        doc = compute_censorship_evidence(
            receipt_from_json(receipt), signed_block_from_json(block_doc), event_ids, ciphertexts
        )
    except (EvidenceRefused, InvalidSignedBlock, FieldError) as exc:
        print(f"{_PROG} censorship: {exc}", file=sys.stderr)
        return 1
    out = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    if args.out:
        Path(args.out).write_bytes(out)
        print(f"wrote {args.out}; check it with: blockspace evidence verify {args.out} "
              "--committee COMMITTEE.json")
    else:
        sys.stdout.write(out.decode() + "\n")
    return 0


def add_commands(sub: Any) -> None:
    """Register ``evidence verify`` and ``evidence censorship``."""
    evidence = sub.add_parser("evidence", help="check or build accountability evidence")
    kinds = evidence.add_subparsers(dest="evidence_command", required=True)
    verify = kinds.add_parser("verify", help="check an evidence file offline (exit 0 valid, "
                              "1 invalid, 2 unreadable)")
    verify.add_argument("file", help="evidence JSON (docs/accountability.md)")
    verify.add_argument("--committee", required=True, help="the public committee file")
    verify.add_argument("--operator", help="the deployment's operator address (pins receipts)")
    verify.set_defaults(func=_verify)
    cens = kinds.add_parser("censorship", help="build censorship evidence from a receipt")
    cens.add_argument("--receipt", required=True,
                      help="the receipt JSON, or the JSON-RPC answer that carried it")
    source = cens.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="the engine's base URL (its block API)")
    source.add_argument("--block", help="the slot's signed block JSON (with --events)")
    cens.add_argument("--events", help="the slot's event ids JSON (GET .../events)")
    cens.add_argument("--member", help="a committee member's signer URL: take the slot's event "
                      "list from it instead of the engine")
    cens.add_argument("--out", help="write the evidence here (default: stdout)")
    cens.set_defaults(func=_censorship)
