"""The processes under test: our own redis-server, ``blockspace serve`` and the echo servers.

Everything binds to 127.0.0.1 on a free port, lives in a temp dir, and is stopped by the process
id we started it with. The Redis server is never the machine's shared one (port 6379): each run
starts a fresh one with the engine's durability settings (AOF on, fsync every second).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
_CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """A process we started; ``cpu_s`` reads its CPU time (all threads) from /proc."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_s(self) -> float:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _wait(check, proc: Proc, what: str, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{what} exited during start:\n{proc.log_tail()}")
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"{what} did not start in {timeout_s} s:\n{proc.log_tail()}")


def start_redis(workdir: Path) -> Proc:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    if port == 6379:  # never the machine's shared server
        port = free_port()
    log = workdir / "redis.log"
    popen = subprocess.Popen(
        [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(workdir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(log),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    proc = Proc("redis", popen, port, log)

    def pong() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")

    _wait(pong, proc, "redis-server")
    return proc


def start_blockspace(
    workdir: Path,
    *,
    store: str,
    slot_ms: int,
    python: str = sys.executable,
    root: Path = REPO,
    env_extra: dict[str, str] | None = None,
    cprofile_out: Path | None = None,
) -> Proc:
    """``blockspace serve`` on a free port, as deployed (genesis 0: slot = now_ms // slot_ms);
    with ``cprofile_out``, under ``loadtest/cprofile_serve.py`` (SIGUSR1 starts it, SIGUSR2
    writes the file)."""
    port = free_port()
    env = {**os.environ, **(env_extra or {})}
    log = workdir / f"blockspace-{port}.log"
    wrapper = ["-m", "api.cli"]
    if cprofile_out is not None:
        # By path (a variant's checkout may not have it), from -c: a script's own directory
        # on sys.path would shadow the standard library's ``profile`` with loadtest/profile.py.
        script = REPO / "loadtest" / "cprofile_serve.py"
        run = f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')"
        wrapper = ["-c", run, str(cprofile_out)]
    with log.open("wb") as f:
        popen = subprocess.Popen(
            [python, *wrapper, "serve", "--host", "127.0.0.1", "--port", str(port),
             "--slot-ms", str(slot_ms), "--store", store],
            cwd=root,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    proc = Proc("blockspace", popen, port, log)

    def healthy() -> bool:
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
        return r.status_code == 200

    # Generous: the engine may compile its numba kernels before it answers.
    _wait(healthy, proc, "blockspace serve", timeout_s=START_TIMEOUT_S)
    return proc


def start_echo(workdir: Path, kind: str) -> Proc:
    port = free_port()
    log = workdir / f"echo-{kind}-{port}.log"
    with log.open("wb") as f:
        popen = subprocess.Popen(
            [sys.executable, "-m", "loadtest.echo", "--kind", kind, "--port", str(port)],
            cwd=REPO,
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    proc = Proc(f"echo-{kind}", popen, port, log)

    def listening() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True

    _wait(listening, proc, f"echo server ({kind})")
    return proc
