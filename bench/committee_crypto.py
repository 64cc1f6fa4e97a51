"""Timings of the committee's threshold-BLS operations (medians; py_ecc measured in the same run).

    .venv/bin/python -m bench.committee_crypto [--n 10] [--t 7] [--repeat 200]

Prints the median wall time per operation on this machine, and py_ecc's sign and verify for the
same inputs as a ratio (the pure-Python reference is why py_ecc stays out of the signing path).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from committee import bls, threshold


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` over ``repeat`` calls, in milliseconds (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, help="committee size")
    parser.add_argument("--t", type=int, default=None, help="threshold (default n - (n-1)//3)")
    parser.add_argument("--repeat", type=int, default=200, help="samples per operation")
    parser.add_argument("--py-ecc-repeat", type=int, default=3, help="samples for py_ecc")
    args = parser.parse_args()
    n = args.n
    t = args.t if args.t is not None else threshold.default_threshold(n)

    committee, shares = threshold.deal(n, t, bytes(range(32)))
    message = b"blockspace slot 1234567 block header root " + bytes(32)
    partials = {s.index: threshold.partial_sign(s, message) for s in shares}
    chosen = {i: partials[i] for i in range(1, t + 1)}
    combined = threshold.combine(chosen, t, n)
    member_key = committee.member_public_key(1)
    if not bls.verify(committee.group_public_key, message, combined):
        raise SystemExit("combined signature does not verify: refusing to report timings")

    rows: list[tuple[str, float]] = [
        ("hash to G2", median_ms(lambda: bls.hash_to_g2(message), args.repeat)),
        (
            "partial sign",
            median_ms(lambda: threshold.partial_sign(shares[0], message), args.repeat),
        ),
        (
            "verify partial",
            median_ms(
                lambda: threshold.verify_partial(member_key, message, partials[1]), args.repeat
            ),
        ),
        (f"combine {t}-of-{n}", median_ms(lambda: threshold.combine(chosen, t, n), args.repeat)),
        (
            "verify combined",
            median_ms(
                lambda: bls.verify(committee.group_public_key, message, combined), args.repeat
            ),
        ),
        ("decode G2 (subgroup check)", median_ms(lambda: bls.decode_g2(combined), args.repeat)),
        (
            "verify share (Feldman)",
            median_ms(
                lambda: threshold.verify_share(shares[-1], committee.commitments), args.repeat
            ),
        ),
        (
            f"deal {t}-of-{n}",
            median_ms(lambda: threshold.deal(n, t, bytes(range(32))), max(5, args.repeat // 20)),
        ),
    ]

    # py_ecc is imported late: it is a test-only dependency and takes a while to import.
    from eth_typing import BLSPubkey, BLSSignature
    from py_ecc.bls import G2ProofOfPossession

    secret = shares[0].secret
    reference = [
        (
            "py_ecc sign",
            median_ms(lambda: G2ProofOfPossession.Sign(secret, message), args.py_ecc_repeat),
        ),
        (
            "py_ecc verify",
            median_ms(
                lambda: G2ProofOfPossession.Verify(
                    BLSPubkey(committee.group_public_key), message, BLSSignature(combined)
                ),
                args.py_ecc_repeat,
            ),
        ),
    ]

    print(f"committee {t}-of-{n}, ciphersuite {bls.CIPHERSUITE}, medians over {args.repeat} runs")
    for name, ms in rows:
        print(f"  {name:<28} {ms:9.3f} ms")
    ours = dict(rows)
    for (name, ms), ours_name in zip(reference, ("partial sign", "verify combined"), strict=True):
        ratio = ms / ours[ours_name]
        print(f"  {name:<28} {ms:9.3f} ms  ({ratio:,.0f}x {ours_name})")


if __name__ == "__main__":
    main()
