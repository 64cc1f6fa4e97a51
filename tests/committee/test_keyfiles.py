"""Key files round-trip, are written privately, and refuse every kind of corruption we know of."""

from __future__ import annotations

import copy
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from committee import bls, keyfiles, threshold
from committee.errors import CommitteeError, CommitteeMismatch, InvalidShare
from tests.committee.conftest import Dealt

R = bls.CURVE_ORDER
Mutation = Callable[[dict[str, Any], Dealt], None]


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _off_curve_g1() -> str:
    # x = 1: 1 + 4 = 5 is not a square mod p, so no point has this x.
    encoded = bytearray((1).to_bytes(48, "big"))
    encoded[0] |= 0x80
    return _hex(bytes(encoded))


@pytest.fixture(scope="module")
def share_document(dealt: Dealt) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        keyfiles.encode_share_file(dealt.shares[2], dealt.committee)
    )
    return document


@pytest.fixture(scope="module")
def committee_document(dealt: Dealt) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(keyfiles.encode_committee_file(dealt.committee))
    return document


@pytest.fixture
def restore_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


# --- round trips ------------------------------------------------------------------------------


def test_share_file_round_trips(dealt: Dealt) -> None:
    for share in dealt.shares:
        text = keyfiles.encode_share_file(share, dealt.committee)
        loaded, committee = keyfiles.decode_share_file(text)
        assert loaded == share
        assert committee == dealt.committee


def test_share_file_has_the_documented_fields(share_document: dict[str, Any]) -> None:
    assert share_document["kind"] == "blockspace-committee-share"
    assert share_document["ciphersuite"] == "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
    assert (share_document["n"], share_document["t"], share_document["index"]) == (10, 7, 3)
    assert len(share_document["secret"]) == 2 + 64
    assert len(share_document["commitments"]) == 7


def test_committee_file_round_trips(dealt: Dealt) -> None:
    text = keyfiles.encode_committee_file(dealt.committee)
    assert keyfiles.decode_committee_file(text) == dealt.committee
    assert keyfiles.decode_committee_file(text.encode()) == dealt.committee


def test_share_file_is_written_0600_whatever_the_umask(
    dealt: Dealt, tmp_path: Path, restore_umask: None
) -> None:
    os.umask(0)
    path = tmp_path / "member-3.json"
    keyfiles.write_share_file(path, dealt.shares[2], dealt.committee)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    share, committee = keyfiles.read_share_file(path)
    assert share == dealt.shares[2] and committee == dealt.committee
    # No temporary file is left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["member-3.json"]


def test_share_file_is_not_replaced_unless_asked(dealt: Dealt, tmp_path: Path) -> None:
    path = tmp_path / "member.json"
    keyfiles.write_share_file(path, dealt.shares[0], dealt.committee)
    with pytest.raises(FileExistsError):
        keyfiles.write_share_file(path, dealt.shares[1], dealt.committee)
    assert keyfiles.read_share_file(path)[0] == dealt.shares[0]
    path.chmod(0o644)
    keyfiles.write_share_file(path, dealt.shares[1], dealt.committee, overwrite=True)
    assert keyfiles.read_share_file(path)[0] == dealt.shares[1]
    # Replacing a lax file still leaves a private one.
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["member.json"]


