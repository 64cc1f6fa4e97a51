"""Sealed slots survive their closer being SIGKILLed (issue 14, decision 141), with real
processes: the harness of test_close_failover_processes.py (three ``blockspace serve`` engines
on one store, a 3-of-4 committee of ``blockspace signer`` processes), with searchers sending
encrypted bundles (``bs_sendEncryptedBundle``, encrypted to the key the engines publish at
``GET /v1/committee``) and plaintext ones into every slot over HTTP JSON-RPC.

The first closer of each slot pauses at three points (``BLOCKSPACE_TEST_CLOSE_PAUSE_AT``, test
only; api/engine.py), and the test SIGKILLs it, in turn, at each:

- ``logs``: the logs closed, nothing asked of the members yet: the taker-over has the members
  commit and release the key;
- ``opened``: the key released, the opening record kept, the bids opened, no result stored:
  the taker-over asks again, and each member answers the repeated release for the set it
  committed to;
- ``stored``: the results stored (with the opened bids), the slot not proposed: nobody holds
  the opening in memory; whoever builds the proposal (a follower pinning the pending slot and
  completing it, or the killed process after its restart) rebuilds it from the opening record.

Then it checks, from the store and the members' protection files: every slot has exactly one
outcome; the signed blocks form one chain and verify; no member gave partials for two roots of
a slot, nor committed to two ciphertext roots of one (each member's commitment is the root the
slot's opening record and signed proposal carry; no member refused a release as committed to
another root or as a mismatched set); every acknowledged sealed bid is in its slot's sealed
log; encrypted bids win in slots signed after kills at ``opened`` and ``stored``, and in the
slot after each ``stored`` kill (decision 154); a slot that failed with ``key_not_released``
(two members stopped, its closer killed too) has no result (no opened plaintext), no opening
record, and no commitment from the members resumed after its window.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from api.searcher import (
    BundleEncryptor,
    SearcherKey,
    bundle_params,
    committee_from_document,
    encrypted_bundle_params,
)
from auction.slots import SlotClock, compute_deadline_ms
from committee.records import FAILED_KEY_NOT_RELEASED
from committee.threshold import CommitteeInfo
from node.stores.redis import RedisStore
from tests.committee.test_close_failover_processes import (  # noqa: F401  (fixtures)
    GWEI,
    ROLLUP,
    SLOT_MS,
    World,
    anyio_backend,
    check_store,
    now_ms,
    open_slot,
    store_url,
    warm_packer,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.anyio]

CLOCK = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
POINTS = ("logs", "opened", "stored")
# Kills at each point (the three are taken in turn).
KILLS_EACH = int(os.environ.get("BLOCKSPACE_SEALED_FAILOVER_KILLS", "3"))
# Three pauses of the first closer per slot: short enough that an unkilled close still signs
# within the slot's signing window, long enough to see the log line and kill.
PAUSE_MS = 300
# Two slots (as test_sealed_processes.py): a follower that waited out the signing window of a
# slot whose closer died before proposing it started the next slot's close 3 s after its
# deadline, too late for its key release (decision 154); this window makes that fail for sure.
WINDOW_MS = 2 * SLOT_MS
SEALED_PER_SLOT = 2  # encrypted bundles per sealed searcher per slot
SEALED_BID_WEI = 10**16  # above every plaintext bid: the opened bids win
STOPPED_MEMBERS = (3, 4)  # SIGSTOPped for a slot: only 2 of the 3 needed for its key
REFUSED_COMMIT = ("already_committed_other_root", "commitment_mismatch")


class SealedSearchers:
    """Searchers sending encrypted bundles into every slot: each slot's calls are encrypted and
    signed a slot ahead (off the timing-sensitive part), then sent while the slot is open."""

    def __init__(self, world: World, committee: CommitteeInfo, seeds: tuple[int, ...]) -> None:
        self.world, self.committee = world, committee
        self.keys = [SearcherKey.from_seed(s) for s in seeds]
        self.nonce = 0
        self.acked: set[tuple[int, str]] = set()  # (slot, bid id)

    def prepare(self, slot: int) -> list[tuple[bytes, str]]:
        """Every searcher's signed ``bs_sendEncryptedBundle`` calls for ``slot``."""
        calls = []
        for k in self.keys:
            enc = BundleEncryptor(self.committee, slot, searcher=k.address)
            for _ in range(SEALED_PER_SLOT):
                self.nonce += 1
                raw = k.sign_tx(type=2, chainId=ROLLUP, nonce=self.nonce,
                                maxPriorityFeePerGas=2 * GWEI, maxFeePerGas=100 * GWEI,
                                gas=60_000, to="0x" + "43" * 20, value=0, data=b"")
                body = k.request("eth_sendBundle", [
                    bundle_params([raw], slot, bid_wei=SEALED_BID_WEI + self.nonce)])
                call = k.request("bs_sendEncryptedBundle",
                                 [encrypted_bundle_params(enc.encrypt(body))])
                calls.append((call, k.sign_body(call)))
        return calls

    async def run(self) -> None:
        engines = self.world.engines
        assert engines is not None
        async with httpx.AsyncClient(timeout=5) as http:
            slot = open_slot() + 1
            calls = await asyncio.to_thread(self.prepare, slot)
            while not self.world.stop.is_set():
                # Into the slot a little after it opens, well before its deadline.
                start_ms = compute_deadline_ms(CLOCK, slot - 1) + SLOT_MS // 5
                await asyncio.sleep(max(0, start_ms - now_ms()) / 1000)
                if open_slot() == slot:
                    for n, (call, signature) in enumerate(calls):
                        live = engines.live()
                        if not live:
                            break
                        url = engines.url(live[n % len(live)])
                        try:
                            r = await http.post(url + "/", content=call,
                                                headers={"X-Flashbots-Signature": signature})
                            reply = r.json()
                            if "result" in reply:
                                self.acked.add((slot, reply["result"]["bidId"]))
                        except (httpx.HTTPError, ValueError):
                            pass  # that engine was just killed: the bid is not acknowledged
                slot = max(slot, open_slot()) + 1
                calls = await asyncio.to_thread(self.prepare, slot)


