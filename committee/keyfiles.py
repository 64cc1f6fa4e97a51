"""JSON key files: one secret share file per member and one public committee file.

Share file (written with mode 0600)::

    {"kind": "blockspace-committee-share", "version": 1,
     "ciphersuite": "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_",
     "committee_id": "0x<32 bytes>", "n": 10, "t": 7, "index": 3,
     "secret": "0x<32 bytes, big-endian>", "commitments": ["0x<48 bytes>", ...]}

Committee file (public)::

    {"kind": "blockspace-committee", "version": 1, "ciphersuite": "...",
     "committee_id": "0x...", "n": 10, "t": 7, "group_public_key": "0x<48 bytes>",
     "member_public_keys": ["0x<48 bytes>", ...], "commitments": ["0x<48 bytes>", ...]}

Decoding trusts nothing: exact field set, exact types, strict ``0x`` hex of the right length,
points on the curve and in the subgroup, member and group keys re-derived from the commitments,
committee id recomputed, and the share checked against the commitments (Feldman). Every failure
is a ``CommitteeError`` with a stable code and, where one applies, the offending ``field``.
Only the ``read_*`` / ``write_*`` functions touch the file system.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Any, Final

import orjson

from committee import bls
from committee.errors import CommitteeMismatch, InvalidKeyfile, InvalidShare
from committee.threshold import (
    COMMITTEE_ID_LENGTH,
    CommitteeInfo,
    KeyShare,
    check_committee_info,
    check_member_index,
    check_params,
    compute_committee_info,
    verify_share,
)

SHARE_KIND: Final[str] = "blockspace-committee-share"
COMMITTEE_KIND: Final[str] = "blockspace-committee"
FORMAT_VERSION: Final[int] = 1

SHARE_FILE_MODE: Final[int] = 0o600
COMMITTEE_FILE_MODE: Final[int] = 0o644
# Far above any real file (a 1024-member committee file is ~110 KB); stops reading a wrong path.
MAX_FILE_BYTES: Final[int] = 1 << 20

_SHARE_FIELDS: Final[tuple[str, ...]] = (
    "kind",
    "version",
    "ciphersuite",
    "committee_id",
    "n",
    "t",
    "index",
    "secret",
    "commitments",
)
_COMMITTEE_FIELDS: Final[tuple[str, ...]] = (
    "kind",
    "version",
    "ciphersuite",
    "committee_id",
    "n",
    "t",
    "group_public_key",
    "member_public_keys",
    "commitments",
)
_HEX_RE: Final[re.Pattern[str]] = re.compile(r"0x[0-9a-fA-F]*")


# --- encoding ---------------------------------------------------------------------------------


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def encode_share_file(share: KeyShare, committee: CommitteeInfo) -> str:
    """Return the share file text for ``share``; refuses a share that is not of ``committee``."""
    # Verify the share belongs here, so a mix-up is caught when writing, not at signing time.
    if share.committee_id != committee.committee_id:
        raise CommitteeMismatch("share is of another committee", field="committee_id")
    check_member_index(share.index, committee.n)
    if not verify_share(share, committee.commitments):
        raise InvalidShare("share does not match the commitments", index=share.index)
    document = {
        "kind": SHARE_KIND,
        "version": FORMAT_VERSION,
        "ciphersuite": bls.CIPHERSUITE,
        "committee_id": _hex(committee.committee_id),
        "n": committee.n,
        "t": committee.t,
        "index": share.index,
        "secret": _hex(bls.secret_to_bytes(share.secret)),
        "commitments": [_hex(c) for c in committee.commitments],
    }
    return json.dumps(document, indent=2) + "\n"


def encode_committee_file(committee: CommitteeInfo) -> str:
    """Return the public committee file text."""
    document = {
        "kind": COMMITTEE_KIND,
        "version": FORMAT_VERSION,
        "ciphersuite": bls.CIPHERSUITE,
        "committee_id": _hex(committee.committee_id),
        "n": committee.n,
        "t": committee.t,
        "group_public_key": _hex(committee.group_public_key),
        "member_public_keys": [_hex(k) for k in committee.member_public_keys],
        "commitments": [_hex(c) for c in committee.commitments],
    }
    return json.dumps(document, indent=2) + "\n"


# --- decoding ---------------------------------------------------------------------------------


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json hook: a repeated key (two "secret"s, say) makes a file ambiguous, so refuse it."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidKeyfile(f"duplicate field {key!r}", field=key)
        out[key] = value
    return out


def _parse_document(text: str | bytes, kind: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """Parse JSON and check the envelope: object, exact field set, kind, version, ciphersuite."""
    try:
        # orjson first: it refuses nesting deeper than 1,024 levels, where json's C scanner
        # recurses until the recursion limit (RecursionError; a segfault once a library has
        # raised the limit, as py_ecc does). json then reads it, refusing duplicate keys.
        orjson.loads(text)
        document = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    # JSONDecodeError and UnicodeDecodeError are ValueErrors; RecursionError is not
    except (ValueError, RecursionError) as exc:
        raise InvalidKeyfile(f"not a JSON document: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidKeyfile("key file must hold a JSON object")
    missing = [f for f in fields if f not in document]
    if missing:
        raise InvalidKeyfile(f"missing field {missing[0]!r}", field=missing[0])
    unknown = sorted(set(document) - set(fields))
    if unknown:
        raise InvalidKeyfile(f"unknown field {unknown[0]!r}", field=unknown[0])
    # Verify the kind first: the commonest mistake is passing the other file.
    if document["kind"] != kind:
        raise InvalidKeyfile(f"kind must be {kind!r}, got {document['kind']!r}", field="kind")
    if _int_field(document, "version") != FORMAT_VERSION:
        raise InvalidKeyfile(f"unsupported version {document['version']}", field="version")
    if document["ciphersuite"] != bls.CIPHERSUITE:
        raise InvalidKeyfile("unsupported ciphersuite", field="ciphersuite")
    return document


def _int_field(document: dict[str, Any], name: str) -> int:
    value = document[name]
    # JSON true and 7.0 are not ints for our purposes, though Python would accept both.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidKeyfile(f"{name} must be an integer", field=name)
    return value


def _hex_value(value: Any, name: str, length: int) -> bytes:
    """Decode strict ``0x``-prefixed hex of exactly ``length`` bytes; never echo the value."""
    # Use a regex, not bytes.fromhex alone: fromhex skips whitespace between bytes.
    if not isinstance(value, str) or not _HEX_RE.fullmatch(value) or len(value) % 2:
        raise InvalidKeyfile(f"{name} must be 0x-prefixed hex", field=name)
    data = bytes.fromhex(value[2:])
    if len(data) != length:
        raise InvalidKeyfile(
            f"{name} must be {length} bytes, got {len(data)}", field=name, length=len(data)
        )
    return data


def _hex_list(document: dict[str, Any], name: str, length: int) -> list[bytes]:
    values = document[name]
    if not isinstance(values, list):
        raise InvalidKeyfile(f"{name} must be a list", field=name)
    return [_hex_value(v, f"{name}[{i}]", length) for i, v in enumerate(values)]


def _public_fields(document: dict[str, Any]) -> tuple[int, int, list[bytes], bytes]:
    """Read n, t, the commitments and the stated committee id, with shape checks only."""
    n = _int_field(document, "n")
    t = _int_field(document, "t")
    check_params(n, t)
    commitments = _hex_list(document, "commitments", bls.PUBLIC_KEY_LENGTH)
    if len(commitments) != t:
        raise CommitteeMismatch(
            f"need {t} commitments, got {len(commitments)}", field="commitments"
        )
    committee_id = _hex_value(document["committee_id"], "committee_id", COMMITTEE_ID_LENGTH)
    return n, t, commitments, committee_id


def decode_share_file(text: str | bytes) -> tuple[KeyShare, CommitteeInfo]:
    """Parse and fully check a share file; return the share and its (re-derived) committee."""
    document = _parse_document(text, SHARE_KIND, _SHARE_FIELDS)
    n, t, commitments, stated_id = _public_fields(document)
    # Derive the public committee from the commitments (this also checks every point).
    committee = compute_committee_info(n, t, commitments)
    # Verify the id: a share file whose id was edited must not load.
    if stated_id != committee.committee_id:
        raise CommitteeMismatch(
            "committee_id does not match n, t and the commitments", field="committee_id"
        )
    index = _int_field(document, "index")
    check_member_index(index, n)
    secret = bls.secret_from_bytes(_hex_value(document["secret"], "secret", bls.SECRET_KEY_LENGTH))
    share = KeyShare(index=index, secret=secret, committee_id=committee.committee_id)
    # Verify the share against the commitments (Feldman): catches a corrupted or swapped secret.
    if not verify_share(share, committee.commitments):
        raise InvalidShare(
            f"secret of member {index} does not match the commitments",
            field="secret",
            index=index,
        )
    return share, committee


def decode_committee_file(text: str | bytes) -> CommitteeInfo:
    """Parse and fully check a public committee file."""
    document = _parse_document(text, COMMITTEE_KIND, _COMMITTEE_FIELDS)
    n, t, commitments, stated_id = _public_fields(document)
    member_keys = _hex_list(document, "member_public_keys", bls.PUBLIC_KEY_LENGTH)
    if len(member_keys) != n:
        raise CommitteeMismatch(
            f"need {n} member public keys, got {len(member_keys)}", field="member_public_keys"
        )
    group_key = _hex_value(document["group_public_key"], "group_public_key", 48)
    # Decode every stated key once for a precise error (which field, which check) ...
    bls.decode_g1(group_key, what="group_public_key")
    for i, key in enumerate(member_keys):
        bls.decode_g1(key, what=f"member_public_keys[{i}]")
    stated = CommitteeInfo(
        committee_id=stated_id,
        n=n,
        t=t,
        group_public_key=group_key,
        member_public_keys=tuple(member_keys),
        commitments=tuple(commitments),
    )
    # ... then verify the id and keys are the ones the commitments imply.
    check_committee_info(stated)
    return stated


# --- files ------------------------------------------------------------------------------------


def _write_file(path: str | os.PathLike[str], data: bytes, mode: int, overwrite: bool) -> None:
    """Write ``data`` with exactly ``mode``; never leaves a half-written file in place."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    # mkstemp creates the file 0600 from the start, so a secret is never briefly readable.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".keyfile-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            # link() fails if the target exists, atomically: no check-then-write race.
            os.link(tmp, target)
            os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_file(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise InvalidKeyfile(f"key file larger than {MAX_FILE_BYTES} bytes", path=os.fspath(path))
    return data


def write_share_file(
    path: str | os.PathLike[str],
    share: KeyShare,
    committee: CommitteeInfo,
    *,
    overwrite: bool = False,
) -> None:
    """Write a member's share file with mode 0600; refuses to replace a file unless told to."""
    _write_file(path, encode_share_file(share, committee).encode(), SHARE_FILE_MODE, overwrite)


def read_share_file(path: str | os.PathLike[str]) -> tuple[KeyShare, CommitteeInfo]:
    """Read and fully check a share file."""
    return decode_share_file(_read_file(path))


def write_committee_file(
    path: str | os.PathLike[str], committee: CommitteeInfo, *, overwrite: bool = False
) -> None:
    """Write the public committee file (mode 0644)."""
    _write_file(path, encode_committee_file(committee).encode(), COMMITTEE_FILE_MODE, overwrite)


def read_committee_file(path: str | os.PathLike[str]) -> CommitteeInfo:
    """Read and fully check a public committee file."""
    return decode_committee_file(_read_file(path))
