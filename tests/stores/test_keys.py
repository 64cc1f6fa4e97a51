"""Every Redis key carries exactly one cluster hash tag, built by keys.py's tag helpers.

A key without a tag, or with braces of its own, would land on an arbitrary cluster shard and a
script touching it with a slot's other keys would fail with CROSSSLOT (docs/redis.md, "Redis
Cluster"). New key templates are checked here as soon as they are added to keys.py.
"""

from __future__ import annotations

import inspect
import re

from node.stores import keys

# Names keys.py exports that are not key templates, or keys only ever used alone.
NOT_TAGGED = {
    "hash_tag",
    "slot_tag",
    "rollup_tag",
    "index_uuid",  # a field inside a slot's index hash, not a key
    "cancel_answer",  # read and written alone (GET, SET NX): any shard
}
SAMPLE_ARGS = {
    "rollup": 167001,
    "slot": 42,
    "searcher": "0x" + "ab" * 20,
    "outcome": "won",
    "bucket": 7,
    "cancel_id": "0x" + "cd" * 32,
    "replacement_uuid": "0123456789abcdef0123456789abcdef",
    "group": "g",
    "account": "searcher:0x" + "ab" * 20,
}


def key_templates() -> dict[str, str]:
    """Each key function of keys.py called with sample arguments."""
    out = {}
    for name, fn in inspect.getmembers(keys, inspect.isfunction):
        if fn.__module__ != keys.__name__ or name.startswith("_") or name in NOT_TAGGED:
            continue
        params = inspect.signature(fn).parameters
        out[name] = fn(**{p: SAMPLE_ARGS[p] for p in params})
    return out


def test_every_key_has_one_tag_from_the_helpers() -> None:
    allowed = {keys.slot_tag(42), keys.rollup_tag(167001), keys.COMMITTEE_TAG, keys.LEDGER_TAG}
    templates = key_templates()
    assert len(templates) >= 29  # the walk found the templates (29 when written)
    for name, key in templates.items():
        tags = re.findall(r"\{[^}]*\}", key)
        assert len(tags) == 1 and key.count("{") == 1, f"{name}: {key} needs exactly one tag"
        assert tags[0] in allowed, f"{name}: {key} uses a tag not built by keys.py's helpers"


def test_a_slots_intake_keys_share_one_tag_across_rollups() -> None:
    # append_copies touches one slot's keys in every rollup a bundle spans, in one script
    tags = {
        re.findall(r"\{[^}]*\}", fn(rollup, 42))[0]
        for rollup in (1, 10, 167001)
        for fn in (keys.slot_log, keys.slot_closed, keys.slot_limits, keys.slot_index)
    }
    assert tags == {keys.slot_tag(42)}