def read_commitments(keys: Path) -> dict[int, dict[int, bytes]]:
    """Each member's committed ciphertext root by slot, from its protection file."""
    out: dict[int, dict[int, bytes]] = {}
    for path in sorted(keys.glob("member-*.protection.sqlite3")):
        member = int(path.name.split("-")[1].split(".")[0])
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT slot, ciphertext_root FROM ciphertext_commitments")
            out[member] = {int(slot): bytes(root) for slot, root in rows}
    return out


async def check_sealed(
    store: RedisStore, sealed: SealedSearchers, commitments: dict[int, dict[int, bytes]],
    first: int, last: int,
) -> dict[int, set[str]]:
    """The sealed invariants over slots [first, last]; each signed slot's winning opened bids."""
    acked: dict[int, set[str]] = {}
    for slot, bid_id in sealed.acked:
        acked.setdefault(slot, set()).add(bid_id)
    won: dict[int, set[str]] = {}
    for slot in range(first, last + 1):
        logged = {e.event.bid_id for e in await store.read_sealed_log(ROLLUP, slot)}
        # Every acknowledged sealed bid is in its slot's sealed log.
        assert acked.get(slot, set()) <= logged, f"slot {slot} lost sealed bids"
        record = await store.get_slot_opening(slot)
        signed = await store.get_signed_block(ROLLUP, slot)
        failed = await store.get_failed_slot(ROLLUP, slot)
        roots = {m: c[slot] for m, c in commitments.items() if slot in c}
        if failed is not None and failed.reason == FAILED_KEY_NOT_RELEASED:
            # No key, no opened plaintext: nothing of the slot's bids was ever stored.
            assert await store.get_result(ROLLUP, slot) is None, f"slot {slot}"
            assert record is None, f"slot {slot} failed unopened but has a key"
        if signed is not None and logged:
            # A signed sealed slot was opened: its record is kept and every member that
            # committed committed to its root (one ciphertext root per slot).
            assert record is not None, f"slot {slot} signed without an opening record"
            assert set(roots.values()) <= {record.ciphertext_root}, (slot, roots, record)
            assert len(roots) >= 3, f"slot {slot}: {len(roots)} commitments"
            won[slot] = {w.bid_id for w in signed.block.bundles} & logged
        # Whatever its outcome, no two members committed to different roots of a slot.
        assert len(set(roots.values())) <= 1, f"slot {slot}: {roots}"
    return won


