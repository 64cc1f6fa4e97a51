"""A real redis-server per test session (or per test, for crash tests), on a free port, in a
temp dir. Never touches a server or data the tests did not create."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


class PortTaken(Exception):
    """The port chosen for a server that never started was taken meanwhile."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server process we own: start, SIGKILL, restart on the same dir and port."""

    def __init__(
        self,
        workdir: Path,
        *,
        appendfsync: str = "everysec",
        port: int | None = None,
        choose_port: Callable[[], int] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        # A port we chose may be taken between choosing it and the first start (a port of
        # the ephemeral range, by another process's connection): the first start then takes
        # another. A given port is kept, and so is ours once started (restarts reuse it).
        self._choose = None if port is not None else (choose_port or _free_port)
        self.port = port if port is not None else (choose_port or _free_port)()
        self.appendfsync = appendfsync
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        for _ in range(5):
            try:
                self._start()
            except PortTaken:
                assert self._choose is not None
                self.port = self._choose()
                continue
            self._choose = None  # started: restarts keep this port
            return
        raise RuntimeError("redis-server found every port it was given taken")

    def _start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (scripts/test installs it)")
        log = self.workdir / "redis.log"
        start_of_log = log.stat().st_size if log.exists() else 0
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--appendonly",
                "yes",
                "--appendfsync",
                self.appendfsync,
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(self.workdir / "redis.log"),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                with open(log, errors="replace") as f:
                    f.seek(start_of_log)
                    text = f.read()
                if self._choose is not None and "Address already in use" in text:
                    raise PortTaken(self.port)
                raise RuntimeError(f"redis-server exited: {text}")
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start in 10 s")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, exactly like a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _free_cluster_port(taken: Callable[[], set[int]] = set) -> int:
    """A free port whose cluster bus port (port + 10000) is free too, neither of them one of
    ``taken()`` (the ports and bus ports of the cluster's other nodes)."""
    for _ in range(200):
        port = _free_port()
        if port + 10000 > 65535 or {port, port + 10000} & taken():
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _cli(*args: str, port: int) -> str:
    binary = shutil.which("redis-cli")
    if binary is None:
        pytest.skip("redis-cli is not installed (scripts/test installs it)")
    out = subprocess.run(
        [binary, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return out.stdout + out.stderr


def _info(port: int, section: str) -> dict[str, str]:
    fields = {}
    args = ("cluster", "info") if section == "cluster" else ("info", section)
    for line in _cli(*args, port=port).split():
        name, sep, value = line.partition(":")
        if sep:
            fields[name] = value
    return fields


class RedisClusterServers:
    """A Redis Cluster we own: ``masters`` masters with one replica each, on free loopback
    ports, AOF on, each node in its own directory; kill a node with SIGKILL and restart it."""

    def __init__(self, workdir: Path, *, masters: int = 3, node_timeout_ms: int = 1000) -> None:
        self.nodes: list[RedisServer] = []
        for i in range(masters * 2):
            node_dir = workdir / f"node{i}"
            node_dir.mkdir()
            self.nodes.append(
                RedisServer(
                    node_dir,
                    choose_port=lambda: _free_cluster_port(self._ports_taken),
                    extra_args=(
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        str(node_timeout_ms),
                    ),
                )
            )

    def _ports_taken(self) -> set[int]:
        return {p for n in self.nodes for p in (n.port, n.port + 10000)}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        out = _cli(
            "--cluster",
            "create",
            *(f"127.0.0.1:{n.port}" for n in self.nodes),
            "--cluster-replicas",
            "1",
            "--cluster-yes",
            port=self.nodes[0].port,
        )
        if "[OK] All 16384 slots covered" not in out:
            raise RuntimeError(f"redis-cli --cluster create failed: {out}")
        self.wait_ready()

    def live(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def wait_ready(self, timeout_s: float = 30) -> None:
        """Until every live node says cluster_state:ok and every replica's link is up."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self._ready(n.port) for n in self.live()):
                return
            time.sleep(0.1)
        raise RuntimeError("the redis cluster did not become ready")

    @staticmethod
    def _ready(port: int) -> bool:
        if _info(port, "cluster").get("cluster_state") != "ok":
            return False
        replication = _info(port, "replication")
        if replication.get("role") == "slave":
            return replication.get("master_link_status") == "up"
        return True

    def masters(self) -> list[RedisServer]:
        return [n for n in self.live() if _info(n.port, "replication").get("role") == "master"]

    def master_of(self, key: str) -> RedisServer:
        """The live master serving ``key``'s hash slot."""
        slot = int(_cli("cluster", "keyslot", key, port=self.live()[0].port).strip())
        for node in self.masters():
            for line in _cli("cluster", "nodes", port=node.port).splitlines():
                parts = line.split()
                if "myself" not in parts[2]:
                    continue
                for span in parts[8:]:
                    lo, _, hi = span.partition("-")
                    if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                        return node
        raise RuntimeError(f"no live master serves slot {slot}")

    def replica_of(self, master: RedisServer) -> RedisServer:
        """A live replica of ``master`` (from its INFO replication: slave0:ip=..,port=..)."""
        for name, value in _info(master.port, "replication").items():
            if name.startswith("slave") and name[5:].isdigit():
                port = int(dict(f.split("=") for f in value.split(","))["port"])
                for node in self.live():
                    if node.port == port:
                        return node
        raise RuntimeError(f"master on port {master.port} has no live replica")

    def move_hash_slot(self, key: str, to: RedisServer) -> None:
        """Migrate ``key``'s hash slot (and its keys) to the master ``to``, as a resharding
        does: IMPORTING/MIGRATING, MIGRATE the keys, then the new owner on every master. A
        client with the old slot map then gets MOVED."""
        port = self.live()[0].port
        slot = _cli("cluster", "keyslot", key, port=port).strip()
        source = self.master_of(key)
        source_id = _cli("cluster", "myid", port=source.port).strip()
        target_id = _cli("cluster", "myid", port=to.port).strip()
        _cli("cluster", "setslot", slot, "importing", source_id, port=to.port)
        _cli("cluster", "setslot", slot, "migrating", target_id, port=source.port)
        while True:
            names = _cli("cluster", "getkeysinslot", slot, "100", port=source.port).split()
            if not names:
                break
            out = _cli(
                "migrate", "127.0.0.1", str(to.port), "", "0", "5000", "keys", *names,
                port=source.port,
            )
            if "OK" not in out:
                raise RuntimeError(f"MIGRATE failed: {out}")
        for node in self.masters():
            _cli("cluster", "setslot", slot, "node", target_id, port=node.port)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """One cluster (3 masters, 3 replicas) for the session; tests flush it (it is ours)."""
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[RedisClusterServers]:
    """A cluster of its own, for tests that kill its nodes."""
    cluster = RedisClusterServers(tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One shared server for the session; tests use distinct databases or keys via flushdb on
    the databases this server holds (it is ours, created for this run)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of its own, for tests that crash and restart it."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


__all__ = [
    "RedisClusterServers",
    "RedisServer",
    "fresh_cluster",
    "fresh_redis",
    "os",
    "redis_cluster",
    "redis_server",
]
