"""Fuzzing the key-file decoders (``committee.keyfiles``) beyond tests/committee/test_keyfiles.py
(which edits single bytes of a share file and lists named corruptions).

Inputs: arbitrary JSON documents; share and committee files with fields replaced, retyped,
dropped or added (``mutated``), and committee files with random byte edits; deeply nested JSON.

Property: ``decode_share_file`` / ``decode_committee_file`` return the very share and committee
that were written, or raise a ``CommitteeError`` with a stable code; never anything else, and
an error never echoes the secret.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, note
from hypothesis import strategies as st

from committee import keyfiles
from committee.errors import CommitteeError
from tests.fuzz.budget import fuzz, timeout_s
from tests.fuzz.committee_world import World, build_world
from tests.fuzz.json_values import differences, json_values, mutated
from tests.fuzz.signed_txs import byte_edits

pytestmark = pytest.mark.timeout(timeout_s(120))

ROOT = Path(__file__).resolve().parents[2]
_CODES = {"invalid_keyfile", "invalid_scalar", "invalid_point", "invalid_committee_params",
          "invalid_member_index", "invalid_share", "committee_mismatch"}


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


def load(world: World, text: str | bytes) -> None:
    """Decode ``text`` as both kinds of file; check the property."""
    secret = keyfiles.encode_share_file(world.shares[1], world.committee)
    secret_hex = json.loads(secret)["secret"][2:]
    for decode, expected in (
        (keyfiles.decode_share_file, (world.shares[1], world.committee)),
        (keyfiles.decode_committee_file, world.committee),
    ):
        try:
            got = decode(text)
        except CommitteeError as exc:
            assert exc.code in _CODES, exc.code
            assert secret_hex not in str(exc.to_dict()).lower()
            continue
        if decode is keyfiles.decode_share_file:
            assert got == expected or got[1] == world.committee  # another member's share
        else:
            assert got == expected


@fuzz(100)
@given(doc=json_values())
@example(doc={"kind": "blockspace-committee-share", "version": 1.0})
@example(doc={"kind": "blockspace-committee", "n": 2**300})
def test_arbitrary_documents_are_refused(world: World, doc: Any) -> None:
    load(world, json.dumps(doc))


@fuzz(150)
@given(data=st.data(), which=st.sampled_from(["share", "committee"]))
def test_edited_fields_never_load_another_key(
    world: World, data: st.DataObject, which: str
) -> None:
    text = (keyfiles.encode_share_file(world.shares[1], world.committee) if which == "share"
            else keyfiles.encode_committee_file(world.committee))
    doc = json.loads(text)
    edited = data.draw(mutated(doc), label="edited")
    for line in differences(doc, edited):
        note(line)
    load(world, json.dumps(edited))


@fuzz(100)
@given(data=st.data())
def test_byte_edits_of_a_committee_file_never_load_another_committee(
    world: World, data: st.DataObject
) -> None:
    text = keyfiles.encode_committee_file(world.committee).encode()
    load(world, data.draw(byte_edits(text), label="edited"))


@pytest.mark.parametrize("recursion_limit", [1_000, 100_000])
def test_deep_nesting_is_refused_whatever_the_recursion_limit(recursion_limit: int) -> None:
    """json's C scanner recursed until the recursion limit: a RecursionError escaped, and once
    a library had raised the limit (py_ecc, imported by eth-account, sets 100,000) a 1 MB
    key file of brackets crashed the process (SIGSEGV). A subprocess, so a crash is a failure
    here rather than the end of the test run."""
    code = (
        f"import sys; sys.setrecursionlimit({recursion_limit})\n"
        "from committee import keyfiles\n"
        "from committee.errors import InvalidKeyfile\n"
        "for text in ('[' * 100_000, '{\"a\":' * 300_000, '[' * 1_000_000):\n"
        "    try:\n"
        "        keyfiles.decode_committee_file(text)\n"
        "    except InvalidKeyfile:\n"
        "        print('refused')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["refused"] * 3