async def signer_counts(urls: list[str]) -> tuple[dict[str, float], float]:
    """Every member's refusals by code, summed, and how many repeated key releases (a
    release for a set the member had already committed to) they answered."""
    refusals: dict[str, float] = {}
    repeated = 0.0
    async with httpx.AsyncClient(timeout=5) as http:
        for url in urls:
            text = (await http.get(url + "/metrics")).text
            for code, n in re.findall(
                r'blockspace_signer_refusals_total\{code="(\w+)"\} ([\d.e+]+)', text
            ):
                refusals[code] = refusals.get(code, 0.0) + float(n)
            for n in re.findall(
                r'blockspace_signer_key_shares_total\{repeated="true"\} ([\d.e+]+)', text
            ):
                repeated += float(n)
    return refusals, repeated


async def test_sealed_slots_survive_their_closer_killed_before_and_after_opening(
    tmp_path: Path, store_url: str  # noqa: F811
) -> None:
    world = World(tmp_path, store_url,
                  engine_env={"BLOCKSPACE_TEST_CLOSE_PAUSE_MS": str(PAUSE_MS),
                              "BLOCKSPACE_TEST_CLOSE_PAUSE_AT": ",".join(POINTS)},
                  env={"BLOCKSPACE_SIGNING_WINDOW_MS": str(WINDOW_MS)})
    store = RedisStore(store_url)
    await store.connect()
    tasks: list[asyncio.Task[None]] = []
    killed: dict[str, list[int]] = {p: [] for p in POINTS}
    published_ms: dict[int, int] = {}  # killed slot -> its outcome, ms after its deadline
    repeated: dict[int, float] = {}  # killed slot -> repeated key releases the members answered
    started = time.monotonic()
    try:
        engines = await world.start()
        async with httpx.AsyncClient(timeout=5) as http:
            document = (await http.get(engines.url(0) + "/v1/committee")).content
        committee = committee_from_document(document)
        assert committee.committee_id == world.committee.committee_id
        sealed = SealedSearchers(world, committee, (301, 302))
        first = open_slot() + 2  # the first slot the sealed searchers bid into
        tasks = [asyncio.create_task(world.bid_forever(100 + s)) for s in range(2)]
        tasks.append(asyncio.create_task(sealed.run()))
        after = first
        for point in POINTS * KILLS_EACH:
            while True:
                i, slot = await engines.next_pause(after, point=point)
                engines.signal(i, signal.SIGKILL)
                engines.start(i)  # it rejoins once started; the others carry on meanwhile
                after = slot
                if await kill_counts(store, point, slot):
                    break
                await engines.wait_ready([i])  # the kill missed its moment: again, later
            killed[point].append(slot)
            # Repeated releases from now until the killed process is back (the takeover's, at
            # "opened"; at "stored" there must be none: the opening comes from its record)
            _, repeated_before = await signer_counts(world.signers.urls)
            outcome_ms = await world.closed_time(store, slot, 8 * SLOT_MS / 1000, signed=True)
            published_ms[slot] = outcome_ms - compute_deadline_ms(CLOCK, slot)
            await engines.wait_ready([i])  # a follower for the next kill
            repeated[slot] = (await signer_counts(world.signers.urls))[1] - repeated_before
        unreleased = await kill_without_the_key(world, store, after)
        world.stop.set()
        await asyncio.gather(*tasks)
        last = open_slot() - 2
        await world.closed_time(store, last, 8 * SLOT_MS / 1000, signed=True)
        counts = await check_store(store, world, first, last)
        refusals, _ = await signer_counts(world.signers.urls)
        world.close()  # the members stopped: their protection files are read below
        commitments = read_commitments(world.keys)
        won = await check_sealed(store, sealed, commitments, first, last)
        failed_slots = {}
        for s in range(first, last + 1):
            failed = await store.get_failed_slot(ROLLUP, s)
            if failed is not None:
                failed_slots[s] = failed.reason
        logs = b"".join(engines.log(i).read_bytes() for i in range(world.n_engines))
    finally:
        world.stop.set()
        for task in tasks:
            task.cancel()
        world.close()
        await store.aclose()
    elapsed = time.monotonic() - started
    assert not {c: n for c, n in refusals.items() if c in REFUSED_COMMIT}, refusals
    # Each kill before the results were stored was taken over (a new fencing token).
    takeovers = {int(m) for m in re.findall(rb"slot (\d+): close taken over", logs)}
    assert set(killed["logs"] + killed["opened"]) <= takeovers, (killed, takeovers)
    # The slot whose key was not released failed so, and stays sealed: the stopped members,
    # resumed past its signing window, never committed to it (nor released its key).
    assert failed_slots.get(unreleased) == FAILED_KEY_NOT_RELEASED, (unreleased, failed_slots)
    assert all(unreleased not in commitments[m] for m in STOPPED_MEMBERS), commitments
    # A taker-over after the key release asked the members again, and t of them (or more)
    # answered for the set they had committed to; a slot killed with its results stored was
    # proposed with the opening rebuilt from its record, never collected again.
    t = world.committee.t
    assert all(repeated[s] >= t for s in killed["opened"]), repeated
    assert all(repeated[s] == 0 for s in killed["stored"]), repeated
    # Encrypted bids won in signed blocks after kills once the key was released: in at least
    # one slot killed after opening, and in at least one killed with its results stored.
    for point in ("opened", "stored"):
        assert any(won.get(s) for s in killed[point]), (point, killed[point], won)
    # The slot after each kill with the results stored is opened and signed too: followers
    # took the unproposed slot as pending at that slot's deadline, not at the end of its window.
    assert all(won.get(s + 1) for s in killed["stored"]), (killed["stored"], won, failed_slots)
    assert sum(1 for s in won if won[s]) >= (last - first + 1) // 2, (won, failed_slots)
    print(f"\nsealed failover ({elapsed:.0f} s): killed the closer of slots {killed}; outcomes "
          f"published {published_ms} ms after the deadline; {counts}; slots with opened "
          f"winners {sum(1 for s in won if won[s])} of {last - first + 1}; failed "
          f"{failed_slots}; sealed bids acknowledged {len(sealed.acked)}; repeated releases "
          f"{repeated}; refusals {refusals}")


