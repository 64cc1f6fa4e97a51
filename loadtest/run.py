"""Load test of the intake: accepted signed bids/s and ack latency, against a bare echo server.

    python -m loadtest.run [--bids N] [--connections C] [--seconds S] [--http] [--repeats R]
                           [--store memory|redis] [--window W] [--clients P] [--asgi-echo]

Each repeat starts fresh servers (a redis-server of our own, ``blockspace serve``, the echo
servers), signs the same bundles for the slots open at that moment, drives each server with the
same frames from the same client, and stops them. The table gives every repeat and then the
medians; ``ratio`` is blockspace's median accepted/s over the echo server's. Loopback only; every
run stops after N bids or S seconds, whichever is first.
See docs/loadtest.md for the method and the figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pickle
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np

from loadtest.client import GRACE_S, ClientPlan, ClientResult, client_process
from loadtest.corpus import Bundle, CorpusSpec, load_bundles, sign_requests
from loadtest.servers import REPO, Proc, start_blockspace, start_echo, start_redis

MAX_SECONDS = 20.0  # requests are signed for slots that close ~34 s after signing
SLOT_SPAN = 16  # bids spread over this many target slots, the last one 32 ahead (the maximum)


@dataclass
class Row:
    """One measured run of one server."""

    server: str  # blockspace | echo-ws | echo-verify-ws | echo-asgi-ws | echo-http
    transport: str  # ws | http
    store: str
    repeat: int
    sent: int = 0
    accepted: int = 0
    accepted_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    lost: int = 0
    notifications: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    cpu_server: float = 0.0  # share of one core over the run
    cpu_redis: float = 0.0
    cpu_client: float = 0.0
    seconds: float = 0.0
    server_us_per_ack: float = 0.0  # server CPU per accepted reply: robust to a busy machine


@dataclass
class Target:
    server: str  # "blockspace", "blockspace:<variant>" or an echo kind
    transport: str
    path: str
    root: str = str(REPO)  # the repo whose api/ a blockspace target serves
    env: dict[str, str] = field(default_factory=dict)

    @property
    def is_engine(self) -> bool:
        return self.server.startswith("blockspace")


def parse_variant(text: str) -> tuple[str, str, dict[str, str]]:
    """``LABEL=ROOT[,K=V...]`` -> (label, root, env)."""
    label, _, rest = text.partition("=")
    root, *pairs = rest.split(",")
    if not label or not root:
        raise ValueError(f"--variant wants LABEL=ROOT[,K=V...], got {text!r}")
    return label, root, dict(kv.split("=", 1) for kv in pairs)


def connection_rows(corpus: list[Bundle], connections: int) -> list[list[int]]:
    """Corpus rows per connection: a searcher sends on one connection only.

    (Each searcher on one connection, as a real searcher would send; the client subscribes no
    connection to bundle events, so no notifications are pushed.)
    """
    out: list[list[int]] = [[] for _ in range(connections)]
    for i, bid in enumerate(corpus):
        out[bid.searcher % connections].append(i)
    return out


@dataclass
class Servers:
    """The processes of one run: the servers the client talks to, and Redis if any."""

    front: list[Proc]  # engine processes (or the one echo server)
    redis: Proc | None = None

    def all(self) -> list[Proc]:
        return self.front + ([self.redis] if self.redis else [])

    def stop(self) -> None:
        for p in self.all():
            p.stop()


def _start(
    target: Target, workdir: Path, args: argparse.Namespace, repeat: int = 0
) -> Servers:
    if not target.is_engine:
        return Servers([start_echo(workdir, target.server.removeprefix("echo-"))])
    servers = Servers([])
    try:
        store = "memory"
        if args.store == "redis":
            servers.redis = start_redis(Path(tempfile.mkdtemp(prefix="redis-", dir=workdir)))
            store = f"redis://127.0.0.1:{servers.redis.port}/0"
        for _ in range(args.engines):
            servers.front.append(
                start_blockspace(
                    workdir,
                    store=store,
                    slot_ms=args.slot_ms,
                    python=args.server_python,
                    root=Path(target.root),
                    env_extra=target.env,
                    cprofile_out=_cprofile_path(target, args, repeat, len(servers.front)),
                )
            )
    except Exception:
        servers.stop()
        raise
    return servers


def _cprofile_path(
    target: Target, args: argparse.Namespace, repeat: int, engine: int
) -> Path | None:
    if not args.cprofile:
        return None
    name = f"{target.server.replace(':', '-')}-{target.transport}-{args.store}"
    out = Path(args.cprofile) / f"{name}-r{repeat}-e{engine}.pstats"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def fund_searchers(port: int, spec: CorpusSpec, token: str) -> None:
    """With deposits enforced (a variant with BLOCKSPACE_DEPOSITS=true and an operator token),
    credit every searcher of the corpus through the operator API before the run, so that every
    bid is held against a deposit and none is refused for want of one."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for i in range(spec.searchers):
            answer = http.post(
                "/v1/ledger/deposits",
                headers={"authorization": f"Bearer {token}"},
                json={"address": spec.searcher_key(i).address, "amount_wei": str(10**30),
                      "ref": f"loadtest-{i}"},
            )
            answer.raise_for_status()