def test_committee_file_round_trips_on_disk(dealt: Dealt, tmp_path: Path) -> None:
    path = tmp_path / "committee.json"
    keyfiles.write_committee_file(path, dealt.committee)
    assert keyfiles.read_committee_file(path) == dealt.committee
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_truncated_share_file_is_rejected(dealt: Dealt, tmp_path: Path) -> None:
    path = tmp_path / "member.json"
    text = keyfiles.encode_share_file(dealt.shares[0], dealt.committee)
    path.write_text(text[: len(text) // 2])
    with pytest.raises(CommitteeError) as excinfo:
        keyfiles.read_share_file(path)
    assert excinfo.value.code == "invalid_keyfile"


def test_encode_refuses_a_share_of_another_committee(dealt: Dealt) -> None:
    other_committee, other_shares = threshold.deal(10, 7, bytes(32))
    with pytest.raises(CommitteeMismatch):
        keyfiles.encode_share_file(other_shares[0], dealt.committee)
    forged = threshold.KeyShare(
        index=1, secret=other_shares[0].secret, committee_id=dealt.committee.committee_id
    )
    with pytest.raises(InvalidShare):
        keyfiles.encode_share_file(forged, dealt.committee)


# --- corrupted share files --------------------------------------------------------------------


def _set(field: str, value: Any) -> Mutation:
    def mutate(document: dict[str, Any], dealt: Dealt) -> None:
        document[field] = value

    return mutate


def _set_secret(value: Callable[[Dealt], int]) -> Mutation:
    def mutate(document: dict[str, Any], dealt: Dealt) -> None:
        document["secret"] = _hex(value(dealt).to_bytes(32, "big"))

    return mutate


def _set_commitment(j: int, value: Callable[[Dealt], str], *, fix_id: bool = False) -> Mutation:
    def mutate(document: dict[str, Any], dealt: Dealt) -> None:
        document["commitments"][j] = value(dealt)
        if fix_id:
            # A careful forger also recomputes the committee id to match the new commitments.
            commitments = [bytes.fromhex(c[2:]) for c in document["commitments"]]
            new_id = threshold.compute_committee_id(document["n"], document["t"], commitments)
            document["committee_id"] = _hex(new_id)

    return mutate


def _drop(field: str) -> Mutation:
    def mutate(document: dict[str, Any], dealt: Dealt) -> None:
        del document[field]

    return mutate


SHARE_CORRUPTIONS: dict[str, tuple[Mutation, str, str | None]] = {
    "missing secret": (_drop("secret"), "invalid_keyfile", "secret"),
    "unknown field": (_set("note", "hi"), "invalid_keyfile", "note"),
    "committee file kind": (_set("kind", "blockspace-committee"), "invalid_keyfile", "kind"),
    "future version": (_set("version", 2), "invalid_keyfile", "version"),
    "other ciphersuite": (
        _set("ciphersuite", "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_"),
        "invalid_keyfile",
        "ciphersuite",
    ),
    "n as string": (_set("n", "10"), "invalid_keyfile", "n"),
    "t as bool": (_set("t", True), "invalid_keyfile", "t"),
    "index as float": (_set("index", 3.0), "invalid_keyfile", "index"),
    "t above n": (_set("t", 11), "invalid_committee_params", None),
    "t without commitments": (_set("t", 6), "committee_mismatch", "commitments"),
    "index 0": (_set("index", 0), "invalid_member_index", None),
    "index above n": (_set("index", 11), "invalid_member_index", None),
    "index of another member": (_set("index", 4), "invalid_share", "secret"),
    "secret not hex": (_set("secret", "0x" + "zz" * 32), "invalid_keyfile", "secret"),
    "secret without 0x": (_set("secret", "11" * 32), "invalid_keyfile", "secret"),
    # Even length with the spaces, which bytes.fromhex alone would skip.
    "secret with spaces": (
        _set("secret", "0x" + "11" * 16 + "  " + "11" * 16),
        "invalid_keyfile",
        "secret",
    ),
    "secret odd length": (_set("secret", "0x" + "1" * 63), "invalid_keyfile", "secret"),
    "secret 31 bytes": (_set("secret", "0x" + "11" * 31), "invalid_keyfile", "secret"),
    "secret as number": (_set("secret", 12345), "invalid_keyfile", "secret"),
    "secret zero": (_set_secret(lambda d: 0), "invalid_scalar", None),
    "secret r": (_set_secret(lambda d: R), "invalid_scalar", None),
    "secret plus one": (
        _set_secret(lambda d: d.shares[2].secret + 1),
        "invalid_share",
        "secret",
    ),
    "secret of another member": (
        _set_secret(lambda d: d.shares[3].secret),
        "invalid_share",
        "secret",
    ),
    "committee id edited": (_set("committee_id", "0x" + "ab" * 32), "committee_mismatch", None),
    "committee id short": (_set("committee_id", "0x" + "ab" * 31), "invalid_keyfile", None),
    "commitments not a list": (_set("commitments", "0x00"), "invalid_keyfile", "commitments"),
    "commitment wrong length": (
        _set_commitment(1, lambda d: "0x" + "aa" * 47),
        "invalid_keyfile",
        "commitments[1]",
    ),
    "commitment off curve": (_set_commitment(1, lambda d: _off_curve_g1()), "invalid_point", None),
    "commitment at infinity": (
        _set_commitment(0, lambda d: _hex(b"\xc0" + bytes(47))),
        "invalid_point",
        None,
    ),
    "commitment replaced": (
        _set_commitment(1, lambda d: _hex(bls.secret_to_public_key(7))),
        "committee_mismatch",
        "committee_id",
    ),
    "commitment replaced and id fixed": (
        _set_commitment(1, lambda d: _hex(bls.secret_to_public_key(7)), fix_id=True),
        "invalid_share",
        "secret",
    ),
}


@pytest.mark.parametrize("name", list(SHARE_CORRUPTIONS))
def test_corrupted_share_file_is_rejected(
    dealt: Dealt, share_document: dict[str, Any], name: str
) -> None:
    mutate, code, field = SHARE_CORRUPTIONS[name]
    document = copy.deepcopy(share_document)
    mutate(document, dealt)
    with pytest.raises(CommitteeError) as excinfo:
        keyfiles.decode_share_file(json.dumps(document))
    assert excinfo.value.code == code, excinfo.value.message
    if field is not None:
        assert excinfo.value.data.get("field") == field
    # Never echo secret material into an error.
    assert share_document["secret"][2:] not in str(excinfo.value.to_dict())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '"a string"',
        '{"kind": "blockspace-committee-share", "kind": "blockspace-committee-share"}',
        b"\xff\xfe\x00garbage",
    ],
)
def test_non_documents_are_rejected(text: str | bytes) -> None:
    with pytest.raises(CommitteeError) as excinfo:
        keyfiles.decode_share_file(text)
    assert excinfo.value.code == "invalid_keyfile"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_byte_edits_never_load_a_different_share(dealt: Dealt, data: st.DataObject) -> None:
    original = keyfiles.encode_share_file(dealt.shares[4], dealt.committee).encode()
    position = data.draw(st.integers(min_value=0, max_value=len(original) - 1), label="position")
    replacement = data.draw(st.integers(min_value=0, max_value=255), label="byte")
    edited = original[:position] + bytes([replacement]) + original[position + 1 :]
    try:
        share, committee = keyfiles.decode_share_file(edited)
    except CommitteeError:
        return
    # An edit that still loads (hex case, whitespace) must load the very same share.
    assert share == dealt.shares[4]
    assert committee == dealt.committee


