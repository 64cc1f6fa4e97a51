"""Nothing readable early (issue 14): while a slot with encrypted bids is open, and after an
earlier one closed without its key, nothing the engine stores, logs, counts, notifies or
serves contains a plaintext bundle or bid. Runs on both stores (embedded and a real
redis-server this run started); a control run shows the scan finds the same markers the moment
a plaintext bundle carries them."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.engine import Engine
from api.searcher import SearcherKey, bundle_params
from auction.hashing import keccak256, to_hex
from auction.presets import MAINNET, Rollup
from auction.transactions import compute_bundle_hash
from node.metrics import Metrics
from node.notify import Subscriber
from node.settings import Settings
from node.stores.base import Store
from node.stores.redis import RedisStore
from tests.factories import CHAIN, key
from tests.sealed import committee_of, encryptor, sealed_call

pytestmark = pytest.mark.anyio

SLOT_MS = 2000
SLOT = 1_000
GWEI = 10**9


@dataclasses.dataclass
class Secret:
    """One bundle's plaintext and the markers that would betray it."""

    body: bytes
    markers: dict[str, str]  # name -> lower-case text that must appear nowhere
    raw: dict[str, bytes]  # name -> bytes that must appear nowhere


def secret_bundle(k: SearcherKey, slot: int, n: int) -> Secret:
    """An eth_sendBundle request with a unique call-data marker and a unique bid amount."""
    marker = keccak256(b"blockspace-leak-marker" + bytes([slot % 256, n]))[:24]
    bid_wei = 987_654_321_000_000_000 + slot * 1_000 + n
    raw_tx = k.sign_tx(chainId=CHAIN, nonce=10_000 + n, gas=60_000, to="0x" + "22" * 20,
                       value=0, data=marker, type=2, maxPriorityFeePerGas=2 * GWEI,
                       maxFeePerGas=100 * GWEI)
    body = k.request("eth_sendBundle", [bundle_params([raw_tx], slot, bid_wei=bid_wei)])
    tx_hash = keccak256(raw_tx)
    markers = {
        "call data": marker.hex(),
        "raw tx": raw_tx.hex(),
        "tx hash": tx_hash.hex(),
        "bundle hash": compute_bundle_hash([to_hex(tx_hash)])[2:],
        "bid (decimal)": str(bid_wei),
        "bid (hex)": hex(bid_wei)[2:],
    }
    return Secret(body, markers, {"call data": marker, "raw tx": raw_tx})


def _leaves(value: Any, seen: set[int]) -> Iterator[str | bytes]:
    """Every str and bytes reachable from ``value`` (the memory store's whole state)."""
    if isinstance(value, (str, bytes)):
        yield value
        return
    if isinstance(value, (bytearray, memoryview)):
        yield bytes(value)
        return
    if id(value) in seen or isinstance(value, (int, float, bool, type(None))):
        return
    seen.add(id(value))
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(k, seen)
            yield from _leaves(v, seen)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from _leaves(v, seen)
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from _leaves(getattr(value, f.name), seen)
    elif hasattr(value, "__dict__"):
        yield from _leaves(vars(value), seen)
    elif hasattr(value, "__slots__"):
        for name in value.__slots__:
            yield from _leaves(getattr(value, name, None), seen)
    elif hasattr(value, "items"):  # sorted containers
        yield from _leaves(dict(value.items()), seen)


async def store_contents(store: Store) -> list[str | bytes]:
    """Every key and value the store holds: Redis's whole database, or the memory store's
    every reachable string and byte string."""
    if not isinstance(store, RedisStore):
        return list(_leaves(vars(store), set()))
    r = store.redis
    out: list[str | bytes] = []
    async for k in r.scan_iter(count=1000):
        out.append(k)
        kind = (await r.type(k)).decode()
        if kind == "string":
            out.append(await r.get(k))
        elif kind == "hash":
            for f, v in (await r.hgetall(k)).items():
                out += [f, v]
        elif kind == "stream":
            for seq, fields in await r.xrange(k):
                out.append(seq)
                for f, v in fields.items():
                    out += [f, v]
        elif kind == "zset":
            out += await r.zrange(k, 0, -1)
        elif kind == "set":
            out += list(await r.smembers(k))
        elif kind == "list":
            out += await r.lrange(k, 0, -1)
        else:
            raise AssertionError(f"unscanned Redis type {kind} at {k!r}")
    return out


def leaks(secrets: Iterable[Secret], where: str, items: Iterable[str | bytes]) -> list[str]:
    """Which markers appear in ``items`` (texts lower-cased; bytes raw and as hex text)."""
    found = []
    texts = [i.lower() if isinstance(i, str) else i for i in items]
    for secret in secrets:
        for name, text in secret.markers.items():
            needle = text.encode()
            if any((needle in t) if isinstance(t, bytes) else (text in t) for t in texts):
                found.append(f"{name} in {where}")
        for name, raw in secret.raw.items():
            if any(isinstance(t, bytes) and raw in t for t in texts):
                found.append(f"raw {name} in {where}")
    return found


