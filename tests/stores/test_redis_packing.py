"""The Redis store's hiredis command packing writes the very bytes redis-py's would."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from node.stores.redis import HiredisConnection

COMMANDS = [
    ("EVALSHA", "ab" * 20, 2, "bs:{s1}:log", b"\x00\xff payload", 512, -1, "", "é"),
    ("CONFIG SET", "appendfsync", "everysec"),
    (b"CONFIG GET", "appendonly"),
    ("XADD", "k", "*", "f", 0, "g", 10**30),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_hiredis_packing_matches_redis_py(command: tuple[object, ...]) -> None:
    assert b"".join(HiredisConnection().pack_command(*command)) == b"".join(
        Connection().pack_command(*command)
    )


def test_unpackable_argument_is_a_data_error() -> None:
    with pytest.raises(DataError):
        HiredisConnection().pack_command("SET", "k", object())
