"""``blockspace serve`` under cProfile, for where py-spy cannot attach (no ptrace in a sandbox).

    python -m loadtest.cprofile_serve OUT.pstats serve --port ... --store ...

The profiler starts on SIGUSR1 and stops on SIGUSR2, which writes ``OUT.pstats``; the load test
sends them around the measured window (``--cprofile DIR``), so start-up and the numba warm-up
are left out. cProfile sees the event loop's thread only (the engine's intake runs there; only
requests of at least ``decode_offload_bytes`` are decoded in a worker thread), and it slows pure
Python calls more than C calls: read its shares as a ranking, and measure a change by the load
test's ``srv us/ack`` without it.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
from types import FrameType


def main(argv: list[str]) -> int:
    out, *serve_args = argv  # run by loadtest.servers as ``python -c <run_path> OUT serve ...``
    profile = cProfile.Profile()

    def start(_sig: int, _frame: FrameType | None) -> None:
        profile.enable()

    def stop(_sig: int, _frame: FrameType | None) -> None:
        profile.disable()
        profile.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    # Run by path from the served checkout's root: serve that checkout's code.
    sys.path.insert(0, os.getcwd())
    from api.cli import main as cli_main

    return cli_main(serve_args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
