"""Pre-signed load: many searchers' ``eth_sendBundle`` requests for the slots open right now.

Every bundle holds one or two real signed EIP-1559 transactions (distinct nonces per sender) and
every request body carries a real X-Flashbots-Signature, so the server does all its intake work:
signature recovery, RLP decode, sender recovery per transaction, the Redis append.

Two stages, because a request names its target slot and slots move with the clock:

1. ``load_bundles``: the transactions, which are slow to sign (~1 ms each through eth-account),
   are RLP-encoded here and signed with coincurve directly (every build checks a sample byte for
   byte against eth-account and through the engine's own decoder), in worker processes, and
   cached under ``/tmp`` keyed by every parameter that shapes them.
2. ``sign_requests``: just before a run, each bundle becomes a JSON-RPC body for a slot counted
   from the slot open at that moment, signed by its searcher (~40 us a request, in processes).
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import os
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import orjson
from coincurve import PrivateKey

from api.searcher import SearcherKey
from auction.auth import compute_signed_message_hash
from auction.hashing import keccak256
from auction.presets import DEFAULT_CHAIN_ID

CORPUS_VERSION = 2
CACHE_DIR = Path(os.environ.get("BLOCKSPACE_LOADTEST_CACHE", "/tmp/blockspace-loadtest"))

GWEI = 10**9
_TO = bytes.fromhex("bb" * 20)
MAX_BUNDLES_PER_SEARCHER_PER_SLOT = 512  # Policy.max_bundles_per_searcher_per_slot (mainnet)


@dataclass(frozen=True)
class CorpusSpec:
    """Everything that shapes a corpus; its hash names the cache file."""

    bids: int
    searchers: int = 256
    chain_id: int = DEFAULT_CHAIN_ID
    slot_span: int = 16  # bids spread over this many consecutive target slots
    seed: int = 1
    # Share of bundles that back-run a public "victim" transaction from a small shared pool
    # (victim first, then the searcher's own): real MEV traffic repeats transactions this way.
    victim_share: float = 0.0
    victims: int = 64

    def cache_path(self) -> Path:
        key = orjson.dumps({"v": CORPUS_VERSION, **asdict(self)}, option=orjson.OPT_SORT_KEYS)
        return CACHE_DIR / f"bundles-{hashlib.sha256(key).hexdigest()[:16]}.pkl"

    def searcher_key(self, index: int) -> SearcherKey:
        return SearcherKey.from_seed(self.seed * 1_000_000 + index)


class Bundle(NamedTuple):
    """One searcher's bundle, its transactions signed; ``slot_offset`` spreads the targets."""

    rid: int  # the JSON-RPC id of the request that will carry it
    searcher: int
    txs: tuple[str, ...]  # raw signed transactions, 0x-hex
    bid_wei: int
    slot_offset: int


class SignedBid(NamedTuple):
    """One signed request: JSON-RPC id, the searcher who signs it, body and signature."""

    rid: int
    searcher: int
    body: bytes
    signature: str


def compute_eip1559_tx(
    key: bytes,
    *,
    chain_id: int,
    nonce: int,
    priority_fee_wei: int,
    max_fee_wei: int,
    gas: int,
    to: bytes = _TO,
    value: int = 0,
    data: bytes = b"",
) -> bytes:
    """A raw signed type-2 transaction (empty access list), as eth-account would make it."""
    head = (
        b"".join(
            _rlp_bytes(x)
            for x in (
                _rlp_uint(chain_id),
                _rlp_uint(nonce),
                _rlp_uint(priority_fee_wei),
                _rlp_uint(max_fee_wei),
                _rlp_uint(gas),
                to,
                _rlp_uint(value),
                data,
            )
        )
        + b"\xc0"
    )  # the empty access list
    digest = keccak256(b"\x02" + _rlp_list(head))
    sig = _private_key(key).sign_recoverable(digest, hasher=None)
    # coincurve signs low-s (EIP-2); r and s are minimal big-endian integers in RLP
    tail = b"".join(
        _rlp_bytes(x)
        for x in (_rlp_uint(sig[64]), sig[:32].lstrip(b"\0"), sig[32:64].lstrip(b"\0"))
    )
    return b"\x02" + _rlp_list(head + tail)


