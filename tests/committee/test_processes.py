"""The committee with real ``blockspace signer`` processes on loopback: crashes, restarts, lies.

Each test deals a committee into a temp dir, starts one signer process per member (with the
same ``BLOCKSPACE_*`` settings as the engine), and drives an engine in this process on the real
clock, its coordinator talking HTTP to the signers. Waits are on events (published blocks,
process health) with timeouts; a slot's deadline is the only thing waited for by the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from eth_typing import BLSPubkey, BLSSignature
from py_ecc.bls import G2ProofOfPossession

from api.engine import Engine
from api.searcher import SearcherKey, bundle_params
from auction.bundles import compute_bid, compute_bid_id
from auction.errors import BlockspaceError
from auction.slots import compute_deadline_ms
from auction.types import Evidence, LoggedEvent
from committee import keyfiles
from committee.checks import compute_expected_result
from committee.coordinator import Coordinator, HttpMember
from committee.local import SignerProcesses, compute_settings_env, free_port, write_committee_files
from committee.proposal import Proposal
from committee.records import (
    EVIDENCE_EQUIVOCATION,
    EVIDENCE_INVALID_PARTIAL,
    signed_block_from_json,
)
from committee.signer import compute_member_config
from committee.threshold import CommitteeInfo
from committee.verify import verify_signed_block
from node.metrics import Metrics
from node.notify import Subscriber
from node.settings import Settings
from node.stores.memory import MemoryStore
from ordering import packer
from tests.committee.slots import SignsNothing, rehash, slot_of

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

ROLLUP = 167_001
BIN = Path(sys.executable).parent / "blockspace"
GWEI = 10**9


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def warm_packer() -> None:
    """Fill the solver's compile cache, so signer processes start by loading it."""
    packer.warm_up()


class Cluster:
    """n signer processes for a freshly dealt committee, with the given settings and faults."""

    def __init__(self, tmp: Path, n: int, t: int, settings: Settings,
                 faults: dict[int, str] | None = None) -> None:
        committee_path, self.share_paths = write_committee_files(tmp, n, t, seed=bytes([n]) * 32)
        self.committee_path = committee_path
        self.committee: CommitteeInfo = keyfiles.read_committee_file(committee_path)
        self.settings = settings
        self.procs = SignerProcesses(
            self.share_paths, env=compute_settings_env(settings), faults=faults, log_dir=tmp
        )

    def __enter__(self) -> Cluster:
        try:
            self.procs.start_all()
            self.procs.wait_ready(timeout_s=240)
        except BaseException:
            self.procs.stop_all()  # __exit__ does not run when __enter__ raises
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.procs.stop_all()


