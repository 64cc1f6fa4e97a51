"""Intake CPU per encrypted bid against a plaintext bid, measured in the same run.

    python -m bench.sealed_intake [--bids 2000] [--repeats 7]

For ``--bids`` real one-transaction bundles from 64 searchers, each sent once as a signed
``eth_sendBundle`` and once encrypted (``BundleEncryptor``, one encapsulation per searcher) in a
signed ``bs_sendEncryptedBundle``, measures per bid, alternating the two kinds round by round:

* derivation: ``auction.intake.compute_intake_event`` on the signed request (what a member
  re-runs): a plaintext bid pays for signature recovery, RLP decoding and sender recovery of
  its transactions; an encrypted one for signature recovery, hex decoding and the header and
  public-field checks;
* the whole intake: ``Intake.authenticate`` then ``submit_bundle`` / ``submit_sealed_bundle``
  into a fresh engine on the memory store, with its receipt and notification.

Prints the median over ``--repeats`` rounds of each round's mean CPU time per bid (process
time: the machine is shared) and the encrypted/plaintext ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Sequence

import orjson

from api.engine import Engine
from api.searcher import BundleEncryptor, SearcherKey, bundle_params, encrypted_bundle_params
from auction.intake import IntakeContext, compute_intake_event
from auction.presets import MAINNET, Rollup
from auction.slots import SlotClock, compute_slot_start_ms
from auction.types import Bid, SealedBid
from committee import threshold
from node.metrics import Metrics
from node.stores.memory import MemoryStore

ROLLUP = 167_001
SLOT = 1_000
SLOT_MS = 2_000
GWEI = 10**9
SEARCHERS = 64
CLOCK = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
Signed = tuple[bytes, str]


def requests(n: int, committee: threshold.CommitteeInfo) -> tuple[list[Signed], list[Signed]]:
    """``n`` signed plaintext bundles and the same bundles encrypted, in signed calls."""
    keys = [SearcherKey.from_seed(1 + i) for i in range(SEARCHERS)]
    encryptors = [BundleEncryptor(committee, SLOT, searcher=k.address) for k in keys]
    plain, sealed = [], []
    for i in range(n):
        k, enc = keys[i % SEARCHERS], encryptors[i % SEARCHERS]
        raw = k.sign_tx(type=2, chainId=ROLLUP, nonce=i, maxPriorityFeePerGas=2 * GWEI,
                        maxFeePerGas=100 * GWEI, gas=60_000, to="0x" + "42" * 20, value=0,
                        data=b"")
        body = k.request("eth_sendBundle", [bundle_params([raw], SLOT, bid_wei=10**15 + i)])
        plain.append((body, k.sign_body(body)))
        call = k.request("bs_sendEncryptedBundle", [encrypted_bundle_params(enc.encrypt(body))])
        sealed.append((call, k.sign_body(call)))
    return plain, sealed


def per_item_us(fn: Callable[[Signed], object], items: Sequence[Signed]) -> float:
    """Mean CPU time of ``fn`` over ``items``, in microseconds."""
    start = time.process_time_ns()
    for item in items:
        fn(item)
    return (time.process_time_ns() - start) / len(items) / 1e3


def whole_intake_us(items: Sequence[Signed], committee_id: bytes, *, sealed: bool) -> float:
    """Mean CPU time per request of the engine's intake (authenticate, derive, log, receipt,
    notify) into a fresh engine on the memory store."""
    now = compute_slot_start_ms(CLOCK, SLOT) + 5
    engine = Engine(store=MemoryStore(), rollups={ROLLUP: Rollup(ROLLUP)}, preset=MAINNET,
                    slot_ms=SLOT_MS, clock_ms=lambda: now, metrics=Metrics())
    engine.encryption_committee_id = committee_id
    intake = engine.intake
    submit = intake.submit_sealed_bundle if sealed else intake.submit_bundle

    async def run() -> float:
        start = time.process_time_ns()
        for body, sig in items:
            searcher, evidence = intake.authenticate(body, sig)
            params = orjson.loads(body)["params"]
            await submit(params, searcher=searcher, evidence=evidence, endpoint_rollup=None,
                         transport="bench", receipts=[])
        return (time.process_time_ns() - start) / len(items) / 1e3

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bids", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    committee, _ = threshold.deal(4, 3, bytes(range(32)))
    ctx = IntakeContext(rollups={ROLLUP: Rollup(ROLLUP, policy=MAINNET.policy)}, clock=CLOCK,
                        max_slots_ahead=MAINNET.max_slots_ahead, default_rollup=ROLLUP,
                        committee_id=committee.committee_id)
    now_ms = compute_slot_start_ms(CLOCK, SLOT) + 5
    plain, sealed = requests(args.bids, committee)

    def derive(item: Signed) -> object:
        return compute_intake_event(item[0], item[1], now_ms, ctx)

    # Verify both kinds are accepted, so the figures are of the accepting path
    if not all(isinstance(derive(p), Bid) for p in plain[:50]):
        raise SystemExit("plaintext bids were refused")
    if not all(isinstance(derive(s), SealedBid) for s in sealed[:50]):
        raise SystemExit("encrypted bids were refused")
    sizes = (statistics.mean(len(b) for b, _ in plain), statistics.mean(len(b) for b, _ in sealed))
    rounds: dict[str, list[float]] = {k: [] for k in ("plain", "sealed", "plain_all",
                                                      "sealed_all")}
    for _ in range(args.repeats):  # alternate, so the machine's load falls on both alike
        rounds["plain"].append(per_item_us(derive, plain))
        rounds["sealed"].append(per_item_us(derive, sealed))
        rounds["plain_all"].append(whole_intake_us(plain, committee.committee_id, sealed=False))
        rounds["sealed_all"].append(whole_intake_us(sealed, committee.committee_id, sealed=True))
    med = {k: statistics.median(v) for k, v in rounds.items()}
    print(f"{args.bids} one-tx bundles from {SEARCHERS} searchers, {args.repeats} rounds, median "
          "of per-round mean CPU times")
    print(f"signed request size: plaintext {sizes[0]:.0f} B, encrypted call {sizes[1]:.0f} B")
    print(f"derivation (compute_intake_event)  plaintext {med['plain']:7.1f} us/bid   encrypted "
          f"{med['sealed']:7.1f} us/bid   {med['sealed'] / med['plain']:.2f}x")
    print(f"whole intake (memory store)        plaintext {med['plain_all']:7.1f} us/bid   "
          f"encrypted {med['sealed_all']:7.1f} us/bid   "
          f"{med['sealed_all'] / med['plain_all']:.2f}x")
    for name, values in rounds.items():
        print(f"  {name:10} rounds: " + " ".join(f"{v:.1f}" for v in values))


if __name__ == "__main__":
    main()