def run_once(
    target: Target,
    repeat: int,
    spec: CorpusSpec,
    bundles: list[Bundle],
    conn_rows: list[list[int]],
    workdir: Path,
    args: argparse.Namespace,
) -> Row:
    """Start the target's servers, sign the requests for the slots open now, run the clients
    against the servers once, stop everything."""
    servers = _start(target, workdir, args, repeat)
    front = servers.front
    seconds = args.seconds
    try:
        # Funded first: the time the target slots allow starts below
        if target.is_engine and target.env.get("BLOCKSPACE_DEPOSITS", "").lower() == "true":
            fund_searchers(front[0].port, spec, target.env.get("BLOCKSPACE_OPERATOR_TOKEN", ""))
        # The slot the engine has open now (genesis 0), and the span of slots the bids target:
        # the last one as far ahead as the engine allows, so the first closes as late as it can.
        open_slot = int(time.time() * 1000) // args.slot_ms
        first_slot = open_slot + 33 - SLOT_SPAN
        first_deadline_ms = (first_slot + 1) * args.slot_ms
        signed = sign_requests(spec, bundles, first_slot, processes=args.sign_processes)
        corpus_path = workdir / f"signed-{os.getpid()}.pkl"
        with corpus_path.open("wb") as f:
            pickle.dump(signed, f, protocol=pickle.HIGHEST_PROTOCOL)
        del signed
    except Exception:
        servers.stop()
        raise
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    cap = ctx.Value("d", seconds)  # the time cap, final only at ``go``
    workers = []
    spies: list[subprocess.Popen[bytes]] = []
    try:
        # Connection j goes to front server j % len(front).
        ports = [front[j % len(front)].port for j in range(len(conn_rows))]
        for k in range(args.clients):
            plan = ClientPlan(
                transport=target.transport,
                host="127.0.0.1",
                ports=ports[k :: args.clients],
                path=target.path,
                corpus_path=str(corpus_path),
                connections=conn_rows[k :: args.clients],
                window=args.window if target.transport == "ws" else args.http_window,
                seconds=seconds,
            )
            ready = ctx.Event()
            p = ctx.Process(target=client_process, args=(plan, ready, go, cap, out), daemon=True)
            p.start()
            workers.append((p, ready, plan))
        for _, ready, _ in workers:
            if not ready.wait(120):
                raise RuntimeError("a client process did not get ready in 120 s")
        if target.is_engine:
            # Stop sending 2 s before the first target slot closes.
            left_s = (first_deadline_ms - time.time() * 1000) / 1000 - 2.0
            if left_s < seconds:
                if left_s < 1:
                    raise RuntimeError("setup took too long: the target slots are about to close")
                print(f"  note: run cut to {left_s:.1f} s (target slots close soon)")
                seconds = cap.value = left_s
        if args.profile and target.is_engine:
            for i, proc in enumerate(front):
                name = f"{target.server.replace(':', '-')}-{target.transport}-{args.store}"
                path = Path(args.profile) / f"{name}-r{repeat}-e{i}.txt"
                spies.append(start_py_spy(proc.pid, seconds, path))
        profiled = front if args.cprofile and target.is_engine else []
        for proc in profiled:
            os.kill(proc.pid, signal.SIGUSR1)
        procs = servers.all()
        cpu0 = [p.cpu_s() for p in procs]
        t0 = time.monotonic()
        go.set()
        results: list[ClientResult] = [out.get(timeout=seconds + GRACE_S + 60) for _ in workers]
        wall = time.monotonic() - t0
        cpu1 = [p.cpu_s() for p in procs]
        for proc in profiled:
            os.kill(proc.pid, signal.SIGUSR2)
        time.sleep(2.0 if profiled else 0.0)  # let them write their stats
        for p, _, _ in workers:
            p.join(timeout=10)
        for spy in spies:
            spy.wait(timeout=60)
        for proc in front:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} died during the run:\n{proc.log_tail()}")
    finally:
        for p, _, _ in workers:
            if p.is_alive():
                p.kill()
        for spy in spies:
            if spy.poll() is None:
                spy.kill()
        servers.stop()
    bad = [r.setup_error for r in results if r.setup_error]
    if bad:
        raise RuntimeError(f"client failed: {bad[0]}\n{front[0].log_tail()}")
    n = len(front)
    cpu_front = sum(cpu1[i] - cpu0[i] for i in range(n))
    cpu_redis = cpu1[n] - cpu0[n] if servers.redis else 0.0
    return _row(target, repeat, results, wall, cpu_front, cpu_redis, args)