class Bidding:
    """An engine on the real clock with a coordinator over HTTP, and searchers bidding."""

    def __init__(self, cluster: Cluster, *, attach: bool = True) -> None:
        s = cluster.settings
        self.engine = Engine(
            store=MemoryStore(), rollups=s.rollup_configs(), preset=s.base_preset(),
            slot_ms=s.slot_ms, metrics=Metrics(),
        )
        self.client = httpx.AsyncClient()
        self.coordinator = Coordinator(
            self.engine, cluster.committee,
            [HttpMember(i, url, self.client) for i, url in enumerate(cluster.procs.urls, 1)],
            signing_window_ms=s.signing_window_ms or s.slot_ms, owned_client=self.client,
        )
        if attach:
            self.coordinator.attach()
        self.blocks = Subscriber()
        self.engine.notifier.watch_blocks(self.blocks)
        self.nonce = 0
        self._task: asyncio.Task[None] | None = None

    async def bid(self, slot: int, searcher: int, *, bid_wei: int = 10**15, gas: int = 60_000,
                  txs: list[bytes] | None = None) -> None:
        k = SearcherKey.from_seed(searcher)
        self.nonce += 1
        raws = txs or [k.sign_tx(
            type=2, chainId=ROLLUP, nonce=self.nonce, maxPriorityFeePerGas=2 * GWEI,
            maxFeePerGas=100 * GWEI, gas=gas, to="0x" + "42" * 20, value=0, data=b"")]
        params = bundle_params(raws, slot, bid_wei=bid_wei)
        body = k.request("eth_sendBundle", [params])
        await self.engine.intake.submit_bundle(
            params, searcher=k.address, evidence=Evidence(body, k.sign_body(body)),
            endpoint_rollup=None, transport="http",
        )

    async def _bid_forever(self) -> None:
        while True:
            slot = self.engine.open_slot()
            for i in range(3):
                try:
                    await self.bid(slot, 1 + (slot * 3 + i) % 50, bid_wei=10**15 * (i + 1))
                except BlockspaceError:
                    pass  # on a busy machine a bid can miss its slot's deadline: it is refused
                    # (the engine is right), and the bidding must go on with the next slot
            next_open = compute_deadline_ms(self.engine.clock, slot)
            await asyncio.sleep(max(0.01, (next_open - self.engine.now_ms()) / 1000 + 0.02))

    async def start(self) -> None:
        await self.engine.start()
        self._task = asyncio.create_task(self._bid_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.engine.stop()
        await self.coordinator.aclose()

    async def next_published(self, timeout_s: float = 30.0) -> dict[str, Any]:
        msg = await asyncio.wait_for(self.blocks.queue.get(), timeout_s)
        return msg["params"]["result"]  # type: ignore[no-any-return]

    async def wait_for(self, status: str, count: int, timeout_s: float = 60.0,
                       with_bundles: bool = False) -> list[dict[str, Any]]:
        """The next ``count`` publications with ``status`` (others are skipped)."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count:
            msg = await self.next_published(max(0.1, deadline - time.monotonic()))
            if msg["status"] == status and (not with_bundles or msg.get("bundles")):
                found.append(msg)
        return found


def settings_of(slot_ms: int = 1000, **extra: Any) -> Settings:
    return Settings(slot_ms=slot_ms, rollups=[ROLLUP], genesis_ms=0, **extra)


async def test_killed_members_are_tolerated_up_to_n_minus_t_then_signing_resumes(tmp_path):
    with Cluster(tmp_path, 4, 3, settings_of()) as cluster:
        b = Bidding(cluster)
        await b.start()
        try:
            signed = await b.wait_for("signed", 2, with_bundles=True)
            # One of n killed: blocks keep being signed, by the others.
            cluster.procs.kill(4)
            after_one = await b.wait_for("signed", 2, with_bundles=True)
            assert all(4 not in blk["signers"] for blk in after_one)
            # n - t + 1 killed: the block the other two signed is pending (they are locked to
            # it), and the slots after it are published as failed, never as signed.
            cluster.procs.kill(3)
            failed = await b.wait_for("failed", 2)
            for f in failed:
                assert await b.engine.store.get_signed_block(ROLLUP, f["slot"]) is None
                assert f["reason"] == "blocked_by_pending_slot"
            # Members return (from their protection files): the pending block is completed
            # first, then signing resumes on it.
            cluster.procs.start(3)
            cluster.procs.start(4)
            await asyncio.to_thread(cluster.procs.wait_ready, [3, 4], 240)
            resumed = await b.wait_for("signed", 2, with_bundles=True)
        finally:
            await b.stop()
    first_back = signed_block_from_json(resumed[0])
    assert first_back.block.slot < min(f["slot"] for f in failed)  # the completed one
    # The chain: every signed block's parent is the previous signed block.
    chain = [signed_block_from_json(x) for x in (*signed, *after_one, *resumed)]
    store_chain = [await b.engine.store.get_signed_block(ROLLUP, c.block.slot) for c in chain]
    assert store_chain == chain
    for blk in chain:
        verify_signed_block(blk, cluster.committee)
    slots = sorted(c.block.slot for c in chain)
    all_signed = [await b.engine.store.get_signed_block(ROLLUP, s)
                  for s in range(slots[0], slots[-1] + 1)]
    linked = [s for s in all_signed if s is not None]
    for parent, child in zip(linked, linked[1:], strict=False):
        assert child.block.parent_hash == parent.block.block_hash
    # An independent BLS implementation accepts the signature with the group key alone.
    assert G2ProofOfPossession.Verify(
        BLSPubkey(cluster.committee.group_public_key),
        first_back.signing_root,
        BLSSignature(first_back.signature),
    )


async def test_lying_signers_are_detected_excluded_and_recorded(tmp_path):
    liars = {8: "wrong_share", 9: "garbage", 10: "other_block"}
    # A 3 s signing window: answers arriving after publication are still verified and recorded
    # until then, even when ten processes share two busy cores.
    settings = settings_of(signing_window_ms=3000)
    with Cluster(tmp_path, 10, 7, settings, faults=liars) as cluster:
        b = Bidding(cluster)
        await b.start()
        try:
            signed = await b.wait_for("signed", 3, with_bundles=True, timeout_s=90)
            await asyncio.sleep(0)  # let the background recording run
            for task in list(b.coordinator._background):
                await task
            page = await b.engine.store.list_evidence(ROLLUP, before=None, limit=100)
        finally:
            await b.stop()
    for blk in signed:
        assert not set(liars) & set(blk["signers"])
        verify_signed_block(signed_block_from_json(blk), cluster.committee)
    recorded = {(e.member, e.slot) for _, e in page if e.kind == EVIDENCE_INVALID_PARTIAL}
    # Every liar is caught, with the bytes it answered; no honest member ever is.
    assert {m for m, _ in recorded} == set(liars)
    assert all(len(e.partial) > 0 for _, e in page)
    assert len(recorded) >= len(liars) * (len(signed) - 1)


async def test_rule_breaking_proposals_are_refused_by_every_honest_signer(tmp_path):
    # Gas limit 1M and inclusion after 1 slot make a due public tx easy to set up; a long
    # signing window leaves room for many proposals and a restart of every signer.
    settings = settings_of(gas_limit=1_000_000, inclusion_after_slots=1, signing_window_ms=60_000)
    with Cluster(tmp_path, 4, 3, settings, faults={4: "equivocate"}) as cluster:
        b = Bidding(cluster)
        await b.engine.start(run_clock=False)
        try:
            await _rule_breaking(b, cluster)
        finally:
            await b.stop()


async def _until_closed(engine: Engine, slot: int) -> None:
    await asyncio.sleep(max(0.0, (compute_deadline_ms(engine.clock, slot) - engine.now_ms())
                            / 1000 + 0.01))


async def _rule_breaking(b: Bidding, cluster: Cluster) -> None:
    engine, store = b.engine, b.engine.store
    # Slot A: a bundle fills the block, so a public tx waits (pending) for the next slot.
    slot_a = engine.open_slot() + 1
    await _until_closed(engine, slot_a - 1)
    await b.bid(slot_a, 1, bid_wei=10**17, gas=990_000)
    waiting_key = SearcherKey.from_seed(99)
    waiting = waiting_key.sign_tx(
        type=2, chainId=ROLLUP, nonce=1, maxPriorityFeePerGas=GWEI, maxFeePerGas=100 * GWEI,
        gas=21_000, to="0x" + "43" * 20, value=0, data=b"")
    await engine.intake.submit_public_tx(
        ["0x" + waiting.hex()], endpoint_rollup=None, protected=False
    )
    await _until_closed(engine, slot_a)
    (result_a,) = await engine.close_slot(slot_a)  # the hook signs it
    assert await store.get_signed_block(ROLLUP, slot_a) is not None
    assert [p.tx.raw for p in result_a.pending] == [waiting]
    # Slot B: proposals are sent by hand (the hook is off) so each can be tampered with.
    engine.signer = SignsNothing(b.coordinator)
    slot_b = slot_a + 1
    for i in range(3):
        await b.bid(slot_b, 10 + i, bid_wei=10**15 * (i + 1), gas=100_000)
    await _until_closed(engine, slot_b)
    (result_b,) = await engine.close_slot(slot_b)
    (honest,) = (await b.coordinator.build_proposal([result_b])).parts
    assert honest.block.public_tx_count == 1 and honest.block.txs[-1] == waiting
    assert len(honest.block.bundles) == 3

    async def answers(p: Proposal) -> dict[int, str]:
        c = await b.coordinator.solicit(slot_of(p))
        out = {i: "partial" for i in c.valid} | dict(c.refused)
        out |= {i: "invalid" for i in c.invalid} | {i: "missing" for i in c.missing}
        return out

    every = {1, 2, 3, 4}
    blk = honest.block
    # A bid without valid evidence (forged signature) that wins.
    forged_key = SearcherKey.from_seed(77)
    forged_tx = forged_key.sign_tx(
        type=2, chainId=ROLLUP, nonce=5, maxPriorityFeePerGas=GWEI, maxFeePerGas=100 * GWEI,
        gas=50_000, to="0x" + "44" * 20, value=0, data=b"")
    params = bundle_params([forged_tx], slot_b, bid_wei=10**18)
    body = forged_key.request("eth_sendBundle", [params])
    real = compute_bid(
        params, searcher=forged_key.address, evidence=Evidence(body, forged_key.sign_body(body)),
        rollups=engine.rollups, clock=engine.clock,
        now_ms=compute_deadline_ms(engine.clock, slot_b) - 100,
        max_slots_ahead=engine.max_slots_ahead)
    fake_sig = forged_key.address + ":0x" + "11" * 64 + "1b"
    fake = dataclasses.replace(real, evidence=Evidence(body, fake_sig),
                               bid_id=compute_bid_id(Evidence(body, fake_sig)))
    forged_log = (*honest.log, LoggedEvent(honest.log[-1].seq + "0", fake))
    config = compute_member_config(cluster.settings, cluster.committee, 1)
    forged = dataclasses.replace(honest, log=forged_log)
    forged = dataclasses.replace(forged, block=compute_expected_result(config, forged).block)
    assert fake.bid_id in {w.bid_id for w in forged.block.bundles}
    assert await answers(forged) == dict.fromkeys(every, "invalid_evidence")
    # A non-optimal block: the best bundle left out.
    best = max(blk.bundles, key=lambda w: w.bid_wei)
    rest = tuple(w for w in blk.bundles if w != best)
    position = blk.bundles.index(best)
    worse = rehash(dataclasses.replace(
        blk, bundles=rest, txs=blk.txs[:position] + blk.txs[position + 1:],
        revenue_wei=blk.revenue_wei - best.payment_wei, gas_used=blk.gas_used - best.gas))
    assert await answers(dataclasses.replace(honest, block=worse)) == dict.fromkeys(
        every, "block_mismatch")
    # A reordered block.
    swapped = rehash(dataclasses.replace(
        blk, bundles=(blk.bundles[1], blk.bundles[0], *blk.bundles[2:]),
        txs=(blk.txs[1], blk.txs[0], *blk.txs[2:])))
    assert await answers(dataclasses.replace(honest, block=swapped)) == dict.fromkeys(
        every, "block_mismatch")
    # A forced (due) public transaction missing.
    no_lane = rehash(dataclasses.replace(
        blk, txs=blk.txs[:-1], public_tx_count=0, gas_used=blk.gas_used - 21_000))
    assert await answers(dataclasses.replace(honest, block=no_lane)) == dict.fromkeys(
        every, "forced_tx_missing")
    # The honest block is signed by all.
    signed_answers = await b.coordinator.solicit(slot_of(honest))
    assert set(signed_answers.valid) == every
    # A second, valid, different block for the signed slot: honest members refuse; the one
    # that ignores its protection signs, and is caught equivocating.
    alt_log = honest.log[:-1]
    alt = dataclasses.replace(honest, log=alt_log)
    alt = dataclasses.replace(alt, block=compute_expected_result(config, alt).block)
    assert alt.block.block_hash != blk.block_hash
    assert await answers(alt) == {1: "double_sign", 2: "double_sign", 3: "double_sign",
                                  4: "partial"}
    page = await store.list_evidence(ROLLUP, before=None, limit=10)
    assert [(e.kind, e.member, e.slot) for _, e in page] == [(EVIDENCE_EQUIVOCATION, 4, slot_b)]
    # Every signer killed (SIGKILL) and restarted from its store: still no second block,
    # and the same block gets the same partial.
    for i in every:
        cluster.procs.kill(i)
    cluster.procs.start_all()
    await asyncio.to_thread(cluster.procs.wait_ready, None, 240)
    after = await answers(alt)
    assert {i: after[i] for i in (1, 2, 3)} == dict.fromkeys((1, 2, 3), "double_sign")
    again = await b.coordinator.solicit(slot_of(honest))
    assert again.valid == {i: signed_answers.valid[i] for i in again.valid}
    assert set(again.valid) >= {1, 2, 3}


@contextlib.asynccontextmanager
async def _served_committee(
    tmp_path: Path, *serve_flags: str
) -> AsyncIterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """``committee keygen --n 4``, four ``signer`` processes and ``blockspace serve --committee``
    (plus ``serve_flags``), as commands; yields (serve, its port, the keys folder)."""
    keys = tmp_path / "keys"
    out = subprocess.run([str(BIN), "committee", "keygen", "--n", "4", "--out", str(keys)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    env = {**os.environ, "BLOCKSPACE_SLOT_MS": "1000", "BLOCKSPACE_ROLLUPS": f"[{ROLLUP}]"}
    procs = SignerProcesses(sorted(keys.glob("member-*.share.json")), env=env, log_dir=tmp_path)
    port = free_port()
    with procs, open(tmp_path / "serve.log", "wb") as serve_log:
        procs.start_all()
        procs.wait_ready(timeout_s=240)
        signer_flags = [x for url in procs.urls for x in ("--signer", url)]
        serve = subprocess.Popen(
            [str(BIN), "serve", "--port", str(port), "--slot-ms", "1000", *serve_flags,
             "--committee", str(keys / "committee.json"), *signer_flags],
            env=env, stdout=subprocess.DEVNULL, stderr=serve_log,
        )
        try:
            yield serve, port, keys
        finally:
            serve.terminate()
            serve.wait(timeout=30)


async def test_multi_process_committee_as_in_the_readme(tmp_path: Path) -> None:
    """``committee keygen``, n ``signer`` processes, ``serve --committee``, the blocks API,
    ``blockspace verify``: the documented multi-process run, as commands."""
    async with _served_committee(tmp_path) as (serve, port, keys):
        # what keygen wrote (the signers keep their slashing records beside their shares)
        assert sorted(p.name for p in keys.glob("*.json")) == [
            "committee.json", *(f"member-{i}.share.json" for i in range(1, 5))]
        assert oct((keys / "member-1.share.json").stat().st_mode & 0o777) == "0o600"
        await _check_served_block(serve, port, keys)


async def _check_served_block(serve: subprocess.Popen[bytes], port: int, keys: Path) -> None:
    """A signed block with a winner, from the API, verified by ``blockspace verify``."""
    tmp_path = keys.parent
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        block = await _send_until_signed(http, serve)
    path = tmp_path / "block.json"
    path.write_bytes(orjson.dumps(block))
    ok = subprocess.run([str(BIN), "verify", str(path), "--committee",
                         str(keys / "committee.json")], capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0 and ok.stdout.startswith("OK:"), ok.stderr
    block["txs"] = block["txs"][::-1] if len(block["txs"]) > 1 else ["0x00"]
    path.write_bytes(orjson.dumps(block))
    bad = subprocess.run([str(BIN), "verify", str(path), "--committee",
                          str(keys / "committee.json")], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1 and "INVALID" in bad.stderr


async def _send_until_signed(http: httpx.AsyncClient, serve: subprocess.Popen[bytes]
                             ) -> dict[str, Any]:
    """Send a bundle into each open slot until a signed block with a winner is served."""
    k = SearcherKey.from_seed(5)
    deadline = time.monotonic() + 120
    nonce = 0
    while time.monotonic() < deadline:
        assert serve.poll() is None, "serve exited"
        try:
            head = (await http.post("/", content=b'{"jsonrpc":"2.0","id":1,'
                                                   b'"method":"eth_blockNumber"}')).json()
        except httpx.HTTPError:
            await asyncio.sleep(0.2)
            continue
        slot = int(head["result"], 16) + 1
        nonce += 1
        raw = k.sign_tx(type=2, chainId=ROLLUP, nonce=nonce, maxPriorityFeePerGas=2 * GWEI,
                        maxFeePerGas=100 * GWEI, gas=50_000, to="0x" + "42" * 20, value=0,
                        data=b"")
        body = k.request("eth_sendBundle", [bundle_params([raw], slot, bid_wei=10**15)])
        await http.post("/", content=body, headers={"X-Flashbots-Signature": k.sign_body(body)})
        await asyncio.sleep(1.0)
        r = await http.get(f"/v1/blocks/{ROLLUP}/latest")
        if r.status_code == 200 and r.json()["bundles"]:
            return r.json()  # type: ignore[no-any-return]
    raise AssertionError("no signed block with a winner within 120 s")


def test_demo_runs_with_signer_processes() -> None:
    out = subprocess.run(
        [str(BIN), "demo", "--slots", "3", "--slot-ms", "1000", "--searchers", "4",
         "--signer-processes"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "committee 3 of 4 (signer processes)" in out.stdout
    slot_lines = [line for line in out.stdout.splitlines() if line.startswith("slot ")]
    assert len(slot_lines) >= 3 and all("signed by" in line for line in slot_lines), out.stdout
    assert "signed 3/3" in out.stdout


@pytest.mark.redis
async def test_serve_with_two_engine_workers_signs_one_chain(tmp_path: Path, fresh_redis) -> None:
    """``serve --workers 2`` on Redis with the committee: whichever worker closes a slot signs
    it, the other adopts the signed head, and block subscribers on either worker see every
    block. The chain of signed blocks has no fork."""
    flags = ("--workers", "2", "--store", fresh_redis.url)
    async with _served_committee(tmp_path, *flags) as (serve, port, _keys):
        await _check_one_chain(serve, port)


@pytest.mark.redis
@pytest.mark.slow
async def test_serve_on_a_redis_cluster_signs_one_chain(tmp_path: Path, fresh_cluster) -> None:
    """The same, with the store on a real Redis Cluster (3 masters, 3 replicas): the engine
    runs unchanged, bids acknowledged after a replica confirmed them (docs/redis.md)."""
    flags = ("--workers", "2", "--store", fresh_cluster.url)
    async with _served_committee(tmp_path, *flags) as (serve, port, _keys):
        await _check_one_chain(serve, port)


async def _check_one_chain(serve: subprocess.Popen[bytes], port: int) -> None:
    import websockets

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:  # both workers up: the port answers
        assert serve.poll() is None, "serve exited"
        assert time.monotonic() < deadline, "serve did not start"
        try:
            async with httpx.AsyncClient() as http:
                if (await http.get(url + "/healthz")).status_code == 200:
                    break
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.3)
    # Several subscriber connections: the kernel spreads them over the two workers.
    sockets = [await websockets.connect(f"ws://127.0.0.1:{port}/ws") for _ in range(6)]
    try:
        for ws in sockets:
            await ws.send('{"jsonrpc":"2.0","id":1,"method":"bs_subscribe","params":["blocks"]}')
            assert orjson.loads(await ws.recv())["result"] == "blocks"
        seen: list[list[dict[str, Any]]] = [[] for _ in sockets]

        async def listen(i: int) -> None:
            async for frame in sockets[i]:
                seen[i].append(orjson.loads(frame)["params"]["result"])

        listeners = [asyncio.create_task(listen(i)) for i in range(len(sockets))]
        async with httpx.AsyncClient(base_url=url) as http:
            head = (await http.post("/", content=b'{"jsonrpc":"2.0","id":1,'
                                    b'"method":"eth_blockNumber"}')).json()  # fmt: skip
        first = int(head["result"], 16) + 2  # published after every subscription
        k = SearcherKey.from_seed(9)
        signed: dict[int, dict[str, Any]] = {}
        nonce = 0
        while len(signed) < 6:
            assert serve.poll() is None, "serve exited"
            assert time.monotonic() < deadline, f"only {len(signed)} signed blocks in time"
            # A fresh connection per request, so both workers take bundles.
            async with httpx.AsyncClient(base_url=url) as http:
                head = (await http.post("/", content=b'{"jsonrpc":"2.0","id":1,'
                                        b'"method":"eth_blockNumber"}')).json()  # fmt: skip
                slot = int(head["result"], 16) + 1
                nonce += 1
                raw = k.sign_tx(type=2, chainId=ROLLUP, nonce=nonce, maxPriorityFeePerGas=2 * GWEI,
                                maxFeePerGas=100 * GWEI, gas=50_000, to="0x" + "42" * 20,
                                value=0, data=b"")  # fmt: skip
                body = k.request("eth_sendBundle", [bundle_params([raw], slot, bid_wei=10**15)])
                await http.post("/", content=body,
                                headers={"X-Flashbots-Signature": k.sign_body(body)})  # fmt: skip
            await asyncio.sleep(1.0)
            async with httpx.AsyncClient(base_url=url) as http:
                for s in range(max(first, slot - 3), slot):
                    r = await http.get(f"/v1/blocks/{ROLLUP}/{s}")
                    if r.status_code == 200:
                        signed[s] = r.json()
        await asyncio.sleep(1.5)  # the last notifications
        for t in listeners:
            t.cancel()
    finally:
        for ws in sockets:
            await ws.close()
    # One chain: each signed block's parent is the newest signed block before it.
    slots = sorted(signed)
    for a, b in zip(slots, slots[1:], strict=False):
        if b == a + 1:
            assert signed[b]["parent_hash"] == signed[a]["block_hash"], (a, b)
    # Every subscriber, whichever worker it is on, saw every signed block of the run.
    hashes = {signed[s]["block_hash"] for s in slots}
    for got in seen:
        assert hashes <= {m["block_hash"] for m in got if m.get("status") == "signed"}
