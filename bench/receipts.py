"""What a signed receipt costs per acknowledged bid, against the intake work it rides on.

    python -m bench.receipts [--bids 2000] [--repeats 7]

For ``--bids`` real signed one-transaction bundles (as searchers send them), measures per bid,
in the same run and alternating: the intake derivation a bid costs anyway
(``auction.intake.compute_intake_event``: signature recovery, strict RLP decode, sender
recovery, validation), the receipt the engine adds (``api.receipts.Receipter.for_bid``: EIP-712
digest, secp256k1 signature, JSON), and a verifier's check of it (recovery). Prints the
median over ``--repeats`` rounds of each round's mean CPU time per bid, and the receipt as a
share of intake.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from api.receipts import Receipter
from api.searcher import SearcherKey, bundle_params
from auction.intake import IntakeContext, compute_intake_event
from auction.presets import MAINNET, Rollup
from auction.receipts import compute_operator_key, receipt_from_json, verify_receipt
from auction.slots import SlotClock, compute_slot_start_ms
from auction.types import Bid

ROLLUP = 167_001
SLOT = 1_000
GWEI = 10**9
CLOCK = SlotClock(genesis_ms=0, slot_ms=2_000)


def signed_requests(n: int) -> list[tuple[bytes, str]]:
    """``n`` signed eth_sendBundle bodies with their headers, from 64 searchers."""
    out = []
    for i in range(n):
        k = SearcherKey.from_seed(1 + i % 64)
        raw = k.sign_tx(type=2, chainId=ROLLUP, nonce=i, maxPriorityFeePerGas=2 * GWEI,
                        maxFeePerGas=100 * GWEI, gas=60_000, to="0x" + "42" * 20, value=0,
                        data=b"")
        body = k.request("eth_sendBundle", [bundle_params([raw], SLOT, bid_wei=10**15)])
        out.append((body, k.sign_body(body)))
    return out


def per_item_us(fn: Callable[[object], object], items: Sequence[object]) -> float:
    """Mean CPU time of ``fn`` over ``items``, in microseconds (CPU, not wall, time: the
    machine is shared, and another process's load must not count as ours)."""
    start = time.process_time_ns()
    for item in items:
        fn(item)
    return (time.process_time_ns() - start) / len(items) / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bids", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    ctx = IntakeContext(rollups={ROLLUP: Rollup(ROLLUP, policy=MAINNET.policy)}, clock=CLOCK,
                        max_slots_ahead=MAINNET.max_slots_ahead, default_rollup=ROLLUP)
    now_ms = compute_slot_start_ms(CLOCK, SLOT) + 5
    requests = signed_requests(args.bids)
    bids = [compute_intake_event(body, sig, now_ms, ctx) for body, sig in requests]
    assert all(isinstance(b, Bid) for b in bids)
    receipter = Receipter(compute_operator_key(bytes([0x42]) * 32), lambda: bytes(range(32)))
    docs = [receipter.for_bid(b) for b in bids]  # type: ignore[arg-type]

    def intake(item: object) -> object:
        assert isinstance(item, tuple)
        return compute_intake_event(item[0], item[1], now_ms, ctx)

    def verify(doc: object) -> None:
        verify_receipt(receipt_from_json(doc), receipter.operator)

    rounds: dict[str, list[float]] = {"intake": [], "receipt": [], "verify": []}
    for _ in range(args.repeats):  # alternate, so the machine's load falls on all three alike
        rounds["intake"].append(per_item_us(intake, requests))
        rounds["receipt"].append(per_item_us(receipter.for_bid, bids))  # type: ignore[arg-type]
        rounds["verify"].append(per_item_us(verify, docs))
    med = {k: statistics.median(v) for k, v in rounds.items()}
    print(f"{args.bids} signed one-tx bundles, {args.repeats} rounds, median of per-round mean "
          "CPU times")
    print(f"intake derivation (compute_intake_event)  {med['intake']:8.1f} us/bid")
    print(f"receipt (digest + sign + JSON)            {med['receipt']:8.1f} us/bid"
          f"   {med['receipt'] / med['intake']:.2f}x intake")
    print(f"receipt verify (parse + recover)          {med['verify']:8.1f} us/receipt")
    for name, values in rounds.items():
        print(f"  {name:8} rounds: " + " ".join(f"{v:.1f}" for v in values))


if __name__ == "__main__":
    main()