def _rlp_uint(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def _rlp_bytes(b: bytes) -> bytes:
    if len(b) == 1 and b[0] < 0x80:
        return b
    if len(b) <= 55:
        return bytes([0x80 + len(b)]) + b
    n = _rlp_uint(len(b))
    return bytes([0xB7 + len(n)]) + n + b


def _rlp_list(payload: bytes) -> bytes:
    if len(payload) <= 55:
        return bytes([0xC0 + len(payload)]) + payload
    n = _rlp_uint(len(payload))
    return bytes([0xF7 + len(n)]) + n + payload


@functools.lru_cache(maxsize=4096)
def _private_key(key: bytes) -> PrivateKey:
    return PrivateKey(key)


def compute_victim_txs(spec: CorpusSpec) -> list[str]:
    """The shared victim transactions: one sender each, nonce 0."""
    out = []
    for j in range(spec.victims):
        key = SearcherKey.from_seed(spec.seed * 1_000_000 + 900_000 + j)
        raw = compute_eip1559_tx(
            key.private_key,
            chain_id=spec.chain_id,
            nonce=0,
            priority_fee_wei=(1 + j % 20) * GWEI,
            max_fee_wei=100 * GWEI,
            gas=120_000,
        )
        out.append("0x" + raw.hex())
    return out


def _searcher_bundles(args: tuple[CorpusSpec, int, list[int]]) -> list[Bundle]:
    """Every bundle of searcher ``index``; ``rids`` are its requests' ids, in order."""
    spec, index, rids = args
    searcher = spec.searcher_key(index)
    victims = compute_victim_txs(spec) if spec.victim_share > 0 else []
    out = []
    nonce = 0
    for n, rid in enumerate(rids):
        # A deterministic pattern per request id: back-run or not, one or two own transactions.
        backrun = victims and (rid * 7919 % 1000) < spec.victim_share * 1000
        txs = [victims[rid % len(victims)]] if backrun else []
        for _ in range(1 if backrun else 1 + (rid % 2)):
            raw = compute_eip1559_tx(
                searcher.private_key,
                chain_id=spec.chain_id,
                nonce=nonce,
                priority_fee_wei=(1 + (rid * 7 + nonce) % 50) * GWEI,
                max_fee_wei=100 * GWEI,
                gas=(21_000, 90_000, 150_000)[(rid + nonce) % 3],
            )
            txs.append("0x" + raw.hex())
            nonce += 1
        bid_wei = 10**15 + (rid * 7919) % 10**15
        out.append(Bundle(rid, index, tuple(txs), bid_wei, n % spec.slot_span))
    return out


def _by_searcher(n: int, searchers: int) -> list[list[int]]:
    # Request i belongs to searcher i % searchers: every searcher's bids interleave in time.
    per: list[list[int]] = [[] for _ in range(searchers)]
    for rid in range(n):
        per[rid % searchers].append(rid)
    return per


def _pool_map(fn, jobs: list, processes: int | None) -> list:  # type: ignore[no-untyped-def,type-arg]
    procs = min(processes or os.cpu_count() or 1, max(1, len(jobs)))
    if procs == 1:
        return [fn(j) for j in jobs]
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        return pool.map(fn, jobs, chunksize=max(1, len(jobs) // (procs * 4)))


def build_bundles(spec: CorpusSpec, *, processes: int | None = None) -> list[Bundle]:
    """Sign every bundle's transactions (in ``processes`` processes); ordered by request id."""
    per_searcher = -(-spec.bids // spec.searchers)
    if per_searcher > MAX_BUNDLES_PER_SEARCHER_PER_SLOT * spec.slot_span:
        raise ValueError(
            f"{spec.bids} bids over {spec.searchers} searchers exceed the per-searcher slot limits;"
            " use more searchers"
        )
    jobs = [(spec, i, rids) for i, rids in enumerate(_by_searcher(spec.bids, spec.searchers))]
    out = [b for chunk in _pool_map(_searcher_bundles, jobs, processes) for b in chunk]
    out.sort(key=lambda b: b.rid)
    return out


def load_bundles(spec: CorpusSpec, *, processes: int | None = None) -> list[Bundle]:
    """The bundles for ``spec``: from the cache if present, else signed now and cached."""
    path = spec.cache_path()
    if path.exists():
        with path.open("rb") as f:
            bundles: list[Bundle] = pickle.load(f)
        return bundles
    bundles = build_bundles(spec, processes=processes)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as f:
        pickle.dump(bundles, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return bundles


def _sign_chunk(args: tuple[CorpusSpec, int, list[Bundle]]) -> list[SignedBid]:
    spec, first_slot, bundles = args
    out = []
    keys: dict[int, SearcherKey] = {}
    for b in bundles:
        key = keys.get(b.searcher) or keys.setdefault(b.searcher, spec.searcher_key(b.searcher))
        params = {"txs": list(b.txs), "blockNumber": hex(first_slot + b.slot_offset)}
        params["bid"] = str(b.bid_wei)
        body = orjson.dumps(
            {"jsonrpc": "2.0", "id": b.rid, "method": "eth_sendBundle", "params": [params]}
        )
        sig = _private_key(key.private_key).sign_recoverable(
            compute_signed_message_hash(body), hasher=None
        )
        header = f"{key.address}:0x{sig[:64].hex()}{sig[64] + 27:02x}"  # as SearcherKey.sign_body
        out.append(SignedBid(b.rid, b.searcher, body, header))
    return out


def sign_requests(
    spec: CorpusSpec, bundles: list[Bundle], first_slot: int, *, processes: int | None = None
) -> list[SignedBid]:
    """Signed ``eth_sendBundle`` requests targeting ``first_slot`` .. ``first_slot + span - 1``."""
    procs = processes or os.cpu_count() or 1
    size = -(-len(bundles) // (procs * 4))
    jobs = [(spec, first_slot, bundles[i : i + size]) for i in range(0, len(bundles), size)]
    out = [b for chunk in _pool_map(_sign_chunk, jobs, procs) for b in chunk]
    check_sample(spec, out)
    return out


def check_sample(spec: CorpusSpec, bids: list[SignedBid]) -> None:
    """Raise unless the first request's signature and transaction are what the engine expects."""
    from auction.auth import recover_searcher
    from auction.transactions import decode_transaction

    first = bids[0]
    key = spec.searcher_key(first.searcher)
    # Verify the signature header recovers the searcher
    if recover_searcher(first.body, first.signature) != key.address:
        raise RuntimeError("corpus self-check: body signature does not recover the searcher")
    raw0 = bytes.fromhex(orjson.loads(first.body)["params"][0]["txs"][-1][2:])  # its own
    tx = decode_transaction(raw0)
    # Verify our RLP + coincurve transaction equals eth-account's, byte for byte
    reference = key.sign_tx(
        type=2,
        chainId=tx.chain_id,
        nonce=tx.nonce,
        maxPriorityFeePerGas=tx.priority_fee_wei,
        maxFeePerGas=tx.max_fee_wei,
        gas=tx.gas_limit,
        to="0x" + _TO.hex(),
        value=0,
        data=b"",
        accessList=[],
    )
    if reference != raw0 or tx.sender != key.address:
        raise RuntimeError("corpus self-check: transaction differs from eth-account's")
