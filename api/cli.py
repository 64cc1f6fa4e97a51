"""The ``blockspace`` command."""

from __future__ import annotations

import argparse
import logging
import sys


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from api.app import create_app
    from api.settings import Settings

    overrides = {
        k: v
        for k, v in {
            "host": args.host,
            "port": args.port,
            "slot_ms": args.slot_ms,
            "store": args.store,
            "rollups": args.rollup,
            "preset": args.preset,
            "redis_appendfsync": args.appendfsync,
        }.items()
        if v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(x) for x in err["loc"])
            print(f"blockspace serve: {field}: {err['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format='{"t":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}',
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        ws_max_size=2 * 1024 * 1024,
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    import asyncio

    from api.demo import run_demo

    return asyncio.run(
        run_demo(slots=args.slots, slot_ms=args.slot_ms, searchers=args.searchers, seed=args.seed)
    )


def _solve(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    import orjson

    from auction.errors import BlockspaceError
    from ordering import packer
    from ordering.instances import packing_to_json, parse_instance

    try:
        with open(args.instance, "rb") as f:
            data = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"blockspace solve: cannot read {args.instance}: {exc}", file=sys.stderr)
        return 2
    try:
        inst = parse_instance(data)
        budget = args.time_budget_ms or inst.time_budget_ms
        packer.warm_up()
        t0 = time.perf_counter()
        packing = packer.pack(inst.inp, budget)
        seconds = time.perf_counter() - t0
        payments = packer.compute_payments(inst.inp, packing, inst.payment_rule)
        free = dataclasses.replace(inst.inp, max_gas_per_searcher=None)
        unconstrained = packing.revenue_wei
        if inst.inp.max_gas_per_searcher is not None:
            unconstrained = max(unconstrained, packer.pack(free, budget).revenue_wei)
    except BlockspaceError as exc:
        print(orjson.dumps({"error": exc.to_dict()}).decode())
        return 1
    print(orjson.dumps(packing_to_json(packing, payments, seconds, unconstrained)).decode())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="blockspace", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the engine (JSON-RPC, websocket, metrics)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--slot-ms", type=int, dest="slot_ms")
    serve.add_argument("--store", help="'memory' (default) or a redis:// URL")
    serve.add_argument("--rollup", type=int, action="append", help="chain id; repeat for several")
    serve.add_argument("--preset", choices=["mainnet", "minimal"])
    serve.add_argument("--appendfsync", choices=["everysec", "always", "unmanaged"])
    serve.set_defaults(func=_serve)

    demo = sub.add_parser("demo", help="engine + simulated searchers on loopback")
    demo.add_argument("--slots", type=int, default=5)
    demo.add_argument("--slot-ms", type=int, default=1000, dest="slot_ms")
    demo.add_argument("--searchers", type=int, default=8)
    demo.add_argument("--seed", type=int, default=1)
    demo.set_defaults(func=_demo)

    solve = sub.add_parser("solve", help="pack one instance (JSON) offline; see docs/solver.md")
    solve.add_argument("instance", help="instance JSON file")
    solve.add_argument("--time-budget-ms", type=int, dest="time_budget_ms")
    solve.set_defaults(func=_solve)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
