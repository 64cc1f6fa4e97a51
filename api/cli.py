"""The ``blockspace`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from api.encrypt_command import add_command as add_encrypt_command
from api.evidence import add_commands as add_evidence_commands
from committee.commands import add_commands as add_committee_commands
from node.settings import SETTINGS_ENV, Settings, settings_from_flags


def serve_settings(args: argparse.Namespace) -> Settings | None:
    """``serve``'s settings: the environment's, overridden by the flags given; None (after
    printing why) if a value is bad."""
    flags = {
        "host": args.host,
        "port": args.port,
        "slot_ms": args.slot_ms,
        "store": args.store,
        "rollups": args.rollup,
        "preset": args.preset,
        "redis_appendfsync": args.appendfsync,
        "history_retention_slots": args.history_retention_slots,
        "history_retention_days": args.history_retention_days,
        "committee": args.committee,
        "signers": args.signer,
        "signing_window_ms": args.signing_window_ms,
        "committee_streaming": args.committee_streaming,
    }
    return settings_from_flags("blockspace serve", flags)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    settings = serve_settings(args)
    if settings is None:
        return 2
    from committee.coordinator import check_committee_settings

    problem = check_committee_settings(settings)
    if problem is not None:
        print(f"blockspace serve: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format='{"t":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}',
    )
    workers = args.workers or 1
    if workers > 1 and settings.store == "memory":
        print(
            "blockspace serve: --workers > 1 needs a shared store (--store redis://...)",
            file=sys.stderr,
        )
        return 2
    from node.server import server_options

    common = dict(
        host=settings.host,
        port=settings.port,
        log_level="warning",
        ws_max_size=2 * 1024 * 1024,
        # After SIGTERM, open connections get this long to finish before they are cancelled.
        timeout_graceful_shutdown=10,
        loop="uvloop" if _has_uvloop() else "asyncio",
        # Read timeout, keep-alive and connection caps (slowloris; docs/protocol.md).
        **server_options(settings, workers=workers),
    )
    if workers == 1:
        uvicorn.run(create_app(settings, serving=True), **common)  # type: ignore[arg-type]
    else:
        # Each worker process builds its app from the same settings; they share the port (one
        # listening socket) and the Redis store. See docs/architecture.md.
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        uvicorn.run(
            "api.app:create_app_from_env",
            factory=True,
            workers=workers,
            **common,  # type: ignore[arg-type]
        )
    return 0


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _demo(args: argparse.Namespace) -> int:
    # Say what is happening before the heavy imports (numba, fastapi: about a second) and the
    # first run's solver compile.
    print(
        f"blockspace demo: starting the engine, a committee of {args.committee_size} and "
        f"{args.searchers} simulated searchers on loopback",
        flush=True,
    )
    import asyncio

    from api.demo import run_demo

    return asyncio.run(
        run_demo(
            slots=args.slots,
            slot_ms=args.slot_ms,
            searchers=args.searchers,
            seed=args.seed,
            committee_size=args.committee_size,
            signer_processes=args.signer_processes,
            keep_serving=args.keep_serving,
            rollups=args.rollups,
            encrypt=args.encrypt,
            streaming=args.committee_streaming,
        )
    )


def _solve(args: argparse.Namespace) -> int:
    import orjson

    from auction.errors import BlockspaceError
    from auction.instances import is_joint_document

    try:
        with open(args.instance, "rb") as f:
            data = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"blockspace solve: cannot read {args.instance}: {exc}", file=sys.stderr)
        return 2
    try:
        out = _solve_joint(data, args) if is_joint_document(data) else _solve_single(data, args)
    except BlockspaceError as exc:
        print(orjson.dumps({"error": exc.to_dict()}).decode())
        return 1
    print(orjson.dumps(out).decode())
    return 0


def _solve_single(data: object, args: argparse.Namespace) -> dict[str, object]:
    """One rollup: the block, its bound, payments and the price of fairness."""
    import dataclasses
    import time

    from auction.instances import packing_to_json, parse_instance
    from ordering import packer

    inst = parse_instance(data)
    budget = args.time_budget_ms or inst.time_budget_ms
    packer.warm_up({inst.payment_rule}, joint_slots=False)
    t0 = time.perf_counter()
    packing = packer.pack(inst.inp, budget)
    seconds = time.perf_counter() - t0
    payments = packer.compute_payments(inst.inp, packing, inst.payment_rule)
    free = dataclasses.replace(inst.inp, max_gas_per_searcher=None)
    unconstrained = packing.revenue_wei
    if inst.inp.max_gas_per_searcher is not None:
        unconstrained = max(unconstrained, packer.pack(free, budget).revenue_wei)
    return packing_to_json(packing, payments, seconds, unconstrained)


def _solve_joint(data: object, args: argparse.Namespace) -> dict[str, object]:
    """A shared slot: one block per rollup (atomic cross-rollup bundles), one bound, payments
    and the price of fairness (every rollup's searcher cap lifted). Packed as the engine packs
    a slot (``packer.pack_slot``: component by component under one budget), so both agree."""
    import dataclasses
    import time

    from auction.instances import joint_packing_to_json, parse_joint_instance
    from ordering import packer

    inst = parse_joint_instance(data)
    budget = args.time_budget_ms or inst.time_budget_ms
    packer.warm_up({inst.payment_rule})
    t0 = time.perf_counter()
    parts = packer.pack_slot(inst.inp, budget)
    seconds = time.perf_counter() - t0
    packing = packer.merge_component_packings(inst.inp, parts)
    payments: dict[str, int] = {}
    for part in parts:
        payments.update(packer.compute_joint_payments(part.inp, part.packing, inst.payment_rule))
    unconstrained = packing.revenue_wei
    if any(r.max_gas_per_searcher is not None for r in inst.inp.rollups):
        free_rollups = tuple(dataclasses.replace(r, max_gas_per_searcher=None)
                             for r in inst.inp.rollups)  # fmt: skip
        free = dataclasses.replace(inst.inp, rollups=free_rollups)
        free_parts = packer.pack_slot(free, budget)
        unconstrained = max(unconstrained, sum(p.packing.revenue_wei for p in free_parts))
    return joint_packing_to_json(packing, payments, seconds, unconstrained)


def _warm_up(args: argparse.Namespace) -> int:
    """Compile (or load) every kernel any payment rule and shared slots need, printing progress."""
    import time

    from ordering import packer

    started = time.process_time()

    def progress(done: int, total: int) -> None:
        print(f"blockspace warm-up: {done}/{total} kernels compiled", flush=True)

    packer.warm_up(packer.PAYMENT_RULES, progress)
    print(f"blockspace warm-up: done in {time.process_time() - started:.1f} s of CPU", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``blockspace`` command line: every command, its flags and its function."""
    parser = argparse.ArgumentParser(prog="blockspace", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the engine (JSON-RPC, websocket, metrics)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--slot-ms", type=int, dest="slot_ms")
    serve.add_argument(
        "--store",
        help="'memory' (default), a redis:// URL or redis+cluster://host:port,host:port,...",
    )
    serve.add_argument("--rollup", type=int, action="append", help="chain id; repeat for several")
    serve.add_argument("--preset", choices=["mainnet", "minimal"])
    serve.add_argument("--appendfsync", choices=["everysec", "always", "unmanaged"])
    serve.add_argument("--workers", type=int, help="engine processes sharing the port and store")
    serve.add_argument(
        "--history-retention-slots",
        type=int,
        dest="history_retention_slots",
        help="keep the history of this many newest slots (default: keep all)",
    )
    serve.add_argument(
        "--history-retention-days",
        type=float,
        dest="history_retention_days",
        help="keep this many days of history (default: keep all)",
    )
    serve.add_argument("--committee", help="public committee file: sign blocks (docs/committee.md)")
    serve.add_argument(
        "--signer", action="append", help="a member's URL, member 1 first; repeat for each"
    )
    serve.add_argument("--signing-window-ms", type=int, dest="signing_window_ms")
    serve.add_argument(
        "--committee-streaming",
        action=argparse.BooleanOptionalAction,
        dest="committee_streaming",
        help="members follow each open slot's log and check only the tail at the deadline "
        "(default: on; --no-committee-streaming checks the whole log at the deadline)",
    )
    serve.set_defaults(func=_serve)

    demo = sub.add_parser("demo", help="engine + simulated searchers on loopback")
    demo.add_argument("--slots", type=int, default=5)
    demo.add_argument("--slot-ms", type=int, default=1000, dest="slot_ms")
    demo.add_argument("--searchers", type=int, default=8)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--committee-size", type=int, default=4, dest="committee_size")
    demo.add_argument(
        "--signer-processes",
        action="store_true",
        dest="signer_processes",
        help="run the committee as real signer processes (default: in-process members)",
    )
    demo.add_argument(
        "--keep-serving",
        action="store_true",
        dest="keep_serving",
        help="after the slots, keep the server (dashboard), engine and committee up until Ctrl-C",
    )
    demo.add_argument(
        "--rollups",
        type=int,
        default=1,
        choices=range(1, 9),
        metavar="N",
        help="rollups served by one auction per slot (1-8); with 2 or more, cross-rollup "
        "arbitrageurs send atomic bundles spanning two rollups",
    )
    demo.add_argument(
        "--encrypt",
        action="store_true",
        help="every other searcher encrypts its bundles to the committee's slot key "
        "(bs_sendEncryptedBundle); the committee opens them after each deadline",
    )
    demo.add_argument(
        "--committee-streaming",
        action=argparse.BooleanOptionalAction,
        default=True,
        dest="committee_streaming",
        help="members follow each open slot's log and check only the tail at the deadline "
        "(default: on; --no-committee-streaming checks the whole log at the deadline)",
    )
    demo.set_defaults(func=_demo)

    solve = sub.add_parser("solve", help="pack one instance (JSON) offline; see docs/solver.md")
    solve.add_argument("instance", help="instance JSON file")
    solve.add_argument("--time-budget-ms", type=int, dest="time_budget_ms")
    solve.set_defaults(func=_solve)

    warm = sub.add_parser(
        "warm-up",
        help="compile every solver kernel into numba's cache (what serve does at start); "
        "run it once when building an image or before the test suite",
    )
    warm.set_defaults(func=_warm_up)

    add_committee_commands(sub)
    add_encrypt_command(sub)
    add_evidence_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
