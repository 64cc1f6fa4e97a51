"""A committee on this machine: key files, in-process members, or signer processes on loopback.

``blockspace committee keygen`` writes key files with ``write_committee_files``; ``blockspace
demo`` runs ``build_local_members`` (the default) or ``SignerProcesses`` (``--signer-processes``);
the tests and ``bench/committee_latency.py`` start real ``blockspace signer`` processes through
``SignerProcesses`` and kill or restart them by member index.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from committee import keyfiles, threshold
from committee.coordinator import Coordinator, EngineHost, HttpMember, LocalMember
from committee.member import Member
from committee.protection import ProtectionStore
from committee.signer import compute_member_config
from committee.threshold import CommitteeInfo, KeyShare
from node.settings import Settings
from ordering import packer

COMMITTEE_FILE = "committee.json"


def share_file_name(index: int) -> str:
    return f"member-{index}.share.json"


def write_committee_files(
    directory: str | os.PathLike[str], n: int, t: int, *, seed: bytes | None = None
) -> tuple[Path, list[Path]]:
    """Deal a t-of-n committee (trusted dealer) and write its public file and n share files.

    Every share file is read back and Feldman-checked against the commitments, as each member
    does on receipt. ``seed`` is for tests only; production deals from ``secrets.token_bytes``.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    committee, shares = threshold.deal(n, t, seed if seed is not None else secrets.token_bytes(32))
    committee_path = out / COMMITTEE_FILE
    keyfiles.write_committee_file(committee_path, committee)
    paths = []
    for share in shares:
        path = out / share_file_name(share.index)
        keyfiles.write_share_file(path, share, committee)
        # Verify what a member will load: keys re-derived, id recomputed, share Feldman-checked.
        loaded, info = keyfiles.read_share_file(path)
        if loaded.index != share.index or info.committee_id != committee.committee_id:
            raise RuntimeError(f"share file {path} does not read back")
        paths.append(path)
    return committee_path, paths


