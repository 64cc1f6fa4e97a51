"""Cost of the pairing-group operations threshold encryption needs, per candidate library.

    .venv/bin/python -m bench.ibe_libraries [--repeat 200]

For each BLS12-381 library that installs from PyPI here (py-arkworks-bls12381, blspy, pyblst,
pymcl; blsttc ships only a source tarball that needs Rust and crates.io, so it does not install)
prints the median wall time of: one pairing, a check that a product of two pairings is 1, G1 and
G2 scalar multiplication by a random 255-bit scalar, hash-to-G2, and (de)serialisation of G1, G2
and GT points. A library that lacks an operation shows "-". Ratios are against
py-arkworks-bls12381 (the committee's signing library) measured in the same run.
Results: bench/results/ibe_libraries.txt; the choice: docs/encryption.md.
"""

from __future__ import annotations

import argparse
import importlib
import random
import statistics
import time
from collections.abc import Callable

Op = Callable[[], object]

OPERATIONS = (
    "pairing",
    "pairing check (2)",
    "G1 mul",
    "G2 mul",
    "hash to G2",
    "G1 compress",
    "G1 decompress (checked)",
    "G2 compress",
    "G2 decompress (checked)",
    "GT to bytes",
    "GT from bytes",
)

CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
DST = b"BLOCKSPACE-BENCH-V01-CS01-with-BLS12381G2_XMD:SHA-256_SSWU_RO_"
MESSAGE = b"blockspace ibe bench identity"


def median_ms(fn: Op, repeat: int) -> float:
    """Median wall time of ``fn`` over ``repeat`` calls, in milliseconds (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e6


def arkworks_ops(k: int) -> dict[str, Op]:
    """py-arkworks-bls12381: GT serialises only through ``str`` (hex); no GT from bytes."""
    from py_arkworks_bls12381 import GT, G1Point, G2Point, Scalar

    g1, g2, s = G1Point(), G2Point(), Scalar(k)
    p1, p2 = g1 * s, g2 * s
    b1, b2 = bytes(p1.to_compressed_bytes()), bytes(p2.to_compressed_bytes())
    gt = GT.pairing(p1, g2)
    return {
        "pairing": lambda: GT.pairing(p1, g2),
        "pairing check (2)": lambda: GT.pairing_check([p1, -g1], [g2, p2]),
        "G1 mul": lambda: g1 * s,
        "G2 mul": lambda: g2 * s,
        "hash to G2": lambda: G2Point.hash_to_curve(MESSAGE, DST),
        "G1 compress": lambda: p1.to_compressed_bytes(),
        "G1 decompress (checked)": lambda: G1Point.from_compressed_bytes(b1),
        "G2 compress": lambda: p2.to_compressed_bytes(),
        "G2 decompress (checked)": lambda: G2Point.from_compressed_bytes(b2),
        "GT to bytes": lambda: bytes.fromhex(str(gt)),
    }


def blspy_ops(k: int) -> dict[str, Op]:
    """blspy (Chia, over blst): no scalar multiplication of an arbitrary point and no GT
    arithmetic in its Python binding; G1 multiplication exists only from the generator
    (``PrivateKey.get_g1``), so a KEM (r * group key) cannot be built with it."""
    import blspy

    g1, g2 = blspy.G1Element.generator(), blspy.G2Element.generator()
    sk = blspy.PrivateKey.from_bytes(k.to_bytes(32, "big"))
    p1 = sk.get_g1()
    p2 = blspy.AugSchemeMPL.sign(sk, MESSAGE)
    b1, b2 = bytes(p1), bytes(p2)
    gt = p1.pair(g2)
    gt_bytes = bytes(gt)
    return {
        "pairing": lambda: p1.pair(g2),
        # No multi-pairing in the binding: two pairings and a GT comparison.
        "pairing check (2)": lambda: p1.pair(g2) == g1.pair(p2),
        "G1 mul": lambda: sk.get_g1(),  # fixed base (the generator) only
        "hash to G2": lambda: blspy.G2Element.from_message(MESSAGE, DST),
        "G1 compress": lambda: bytes(p1),
        "G1 decompress (checked)": lambda: blspy.G1Element.from_bytes(b1),
        "G2 compress": lambda: bytes(p2),
        "G2 decompress (checked)": lambda: blspy.G2Element.from_bytes(b2),
        "GT to bytes": lambda: bytes(gt),
        "GT from bytes": lambda: blspy.GTElement.from_bytes(gt_bytes),
    }


def pyblst_ops(k: int) -> dict[str, Op]:
    """pyblst: points, hash, Miller loop and a final *check*; no final exponentiation, so no
    GT value (it cannot compute e(C1, K) for a KEM at all)."""
    import pyblst

    p1_cls, p2_cls = pyblst.BlstP1Element, pyblst.BlstP2Element
    g2 = p2_cls().hash_to_group(MESSAGE, DST)
    g1 = p1_cls().hash_to_group(MESSAGE, DST)
    kb = k
    p1, p2 = g1.scalar_mul(kb), g2.scalar_mul(kb)
    b1, b2 = p1.compress(), p2.compress()
    return {
        "pairing check (2)": lambda: pyblst.final_verify(
            pyblst.miller_loop(p1, g2), pyblst.miller_loop(g1, p2)
        ),
        "G1 mul": lambda: g1.scalar_mul(kb),
        "G2 mul": lambda: g2.scalar_mul(kb),
        "hash to G2": lambda: p2_cls().hash_to_group(MESSAGE, DST),
        "G1 compress": lambda: p1.compress(),
        "G1 decompress (checked)": lambda: p1_cls().uncompress(b1),
        "G2 compress": lambda: p2.compress(),
        "G2 decompress (checked)": lambda: p2_cls().uncompress(b2),
    }


def pymcl_ops(k: int) -> dict[str, Op]:
    """pymcl: mcl's own serialisation (not the ZCash compressed form) and its own hash-to-G2
    (no DST parameter), so it could not interoperate with the committee's keys as is."""
    import pymcl

    s = pymcl.Fr(str(k))
    g1, g2 = pymcl.g1, pymcl.g2
    p1, p2 = g1 * s, g2 * s
    b1, b2 = p1.serialize(), p2.serialize()
    gt = pymcl.pairing(p1, g2)
    gt_bytes = gt.serialize()
    return {
        "pairing": lambda: pymcl.pairing(p1, g2),
        "pairing check (2)": lambda: pymcl.pairing(p1, g2) == pymcl.pairing(g1, p2),
        "G1 mul": lambda: g1 * s,
        "G2 mul": lambda: g2 * s,
        "hash to G2": lambda: pymcl.G2.hash(MESSAGE),
        "G1 compress": lambda: p1.serialize(),
        "G1 decompress (checked)": lambda: pymcl.G1.deserialize(b1),
        "G2 compress": lambda: p2.serialize(),
        "G2 decompress (checked)": lambda: pymcl.G2.deserialize(b2),
        "GT to bytes": lambda: gt.serialize(),
        "GT from bytes": lambda: pymcl.GT.deserialize(gt_bytes),
    }


