"""The committee's subcommands of ``blockspace``: ``committee keygen``, ``signer``, ``verify``.

``api/cli.py`` registers them with ``add_commands``; each returns a process exit code (0 ok,
1 the thing checked is bad, 2 bad usage or unreadable input, 3 ``verify`` cannot check a
cross-rollup bundle's atomicity: a partner block is missing).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

_LOG_FORMAT = '{"t":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}'


def _keygen(args: argparse.Namespace) -> int:
    from committee import threshold
    from committee.errors import CommitteeError
    from committee.local import write_committee_files

    try:
        t = args.t if args.t is not None else threshold.default_threshold(args.n)
        threshold.check_signing_threshold(args.n, t)
        committee_path, shares = write_committee_files(args.out, args.n, t)
    except (CommitteeError, FileExistsError, OSError) as exc:
        print(f"blockspace committee keygen: {exc}", file=sys.stderr)
        return 2
    print(f"committee {args.n} members, threshold {t}: {committee_path}")
    for path in shares:
        print(f"  share {path} (give to its member only; mode 0600)")
    print("The dealer saw every share: erase this machine's copies once they are handed out.")
    return 0


def _signer(args: argparse.Namespace) -> int:
    from committee.errors import CommitteeError
    from committee.signer import run_signer
    from node.settings import settings_from_flags

    flags = {"slot_ms": args.slot_ms, "rollups": args.rollup, "preset": args.preset}
    settings = settings_from_flags("blockspace signer", flags)
    if settings is None:
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format=_LOG_FORMAT)
    try:
        return run_signer(
            args.share,
            settings,
            host=args.host,
            port=args.port,
            db_path=args.db,
            port_file=args.port_file,
        )
    except (CommitteeError, OSError, ValueError) as exc:
        print(f"blockspace signer: {exc}", file=sys.stderr)
        return 2


def _verify(args: argparse.Namespace) -> int:
    import orjson

    from committee import keyfiles
    from committee.errors import CommitteeError
    from committee.records import signed_block_from_json
    from committee.verify import (
        compute_unchecked_rollups,
        verify_partner_blocks,
        verify_signed_block,
    )

    try:
        committee = keyfiles.read_committee_file(args.committee)
        document = orjson.loads(Path(args.block).read_bytes())
        partner_docs = [orjson.loads(Path(p).read_bytes()) for p in args.partner or ()]
        expected = (
            [int(x) for x in args.rollups.split(",") if x.strip()] if args.rollups else None
        )
    except (OSError, orjson.JSONDecodeError, CommitteeError, ValueError) as exc:
        print(f"blockspace verify: cannot read input: {exc}", file=sys.stderr)
        return 2
    try:
        signed = signed_block_from_json(document)
        verify_signed_block(
            signed, committee, check_partials=not args.signature_only, expected_rollups=expected
        )
        partners = [signed_block_from_json(d) for d in partner_docs]
        by_rollup = verify_partner_blocks(signed, partners, committee)
    except CommitteeError as exc:
        print(f"INVALID: {exc.message}", file=sys.stderr)
        return 1
    unchecked = compute_unchecked_rollups(signed, by_rollup)
    if unchecked:
        print(
            f"CANNOT CHECK: cross-rollup bundles of this block span rollups {unchecked}; give "
            "their signed blocks of the slot with --partner to check atomicity",
            file=sys.stderr,
        )
        return 3
    b = signed.block
    with_partners = f", with partner blocks of rollups {sorted(p.block.rollup for p in partners)}"
    print(
        f"OK: rollup {b.rollup} slot {b.slot} block {b.block_hash} under slot root "
        f"0x{signed.slot_root.hex()} (rollups {list(signed.slot_rollups)}) signed by members "
        f"{list(signed.signers)} of committee 0x{committee.committee_id.hex()} "
        f"({committee.t} of {committee.n}){with_partners if partners else ''}"
    )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``committee keygen``, ``signer`` and ``verify``."""
    committee = sub.add_parser("committee", help="committee key management")
    csub = committee.add_subparsers(dest="committee_command", required=True)
    keygen = csub.add_parser(
        "keygen", help="deal a t-of-n committee: one share file per member, one public file"
    )
    keygen.add_argument("--n", type=int, required=True, help="members")
    keygen.add_argument("--t", type=int, help="threshold (default n - floor((n-1)/3))")
    keygen.add_argument("--out", default=".", help="directory for the files (default: here)")
    keygen.set_defaults(func=_keygen)

    signer = sub.add_parser("signer", help="run one committee member (see docs/committee.md)")
    signer.add_argument("--share", required=True, help="this member's share file")
    signer.add_argument("--port", type=int, required=True, help="0 picks a free port")
    signer.add_argument("--port-file", dest="port_file", help="write the bound port here")
    signer.add_argument("--host", default="127.0.0.1")
    signer.add_argument("--db", help="slashing-protection file (default: next to the share)")
    signer.add_argument("--slot-ms", type=int, dest="slot_ms")
    signer.add_argument("--rollup", type=int, action="append", help="chain id; repeat")
    signer.add_argument("--preset", choices=["mainnet", "minimal"])
    signer.set_defaults(func=_signer)

    verify = sub.add_parser("verify", help="check a signed block against the committee file")
    verify.add_argument("block", help="signed block JSON (GET /v1/blocks/...)")
    verify.add_argument("--committee", required=True, help="public committee file")
    verify.add_argument(
        "--partner",
        action="append",
        help="another rollup's signed block of the same slot (repeat): it must be under the "
        "same signed slot root; a block with cross-rollup bundles needs the blocks of every "
        "rollup they span (else exit 3: cannot check atomicity)",
    )
    verify.add_argument(
        "--rollups",
        help="the deployment's rollups, comma-separated: the slot must have exactly these",
    )
    verify.add_argument(
        "--signature-only",
        action="store_true",
        help="check the group signature only, not each member's listed partial",
    )
    verify.set_defaults(func=_verify)