async def kill_without_the_key(world: World, store: RedisStore, after: int) -> int:
    """Stop two of the four members (t = 3: no key can be released), SIGKILL the closer of the
    next slot before its opening, and resume them once the slot failed; the slot, after the
    chain signed a later one."""
    engines = world.engines
    assert engines is not None
    # The slot after the last kill is left alone: after a kill with the results stored, it
    # must be opened and signed (decision 154), so the members are stopped only once it is.
    await world.closed_time(store, after + 1, 8 * SLOT_MS / 1000, signed=True)
    after += 1
    for m in STOPPED_MEMBERS:
        world.signers.procs[m].send_signal(signal.SIGSTOP)
    try:
        i, slot = await engines.next_pause(after, point="logs")
        engines.signal(i, signal.SIGKILL)
        engines.start(i)
        await world.closed_time(store, slot, 8 * SLOT_MS / 1000, signed=True)
    finally:
        for m in STOPPED_MEMBERS:
            world.signers.procs[m].send_signal(signal.SIGCONT)
    await engines.wait_ready([i])
    deadline = time.monotonic() + 12 * SLOT_MS / 1000
    while True:  # the chain goes on once the members are back
        head = await store.latest_signed_block(ROLLUP)
        if head is not None and head.block.slot > slot:
            return slot
        # (Once, all four members became unreachable here on a machine shared with another
        # suite: their exit codes tell a member that died from a chain that stalled.)
        exits = {m: p.poll() for m, p in world.signers.procs.items()}
        assert time.monotonic() < deadline, f"nothing signed after slot {slot}; members {exits}"
        await asyncio.sleep(0.05)


async def kill_counts(store: RedisStore, point: str, slot: int) -> bool:
    """Whether a kill at ``point`` came while the close was still there (not after the pause)."""
    stored = await store.get_result(ROLLUP, slot) is not None
    if point == "logs":
        return not stored
    if point == "opened":  # the key released and its record kept, no result yet
        return not stored and await store.get_slot_opening(slot) is not None
    # the results stored with their opened bids and the record kept, the slot not proposed
    proposed = await store.list_proposed(ROLLUP, slot, 1)
    return (stored and await store.get_slot_opening(slot) is not None
            and not any(s == slot for s, _ in proposed))