# --- corrupted committee files ----------------------------------------------------------------


def _set_member_key(i: int, value: Callable[[Dealt], str]) -> Mutation:
    def mutate(document: dict[str, Any], dealt: Dealt) -> None:
        document["member_public_keys"][i] = value(dealt)

    return mutate


def _swap_members(document: dict[str, Any], dealt: Dealt) -> None:
    keys = document["member_public_keys"]
    keys[3], keys[4] = keys[4], keys[3]


def _drop_last_member(document: dict[str, Any], dealt: Dealt) -> None:
    document["member_public_keys"].pop()


COMMITTEE_CORRUPTIONS: dict[str, tuple[Mutation, str, str | None]] = {
    "share kind": (_set("kind", "blockspace-committee-share"), "invalid_keyfile", "kind"),
    "missing group key": (_drop("group_public_key"), "invalid_keyfile", "group_public_key"),
    "swapped member keys": (_swap_members, "committee_mismatch", "member_public_keys[3]"),
    "member key missing": (_drop_last_member, "committee_mismatch", "member_public_keys"),
    "member key off curve": (_set_member_key(2, lambda d: _off_curve_g1()), "invalid_point", None),
    "member key bad hex": (
        _set_member_key(2, lambda d: "0x" + "g" * 96),
        "invalid_keyfile",
        "member_public_keys[2]",
    ),
    "group key replaced": (
        _set("group_public_key", _hex(bls.secret_to_public_key(11))),
        "committee_mismatch",
        "group_public_key",
    ),
    "group key at infinity": (
        _set("group_public_key", _hex(b"\xc0" + bytes(47))),
        "invalid_point",
        None,
    ),
    "committee id edited": (_set("committee_id", "0x" + "cd" * 32), "committee_mismatch", None),
    "group commitment replaced and id fixed": (
        _set_commitment(0, lambda d: _hex(bls.secret_to_public_key(7)), fix_id=True),
        "committee_mismatch",
        "group_public_key",
    ),
    "commitment replaced and id fixed": (
        _set_commitment(2, lambda d: _hex(bls.secret_to_public_key(7)), fix_id=True),
        "committee_mismatch",
        "member_public_keys[0]",
    ),
    "n changed": (_set("n", 9), "committee_mismatch", "member_public_keys"),
}


@pytest.mark.parametrize("name", list(COMMITTEE_CORRUPTIONS))
def test_corrupted_committee_file_is_rejected(
    dealt: Dealt, committee_document: dict[str, Any], name: str
) -> None:
    mutate, code, field = COMMITTEE_CORRUPTIONS[name]
    document = copy.deepcopy(committee_document)
    mutate(document, dealt)
    with pytest.raises(CommitteeError) as excinfo:
        keyfiles.decode_committee_file(json.dumps(document))
    assert excinfo.value.code == code, excinfo.value.message
    if field is not None:
        assert excinfo.value.data.get("field") == field


# --- golden vector ----------------------------------------------------------------------------

VECTOR_PATH = Path(__file__).parent / "vectors" / "threshold_3_of_4.json"


def test_golden_vector_is_reproduced_exactly() -> None:
    # If this fails, dealing, the committee id or the file format changed: every existing key
    # file would stop loading. Bump FORMAT_VERSION and keep a loader for the old one instead.
    vector = json.loads(VECTOR_PATH.read_text())
    seed = bytes.fromhex(vector["seed"][2:])
    message = bytes.fromhex(vector["message"][2:])
    committee, shares = threshold.deal(vector["n"], vector["t"], seed)
    assert json.loads(keyfiles.encode_committee_file(committee)) == vector["committee"]
    assert keyfiles.decode_committee_file(json.dumps(vector["committee"])) == committee
    assert [_hex(bls.secret_to_bytes(s.secret)) for s in shares] == [
        s["secret"] for s in vector["shares"]
    ]
    partials = {p["index"]: bytes.fromhex(p["signature"][2:]) for p in vector["partials"]}
    assert {s.index: _hex(threshold.partial_sign(s, message)) for s in shares} == {
        i: _hex(p) for i, p in partials.items()
    }
    signature = bytes.fromhex(vector["signature"][2:])
    for subset in ((1, 2, 3), (1, 2, 4), (1, 3, 4), (2, 3, 4)):
        assert threshold.combine({i: partials[i] for i in subset}, 3, 4) == signature
    assert bls.verify(committee.group_public_key, message, signature)
