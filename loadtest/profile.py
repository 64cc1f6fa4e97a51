"""Where the engine's CPU goes under load: a breakdown of py-spy samples.

``python -m loadtest.run --profile DIR`` records the engine with ``py-spy record --format raw``
(collapsed stacks with line numbers) while the load runs; this module reads those files and
prints two views, each a share of all samples taken while the server was on the CPU:

- by *primitive*, from the innermost frame outwards: ECDSA recovery (libsecp256k1 via
  coincurve), Keccak, RLP, JSON (orjson, found by reading the sampled source line), websocket
  framing, the ASGI stack, the Redis client, the asyncio loop and transports, metrics, logging,
  and the rest of our own Python by module;
- by *intake stage*, by the most specific of our functions on the stack: frame receive and
  parse, searcher authentication, transaction decode, other bid validation, the store append
  (group commit), replies and notifications, the slot clock, and event-loop work outside them.

Run: ``python -m loadtest.profile DIR_OR_FILES... [--root REPO]``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from loadtest.servers import REPO

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# (category, test on (function, file)); innermost frame first, first match wins.
_PRIMITIVE_RULES: list[tuple[str, str]] = [
    ("ECDSA recovery (libsecp256k1)", r"^coincurve/"),
    ("Keccak-256", r"^(Crypto/|auction/hashing\.py)"),
    ("RLP decode", r"^rlp/|^eth_utils/"),
    ("websocket framing (websockets)", r"^websockets/"),
    ("uvicorn websocket protocol", r"^uvicorn/protocols/websockets/"),
    ("uvicorn HTTP protocol", r"^(uvicorn/protocols/http/|h11/|httptools/)"),
    ("ASGI stack (uvicorn/starlette/fastapi)", r"^(uvicorn/|starlette/|fastapi/)"),
    ("Redis client (redis-py, hiredis)", r"^(redis/|hiredis/)"),
    ("metrics (prometheus_client)", r"^prometheus_client/"),
    ("logging", r"^logging/"),
    ("asyncio loop, tasks, transports", r"^(asyncio/|selectors\.py|socket\.py|uvloop/)"),
    ("pydantic / dataclass init", r"^(pydantic|<string>)"),
]

# Stage rules on our functions; a sample goes to the first rule any of its frames matches.
_STAGE_RULES: list[tuple[str, str]] = [
    ("slot clock (closing slots)", r"Engine\.(close_slot|_run_slots)|_announce"),
    ("searcher auth (recover_searcher)", r"^(recover_searcher|Engine\.authenticate)$"),
    ("tx decode (decode_transaction)", r"^(decode_transaction|_decode_txs)$"),
    ("store append (Redis group commit)", r"^RedisStore\.|^MemoryStore\."),
    ("bid validation, other (compute_bid)", r"^compute_bid$"),
    ("replies and notifications (writer, send)", r"writer$|^Notifier\.|^Subscriber\."),
    ("frame parse (_split_frame, parse_request)", r"^(_split_frame|parse_request)$"),
    ("receive loop (ws.receive, task spawn)", r"^serve_websocket$"),
    ("engine glue (dispatch, submit_bundle)", r"^(dispatch|Engine\.submit_bundle)$"),
    ("HTTP route (request body, response)", r"rpc$|rpc_default|rpc_rollup"),
]


def _parse_frame(text: str) -> tuple[str, str, int]:
    m = _FRAME.match(text)
    if not m:
        return text, "", 0
    return m["func"], m["file"], int(m["line"] or 0)


@lru_cache(maxsize=4096)
def _source_line(root: str, file: str, line: int) -> str:
    path = Path(root) / file
    try:
        return path.read_text().splitlines()[line - 1]
    except (OSError, IndexError):
        return ""


def _is_ours(file: str) -> bool:
    return file.startswith(("api/", "auction/", "ordering/", "committee/"))


def classify_primitive(frames: list[tuple[str, str, int]], root: str) -> str:
    if not frames:
        return "unknown (truncated stack)"
    for _func, file, line in reversed(frames):
        for name, pattern in _PRIMITIVE_RULES:
            if re.search(pattern, file):
                return name
        if _is_ours(file):
            src = _source_line(root, file, line)
            if "orjson." in src:
                return "JSON (orjson)"
            if "codec." in src or file == "auction/codec.py":
                return "event codec (auction/codec.py)"
            return f"our Python: {file}"
    return f"other: {frames[-1][1] or frames[-1][0]}"


def classify_stage(frames: list[tuple[str, str, int]]) -> str:
    best = len(_STAGE_RULES)
    for func, file, _ in frames:
        if not _is_ours(file):
            continue
        for i, (_name, pattern) in enumerate(_STAGE_RULES[:best]):
            if re.search(pattern, func):
                best = i
                break
    if best < len(_STAGE_RULES):
        return _STAGE_RULES[best][0]
    if any(f.startswith(("redis/",)) for _, f, _ in frames):
        return "store append (Redis group commit)"
    if any(f.startswith(("uvicorn/", "websockets/", "starlette/")) for _, f, _ in frames):
        return "transport outside our code (uvicorn, websockets)"
    if any(f.startswith("asyncio/") for _, f, _ in frames):
        return "event loop (scheduling, selectors)"
    return "unknown (truncated stack)"


def read_samples(paths: Iterable[Path]) -> list[tuple[list[tuple[str, str, int]], int]]:
    out = []
    for path in paths:
        for raw in path.read_text().splitlines():
            if not raw.strip():
                continue
            stack, _, count = raw.rpartition(" ")
            frames = [_parse_frame(f) for f in stack.split(";") if f]
            out.append((frames, int(count)))
    return out


def breakdown(paths: Iterable[Path], root: str = str(REPO)) -> dict[str, Counter[str]]:
    samples = read_samples(paths)
    prim: Counter[str] = Counter()
    stage: Counter[str] = Counter()
    for frames, n in samples:
        prim[classify_primitive(frames, root)] += n
        stage[classify_stage(frames)] += n
    return {"primitive": prim, "stage": stage}


def print_breakdown(views: dict[str, Counter[str]], top: int = 18) -> None:
    for view, counts in views.items():
        total = sum(counts.values()) or 1
        print(f"\nby {view} ({total} samples)")
        for name, n in counts.most_common(top):
            print(f"  {n / total:6.1%}  {name}")
        rest = sum(n for _, n in counts.most_common()[top:])
        if rest:
            print(f"  {rest / total:6.1%}  (the rest)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.profile", description=__doc__)
    p.add_argument("paths", nargs="+", help="py-spy raw files, or directories of them")
    p.add_argument("--root", default=str(REPO), help="the checkout the profiled server ran")
    p.add_argument("--top", type=int, default=18)
    args = p.parse_args(argv)
    files: list[Path] = []
    for raw in args.paths:
        path = Path(raw)
        files += sorted(path.glob("*.txt")) if path.is_dir() else [path]
    print_breakdown(breakdown(files, args.root), args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