@pytest.fixture
async def http(store: Store) -> AsyncIterator[tuple[httpx.AsyncClient, Engine, list[int]]]:
    clock = [SLOT * SLOT_MS + 5]
    engine = Engine(store=store, rollups={CHAIN: Rollup(CHAIN), 10: Rollup(10)}, preset=MAINNET,
                    slot_ms=SLOT_MS, clock_ms=lambda: clock[0], metrics=Metrics())
    app = create_app(Settings(), engine=engine, committee=committee_of(0)[0])
    async with app.router.lifespan_context(app):
        await engine.start(run_clock=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, engine, clock


async def served(client: httpx.AsyncClient, searchers: Iterable[SearcherKey]) -> list[str]:
    """Every data API, block and metrics answer a client could ask for now."""
    paths = ["/v1/data/slots", "/v1/data/stats", "/v1/data/rollups", "/metrics",
             f"/v1/blocks/{CHAIN}/latest", "/v1/committee"]
    for slot in (SLOT, SLOT + 1):
        paths += [f"/v1/data/slots/{CHAIN}/{slot}", f"/v1/data/bids?slot={slot}",
                  f"/v1/blocks/{CHAIN}/{slot}", f"/v1/blocks/{CHAIN}/{slot}/events",
                  f"/v1/data/export/bids.csv?from_slot={SLOT}&to_slot={slot}"]
    for k in searchers:
        paths += [f"/v1/data/searchers/{k.address}", f"/v1/data/bids?searcher={k.address}"]
    return [(await client.get(p)).text for p in paths]


async def test_nothing_readable_before_the_key_exists(http, store, caplog) -> None:
    client, engine, clock = http
    caplog.set_level(logging.DEBUG)
    searchers = [key(41), key(42)]
    outbox = Subscriber()
    for k in searchers:
        engine.notifier.watch_searcher(k.address, outbox)
        engine.notifier.watch_slots(outbox)
        engine.notifier.watch_blocks(outbox)
    answers: list[str] = []
    secrets: list[Secret] = []
    # Encrypted bids for the open slot and the next one, two per searcher, and refused ones
    for slot in (SLOT, SLOT + 1):
        for k in searchers:
            enc = encryptor(k, slot)
            for n in range(2):
                secret = secret_bundle(k, slot, n + 10 * searchers.index(k))
                secrets.append(secret)
                body, sig = sealed_call(k, enc.encrypt(secret.body))
                reply = await client.post("/", content=body,
                                          headers={"X-Flashbots-Signature": sig})
                assert "result" in reply.json(), reply.json()
                answers.append(reply.text)
            # A second encapsulation is refused, with its plaintext never seen either
            other = secret_bundle(k, slot, 99)
            secrets.append(other)
            body, sig = sealed_call(k, encryptor(k, slot).encrypt(other.body))
            reply = await client.post("/", content=body, headers={"X-Flashbots-Signature": sig})
            assert reply.json()["error"]["data"]["code"] == "encapsulation_limit"
            answers.append(reply.text)
    # The first slot closes (its key was never released: it fails, key_not_released, and its
    # bids stay sealed for ever; decision 118); the next is open
    clock[0] = (SLOT + 1) * SLOT_MS + 5
    assert await engine.close_or_fail(SLOT)
    failed = await engine.store.get_failed_slot(CHAIN, SLOT)
    assert failed is not None and failed.reason == "key_not_released"
    notifications = []
    while not outbox.queue.empty():
        notifications.append(repr(outbox.queue.get_nowait()))
    assert notifications  # the received and slot notifications were sent, and scanned
    logs = [r.getMessage() for r in caplog.records]
    sources = {
        "store": await store_contents(store),
        "replies": answers,
        "logs": logs,
        "notifications": notifications,
        "served": await served(client, searchers),
    }
    assert len(await engine.store.read_sealed_log(CHAIN, SLOT + 1)) == 4
    found = [hit for where, items in sources.items() for hit in leaks(secrets, where, items)]
    assert found == []

    # Control: the scan finds the markers as soon as a plaintext bundle carries them
    control = secret_bundle(key(43), SLOT + 1, 7)
    sig = key(43).sign_body(control.body)
    reply = await client.post("/", content=control.body, headers={"X-Flashbots-Signature": sig})
    assert "result" in reply.json()
    store_hits = leaks([control], "store", await store_contents(store))
    expected = {"call data", "raw tx", "bid (decimal)"}
    if not isinstance(store, RedisStore):  # the memory store keeps decoded txs' raw bytes too
        expected |= {"raw call data", "raw raw tx"}
    assert {h.split(" in ")[0] for h in store_hits} >= expected
    assert leaks([control], "replies", [reply.text]) == ["bundle hash in replies"]