def build_local_members(
    settings: Settings,
    committee: CommitteeInfo,
    shares: list[KeyShare],
    directory: str | os.PathLike[str],
    *,
    clock_ms: Callable[[], int] | None = None,
    faults: Mapping[int, str] | None = None,
    operator: str | None = None,
) -> list[LocalMember]:
    """In-process members with their own protection files in ``directory``."""
    faults = faults or {}
    members = []
    for share in shares:
        member = Member(
            share,
            compute_member_config(settings, committee, share.index),
            ProtectionStore(Path(directory) / f"member-{share.index}.protection.sqlite3"),
            evidence_sample=settings.signer_evidence_sample,
            fault=faults.get(share.index),
            clock_ms=clock_ms,
            stream_check=settings.signer_stream_check,
            operator=operator or settings.signer_operator,
            kept_slots=settings.signer_kept_slots,
        )
        members.append(LocalMember(member))
    return members


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SignerProcesses:
    """``blockspace signer`` processes on loopback, one per share file, by member index."""

    def __init__(
        self,
        share_paths: list[Path],
        *,
        env: Mapping[str, str] | None = None,
        faults: Mapping[int, str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.share_paths = {i + 1: p for i, p in enumerate(share_paths)}
        self.env = dict(env or {})
        self.faults = dict(faults or {})
        # Each member binds a free port the first time and reports it in its port file; a
        # restart asks for the same port again, so the member's URL never changes.
        self.ports: dict[int, int] = {}
        self._port_dir = tempfile.TemporaryDirectory(prefix="blockspace-signers-")
        self.log_dir = Path(log_dir) if log_dir else None
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._logs: dict[int, IO[bytes]] = {}

    @property
    def urls(self) -> list[str]:
        """Member URLs in index order (member 1 first), as ``--signer`` takes them; known once
        every member has been ready once."""
        return [f"http://127.0.0.1:{self.ports[i]}" for i in sorted(self.share_paths)]

    def _port_file(self, index: int) -> Path:
        return Path(self._port_dir.name) / f"signer-{index}.port"

    def start(self, index: int) -> None:
        """Start (or restart) member ``index`` on its port, with its protection file."""
        env = {**os.environ, **self.env}
        env.pop("BLOCKSPACE_SIGNER_FAULT", None)
        if index in self.faults:
            env["BLOCKSPACE_SIGNER_FAULT"] = self.faults[index]
        binary = Path(sys.executable).parent / "blockspace"
        out: int | IO[bytes] = subprocess.DEVNULL
        if self.log_dir is not None:
            if index in self._logs:
                self._logs.pop(index).close()
            out = self._logs[index] = open(self.log_dir / f"signer-{index}.log", "ab")  # noqa: SIM115
        self._port_file(index).unlink(missing_ok=True)
        self.procs[index] = subprocess.Popen(
            [str(binary), "signer", "--share", str(self.share_paths[index]),
             "--port", str(self.ports.get(index, 0)), "--port-file", str(self._port_file(index))],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def start_all(self, timeout_s: float = 240.0) -> None:
        """Start every member. The first one is started alone and waited for: if the solver's
        compile cache is stale it refreshes it once, and the others then load it instead of
        all compiling at the same time."""
        indices = sorted(self.share_paths)
        self.start(indices[0])
        try:
            if len(indices) > 1:
                self.wait_ready(indices[:1], timeout_s)
        except BaseException:
            self.stop_all()
            raise
        for index in indices[1:]:
            self.start(index)

    def wait_ready(self, indices: list[int] | None = None, timeout_s: float = 60.0) -> None:
        """Block until each member answers ``/healthz`` (or raise with the ones that did not)."""
        todo = set(indices or self.share_paths)
        deadline = time.monotonic() + timeout_s
        while todo and time.monotonic() < deadline:
            for i in sorted(todo):
                proc = self.procs.get(i)
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"signer {i} exited with {proc.returncode}")
                if i not in self.ports:
                    try:
                        self.ports[i] = int(self._port_file(i).read_text())
                    except (OSError, ValueError):
                        continue  # not bound yet
                try:
                    r = httpx.get(f"http://127.0.0.1:{self.ports[i]}/healthz", timeout=0.5)
                    if r.status_code == 200 and r.json()["member"] == i:
                        todo.discard(i)
                except httpx.HTTPError:
                    pass
            if todo:
                time.sleep(0.05)
        if todo:
            raise RuntimeError(f"signers {sorted(todo)} did not start in {timeout_s} s")

    def __enter__(self) -> SignerProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def kill(self, index: int) -> None:
        """SIGKILL member ``index``: no shutdown hook runs, exactly like a crash."""
        proc = self.procs.get(index)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        """Terminate every member (and wait for it), then drop the port files."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for f in self._logs.values():
            f.close()
        self._logs.clear()
        self._port_dir.cleanup()


def compute_settings_env(settings: Settings) -> dict[str, str]:
    """``BLOCKSPACE_*`` variables that give a signer process the same rules and clock."""
    env = {
        "BLOCKSPACE_SLOT_MS": str(settings.slot_ms),
        "BLOCKSPACE_GENESIS_MS": str(settings.genesis_ms),
        "BLOCKSPACE_ROLLUPS": json.dumps(list(settings.rollups)),
        "BLOCKSPACE_PRESET": settings.preset,
        "BLOCKSPACE_MAX_CLOCK_SKEW_MS": str(settings.max_clock_skew_ms),
        "BLOCKSPACE_SIGNER_EVIDENCE_SAMPLE": str(settings.signer_evidence_sample),
        "BLOCKSPACE_SIGNER_STREAM_CHECK": settings.signer_stream_check,
    }
    optional = {
        "BLOCKSPACE_MAX_SLOTS_AHEAD": settings.max_slots_ahead,
        "BLOCKSPACE_SIGNING_WINDOW_MS": settings.signing_window_ms,
        "BLOCKSPACE_GAS_LIMIT": settings.gas_limit,
        "BLOCKSPACE_MAX_GAS_SHARE_PER_SEARCHER": settings.max_gas_share_per_searcher,
        "BLOCKSPACE_RESERVE_PRICE_WEI": settings.reserve_price_wei,
        "BLOCKSPACE_PAYMENT_RULE": settings.payment_rule,
        "BLOCKSPACE_INCLUSION_AFTER_SLOTS": settings.inclusion_after_slots,
    }
    env.update({k: str(v) for k, v in optional.items() if v is not None})
    return env


@dataclass
class LocalCommittee:
    """A committee started for one engine on this machine, and what to tear down."""

    coordinator: Coordinator
    committee: CommitteeInfo
    workdir: tempfile.TemporaryDirectory[str]
    processes: SignerProcesses | None = None

    async def describe(self, rollup: int, slot: int) -> str:
        """One line about the slot's signing outcome (for the demo's printout)."""
        store = self.coordinator.engine.store
        signed = await store.get_signed_block(rollup, slot)
        if signed is not None:
            return f"signed by {list(signed.signers)}"
        failed = await store.get_failed_slot(rollup, slot)
        if failed is not None:
            return f"FAILED ({failed.reason})"
        pin = self.coordinator._pinned
        if pin is not None and pin.slot == slot:
            return "PENDING (fewer than t signed by the deadline; completed before later slots)"
        return "unsigned"

    async def aclose(self) -> None:
        await self.coordinator.aclose()
        if self.processes is not None:
            await asyncio.to_thread(self.processes.stop_all)
        self.workdir.cleanup()


async def start_local_committee(
    engine: EngineHost, settings: Settings, *, n: int, processes: bool
) -> LocalCommittee:
    """Deal a fresh committee (default threshold) and attach its coordinator to ``engine``.

    Call before ``engine.start()``. With ``processes`` every member is a ``blockspace signer``
    process on loopback with the engine's settings; otherwise members run in this process.
    """
    workdir = tempfile.TemporaryDirectory(prefix="blockspace-committee-")
    committee_path, share_paths = write_committee_files(
        workdir.name, n, threshold.default_threshold(n)
    )
    committee = keyfiles.read_committee_file(committee_path)
    window = settings.signing_window_ms or settings.slot_ms
    if processes:
        env = compute_settings_env(settings)
        env["BLOCKSPACE_SIGNER_OPERATOR"] = engine.operator_key.address
        procs = SignerProcesses(share_paths, env=env)
        procs.start_all()
        try:
            await asyncio.to_thread(procs.wait_ready)
        except RuntimeError:
            procs.stop_all()
            workdir.cleanup()
            raise
        client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=n))
        members: list[HttpMember | LocalMember] = [
            HttpMember(i, url, client) for i, url in enumerate(procs.urls, start=1)
        ]
        coordinator = Coordinator(
            engine, committee, members, signing_window_ms=window, owned_client=client,
            streaming=settings.committee_streaming, operator_key=engine.operator_key,
        )
    else:
        procs = None
        shares = [keyfiles.read_share_file(p)[0] for p in share_paths]
        local = build_local_members(settings, committee, shares, workdir.name,
                                    operator=engine.operator_key.address)
        # members repack in this process
        rules = {r.policy.payment_rule for r in settings.rollup_configs().values()}
        await asyncio.to_thread(packer.warm_up, rules)
        coordinator = Coordinator(engine, committee, local, signing_window_ms=window,
                                  streaming=settings.committee_streaming,
                                  operator_key=engine.operator_key)
    coordinator.attach()
    return LocalCommittee(coordinator, committee, workdir, procs)