def start_py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Sample the server with py-spy (collapsed stacks, line numbers) while the run lasts."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [binary, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
         "--rate", "250", "--nonblocking", "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _row(
    target: Target,
    repeat: int,
    results: list[ClientResult],
    wall: float,
    cpu_front: float,
    cpu_redis: float,
    args: argparse.Namespace,
) -> Row:
    lat = np.concatenate([np.frombuffer(r.latencies_ms, dtype=np.float64) for r in results])
    accepted = sum(r.accepted for r in results)
    t_go = min(r.t_go for r in results)
    t_last = max((r.t_last for r in results if r.t_last), default=t_go)
    span = max(t_last - t_go, 1e-9)
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r.errors)
    return Row(
        server=target.server,
        transport=target.transport,
        store=args.store if target.is_engine else "-",
        repeat=repeat,
        sent=sum(r.sent for r in results),
        accepted=accepted,
        accepted_per_s=accepted / span,
        p50_ms=float(np.percentile(lat, 50)) if lat.size else float("nan"),
        p99_ms=float(np.percentile(lat, 99)) if lat.size else float("nan"),
        lost=sum(r.lost for r in results),
        notifications=sum(r.notifications for r in results),
        errors=dict(errors),
        cpu_server=cpu_front / wall,
        cpu_redis=cpu_redis / wall,
        cpu_client=sum(r.cpu_s for r in results) / wall,
        seconds=span,
        server_us_per_ack=cpu_front / max(accepted, 1) * 1e6,
    )


def _fmt_errors(row: Row) -> str:
    parts = [f"{k}={v}" for k, v in sorted(row.errors.items())]
    if row.lost:
        parts.append(f"lost={row.lost}")
    return ",".join(parts) or "0"


