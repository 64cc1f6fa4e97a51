"""``blockspace encrypt``: encrypt a bundle request to the committee's key for its slot.

    blockspace encrypt request.json --committee http://engine:8000 [--slot S]
        [--searcher 0xADDRESS] [-o out.json]

``request.json`` holds the exact JSON-RPC body a searcher would send to ``eth_sendBundle``;
``--committee`` is the engine's base URL (``GET /v1/committee`` is fetched) or a file holding
that answer or the public committee file. The slot defaults to the bundle's ``blockNumber``.
Writes ``{"version", "committeeId", "slot", "publicFields", "ciphertext"}`` (hex) to stdout or
``-o``. Exit codes: 0 written, 2 bad usage or unreadable input (the reason on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "blockspace encrypt"


def _read_committee(source: str) -> bytes:
    """The committee document from a URL (``/v1/committee`` of that base) or a file."""
    if source.startswith(("http://", "https://")):
        import httpx

        response = httpx.get(source.rstrip("/") + "/v1/committee", timeout=10.0)
        response.raise_for_status()
        return response.content
    return Path(source).read_bytes()


def _encrypt(args: argparse.Namespace) -> int:
    import httpx
    import orjson

    from api.searcher import BundleEncryptor, ciphertext_to_json, committee_from_document
    from auction.errors import BlockspaceError

    try:
        body = Path(args.request).read_bytes()
        slot = args.slot
        if slot is None:
            slot = int(orjson.loads(body)["params"][0]["blockNumber"], 16)
        committee = committee_from_document(_read_committee(args.committee))
        ciphertext = BundleEncryptor(committee, slot, searcher=args.searcher).encrypt(body)
    except (OSError, httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except BlockspaceError as exc:
        print(f"{PROG}: {exc.code}: {exc}", file=sys.stderr)
        return 2
    text = orjson.dumps(ciphertext_to_json(ciphertext)).decode() + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``encrypt`` with the ``blockspace`` command's subparsers."""
    encrypt = sub.add_parser(
        "encrypt", help="encrypt a bundle request to the committee (docs/encryption.md)"
    )
    encrypt.add_argument("request", help="file with the eth_sendBundle JSON-RPC body")
    encrypt.add_argument(
        "--committee", required=True, help="engine base URL, or a /v1/committee or committee file"
    )
    encrypt.add_argument("--slot", type=int, help="target slot (default: the bundle's blockNumber)")
    encrypt.add_argument(
        "--searcher", help="the address that will sign the call (bound into the public fields)"
    )
    encrypt.add_argument("-o", "--out", help="write the ciphertext JSON here (default: stdout)")
    encrypt.set_defaults(func=_encrypt)