CANDIDATES: dict[str, tuple[str, Callable[[int], dict[str, Op]]]] = {
    "py-arkworks-bls12381": ("py_arkworks_bls12381", arkworks_ops),
    "blspy": ("blspy", blspy_ops),
    "pyblst": ("pyblst", pyblst_ops),
    "pymcl": ("pymcl", pymcl_ops),
    "blsttc": ("blsttc", lambda k: {}),
}


def measure(repeat: int, k: int) -> dict[str, dict[str, float] | str]:
    """Run every operation of every candidate; a candidate that does not import gives its error."""
    results: dict[str, dict[str, float] | str] = {}
    for name, (module, build) in CANDIDATES.items():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            results[name] = f"not installed: {exc}"
            continue
        ops = build(k)
        results[name] = {op: median_ms(fn, repeat) for op, fn in ops.items()}
    return results


def render(results: dict[str, dict[str, float] | str], repeat: int) -> str:
    """The table: one row per operation, one column per library, ms and ratio to arkworks."""
    names = [n for n, r in results.items() if isinstance(r, dict)]
    base = results["py-arkworks-bls12381"]
    assert isinstance(base, dict)
    lines = [f"median ms over {repeat} calls (ratio to py-arkworks-bls12381 in this run)"]
    lines.append(f"{'operation':<26}" + "".join(f"{n:>24}" for n in names))
    for op in OPERATIONS:
        cells = []
        for n in names:
            r = results[n]
            assert isinstance(r, dict)
            if op not in r:
                cells.append(f"{'-':>24}")
            elif op in base and base[op] > 0:
                cells.append(f"{r[op]:>14.4f} ({r[op] / base[op]:5.2f}x)")
            else:
                cells.append(f"{r[op]:>24.4f}")
        lines.append(f"{op:<26}" + "".join(cells))
    for n, r in results.items():
        if isinstance(r, str):
            lines.append(f"{n}: {r}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="samples per operation")
    args = parser.parse_args()
    k = random.Random(14).randrange(1, CURVE_ORDER)
    results = measure(args.repeat, k)
    print(render(results, args.repeat))


if __name__ == "__main__":
    main()