def print_table(rows: list[Row], title: str) -> None:
    print(f"\n{title}")
    head = (
        f"{'transport':9} {'server':13} {'store':6} {'bids':>7} {'accepted/s':>10} "
        f"{'p50 ms':>7} {'p99 ms':>7}  {'cpu srv/redis/client':>20} {'srv us/ack':>10}  errors"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        cpu = f"{r.cpu_server:.0%}/{r.cpu_redis:.0%}/{r.cpu_client:.0%}"
        print(
            f"{r.transport:9} {r.server:13} {r.store:6} {r.sent:>7} {r.accepted_per_s:>10,.0f} "
            f"{r.p50_ms:>7.1f} {r.p99_ms:>7.1f}  {cpu:>20} {r.server_us_per_ack:>10.0f}  "
            f"{_fmt_errors(r)}"
        )


def medians(rows: list[Row]) -> list[Row]:
    out = []
    keys = list(dict.fromkeys((r.transport, r.server) for r in rows))
    for transport, server in keys:
        group = [r for r in rows if (r.transport, r.server) == (transport, server)]
        errors: Counter[str] = Counter()
        for r in group:
            errors.update(r.errors)
        out.append(
            Row(
                server=server,
                transport=transport,
                store=group[0].store,
                repeat=0,
                sent=int(statistics.median(r.sent for r in group)),
                accepted=int(statistics.median(r.accepted for r in group)),
                accepted_per_s=statistics.median(r.accepted_per_s for r in group),
                p50_ms=statistics.median(r.p50_ms for r in group),
                p99_ms=statistics.median(r.p99_ms for r in group),
                lost=sum(r.lost for r in group),
                errors=dict(errors),  # summed over repeats
                cpu_server=statistics.median(r.cpu_server for r in group),
                cpu_redis=statistics.median(r.cpu_redis for r in group),
                cpu_client=statistics.median(r.cpu_client for r in group),
                seconds=statistics.median(r.seconds for r in group),
                server_us_per_ack=statistics.median(r.server_us_per_ack for r in group),
            )
        )
    return out


def _load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_ratios(rows: list[Row], med: list[Row]) -> None:
    """Every engine against every echo of its transport, same run: the ack rate (medians, and
    the median of per-repeat ratios) and the server CPU per ack (``srv us/ack``, the figure a
    shared machine moves least). Against ``echo-verify-ws`` the CPU ratio is the engine's cost
    over the cryptographic floor."""
    for bs in [m for m in med if m.server.startswith("blockspace")]:
        for base in [m for m in med if m.transport == bs.transport and not m.server.startswith(
                "blockspace")]:  # fmt: skip
            if not base.accepted_per_s or not base.server_us_per_ack:
                continue
            mine = [r for r in rows if (r.transport, r.server) == (bs.transport, bs.server)]
            theirs = [r for r in rows if (r.transport, r.server) == (base.transport, base.server)]
            per_repeat = [b.accepted_per_s / e.accepted_per_s
                          for b, e in zip(mine, theirs, strict=True)]  # fmt: skip
            cpu_repeat = [b.server_us_per_ack / max(e.server_us_per_ack, 1e-9)
                          for b, e in zip(mine, theirs, strict=True)]  # fmt: skip
            print(
                f"ratio {bs.server}/{base.server} ({bs.transport}, store {bs.store}): "
                f"{bs.accepted_per_s / base.accepted_per_s:.3f} of its ack rate (median of "
                f"per-repeat ratios {statistics.median(per_repeat):.3f}); "
                f"{bs.server_us_per_ack / base.server_us_per_ack:.2f}x its CPU per ack "
                f"({bs.server_us_per_ack:.0f} vs {base.server_us_per_ack:.0f} us; per-repeat "
                f"median {statistics.median(cpu_repeat):.2f}x); "
                f"p50 {bs.p50_ms:.1f} vs {base.p50_ms:.1f} ms"
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--bids", type=int, default=60_000, help="pre-signed bids per run (count cap)")
    p.add_argument("--connections", type=int, default=8, help="websocket connections")
    p.add_argument("--window", type=int, default=64, help="requests in flight per ws connection")
    p.add_argument(
        "--seconds", type=float, default=10.0, help=f"time cap per run (<= {MAX_SECONDS:g})"
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--store", choices=["memory", "redis"], default="redis")
    p.add_argument("--http", action="store_true", help="also measure the HTTP intake")
    p.add_argument("--http-only", action="store_true", help="measure only the HTTP intake")
    p.add_argument("--http-connections", type=int, default=64)
    p.add_argument("--http-window", type=int, default=1, help="pipelined requests per connection")
    p.add_argument("--clients", type=int, default=1, help="client processes")
    p.add_argument(
        "--engines",
        type=int,
        default=1,
        help="engine processes sharing the Redis store; connections spread over them",
    )
    p.add_argument("--searchers", type=int, default=256)
    p.add_argument(
        "--backruns",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of bundles that back-run one of 64 shared victim transactions (default 0: "
        "every transaction distinct, the worst case for the engine)",
    )
    p.add_argument("--slot-ms", type=int, default=2000, dest="slot_ms")
    p.add_argument(
        "--asgi-echo",
        action="store_true",
        help="also run a raw ASGI websocket echo under uvicorn (diagnostic)",
    )
    p.add_argument("--no-echo", action="store_true", help="measure blockspace only (profiling)")
    p.add_argument(
        "--no-verify-echo",
        action="store_true",
        help="leave out the verifying echo (the bare echo plus the signature and sender "
        "recoveries of every frame: the cryptographic floor)",
    )
    p.add_argument("--sign-processes", type=int, default=None)
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=ROOT[,K=V...]",
        help="serve the engine from another checkout (e.g. a scratch copy with a change), with "
        "extra environment; repeat to compare variants in the same run",
    )
    p.add_argument("--server-python", default=sys.executable)
    p.add_argument("--profile", metavar="DIR", help="py-spy the engine; stacks go to DIR")
    p.add_argument(
        "--cprofile",
        metavar="DIR",
        help="run the engine under cProfile during the load (where py-spy cannot attach); "
        "stats go to DIR (read them with python -m loadtest.profile --pstats DIR)",
    )
    p.add_argument("--json", help="write every row and the medians to this file")
    args = p.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS:
        p.error(f"--seconds must be in (0, {MAX_SECONDS:g}]")
    if args.engines > 1 and args.store != "redis":
        p.error("--engines > 1 needs --store redis (engines share the store)")
    if args.searchers < max(args.connections, args.http_connections):
        p.error("--searchers must be at least the number of connections")
    spec = CorpusSpec(
        bids=args.bids, searchers=args.searchers, slot_span=SLOT_SPAN, victim_share=args.backruns
    )

    t = time.monotonic()
    corpus = load_bundles(spec, processes=args.sign_processes)
    print(f"corpus: {len(corpus)} bundles of signed transactions from {args.searchers} searchers "
          f"({time.monotonic() - t:.1f} s, {spec.cache_path()})")  # fmt: skip

    variants = [parse_variant(v) for v in args.variant]

    def engines(transport: str, path: str) -> list[Target]:
        if not variants:
            return [Target("blockspace", transport, path)]
        return [Target(f"blockspace:{lb}", transport, path, rt, env) for lb, rt, env in variants]

    targets: list[tuple[Target, list[list[int]]]] = []
    if not args.http_only:
        ws_rows = connection_rows(corpus, args.connections)
        if not args.no_echo:
            targets.append((Target("echo-ws", "ws", "/"), ws_rows))
            if not args.no_verify_echo:
                targets.append((Target("echo-verify-ws", "ws", "/"), ws_rows))
            if args.asgi_echo:
                targets.append((Target("echo-asgi-ws", "ws", "/"), ws_rows))
        targets += [(e, ws_rows) for e in engines("ws", "/ws")]
    if args.http or args.http_only:
        http_rows = connection_rows(corpus, args.http_connections)
        if not args.no_echo:
            targets.append((Target("echo-http", "http", "/"), http_rows))
        targets += [(e, http_rows) for e in engines("http", "/")]

    rows: list[Row] = []
    load_start = _load_average()
    with tempfile.TemporaryDirectory(prefix="blockspace-loadtest-") as tmp:
        for repeat in range(1, args.repeats + 1):
            # Alternate the order so slow drift of the machine hits every server alike.
            order = targets if repeat % 2 else targets[::-1]
            for target, conn_rows in order:
                row = run_once(target, repeat, spec, corpus, conn_rows, Path(tmp), args)
                rows.append(row)
                print_table([row], f"repeat {repeat}: {target.server} over {target.transport}")
    rows.sort(key=lambda r: (r.transport == "http", r.server, r.repeat))
    print(f"\nload average (1/5/15 min) at the start: {load_start}; at the end: "
          f"{_load_average()}")  # fmt: skip
    print_table(rows, "all runs")
    med = medians(rows)
    print_table(med, f"medians of {args.repeats} repeats")
    print()
    print_ratios(rows, med)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "rows": [asdict(r) for r in rows],
                    "medians": [asdict(m) for m in med],
                },
                indent=1,
                default=str,
            )  # fmt: skip
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
