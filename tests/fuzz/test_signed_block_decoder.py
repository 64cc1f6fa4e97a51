"""Fuzzing the signed-block decoder (``committee.records.signed_block_from_json``,
``block_from_json_strict``), its offline verification (``committee.verify``, what
``blockspace verify`` runs on a block from a third party) and the strict field readers of
``committee.wire`` they are built from.

Inputs: arbitrary JSON values; a signed block's JSON with parts replaced, retyped, dropped or
added (integers far beyond 64 bits, 5,000-digit wei strings, hex of the wrong length or case,
partials shuffled).

Property: decoding returns a ``SignedBlock`` or raises ``InvalidSignedBlock`` naming a field;
verifying a decoded block passes or raises ``InvalidSignedBlock``; a changed document that
still verifies is the same block under the same committee (only unsigned delivery fields such
as ``published_ms`` may differ). Each ``wire`` reader returns a value of its type and range or
raises ``FieldError``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import example, given, note
from hypothesis import strategies as st

from committee import wire
from committee.errors import InvalidSignedBlock
from committee.records import block_from_json_strict, signed_block_from_json, signed_block_to_json
from committee.verify import verify_signed_block
from tests.fuzz.budget import fuzz, timeout_s
from tests.fuzz.committee_world import World, build_world
from tests.fuzz.json_values import differences, json_values, mutated, to_json_bytes

pytestmark = pytest.mark.timeout(timeout_s(180))


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


def decode_and_verify(world: World, doc: Any) -> bool:
    """True if ``doc`` decodes and verifies; checks the property either way."""
    try:
        signed = signed_block_from_json(doc)
    except InvalidSignedBlock as exc:
        assert isinstance(exc.data.get("field"), str)
        return False
    try:
        verify_signed_block(signed, world.committee)
    except InvalidSignedBlock:
        return False
    assert signed.block == world.signed_block.block
    assert signed.committee_id == world.committee.committee_id
    return True


@fuzz(100)
@given(doc=json_values())
def test_arbitrary_json_is_refused(world: World, doc: Any) -> None:
    assert not decode_and_verify(world, doc)


@fuzz(150)
@given(data=st.data())
def test_edited_signed_blocks_never_verify_as_another_block(
    world: World, data: st.DataObject
) -> None:
    doc = signed_block_to_json(world.signed_block)
    under = data.draw(st.sampled_from([(), ("bundles",), ("partials",), ("txs",)]))
    edited = data.draw(mutated(doc, under=under, max_edits=3), label="edited")
    for line in differences(doc, edited):
        note(line)
    # What a reader gets from the wire: the document's JSON text read back by orjson
    try:
        read = orjson.loads(to_json_bytes(edited))
    except orjson.JSONDecodeError:
        return
    decode_and_verify(world, read)


def test_the_signed_block_verifies(world: World) -> None:
    assert decode_and_verify(world, signed_block_to_json(world.signed_block))


@fuzz(100)
@given(data=st.data())
def test_block_fields_are_read_strictly(world: World, data: st.DataObject) -> None:
    doc = signed_block_to_json(world.signed_block)
    edited = data.draw(mutated(doc, max_edits=2), label="edited")
    if not isinstance(edited, dict):
        return
    try:
        block = block_from_json_strict(edited)
    except wire.FieldError:
        return
    assert isinstance(block.revenue_wei, int) and 0 <= block.revenue_wei < 2**256
    assert all(isinstance(t, bytes) for t in block.txs)


# --- the field readers ------------------------------------------------------------------------

_HEX = re.compile(r"0x[0-9a-f]*")


@fuzz(200)
@given(value=json_values(), length=st.sampled_from([None, 0, 1, 20, 32]))
@example(value="1" * 5000, length=None)
@example(value="0x" + "ab" * 16 + " " + "cd" * 16, length=None)
@example(value="0x\u0661\u0662", length=None)
def test_wire_readers_return_their_type_or_refuse(value: Any, length: int | None) -> None:
    def read(reader: Any, *args: Any) -> Any:
        try:
            return reader(value, "f", *args)
        except wire.FieldError as exc:
            assert exc.field == "f" or exc.field.startswith("f[")
            return None

    n = read(wire.integer)
    assert n is None or (type(n) is int and 0 <= n < 2**64)
    w = read(wire.wei)
    assert w is None or (type(w) is int and 0 <= w < 2**256 and str(w) == value)
    t = read(wire.text)
    assert t is None or t == value
    b = read(wire.hex_bytes, length)
    assert b is None or (isinstance(b, bytes) and (length is None or len(b) == length))
    assert b is None or value.lower() == "0x" + b.hex()
    h = read(wire.hash_hex, length or 32)
    assert h is None or _HEX.fullmatch(h)
    items = read(wire.array, wire.integer)
    assert items is None or all(type(i) is int for i in items)
    o = read(wire.obj)
    if o is not None:
        try:
            wire.exact_keys(o, {"a", "b"}, "f.")
        except wire.FieldError as exc:
            assert exc.field.startswith("f.")
        else:
            assert set(o) <= {"a", "b"}
