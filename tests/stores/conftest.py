"""Fixtures: the ``store`` under test, once embedded (MemoryStore) and once on Redis.

Redis tests share the session's ``redis_server`` (ours, created for this run) and use one
logical database reserved for store tests, flushed before every test, so no test sees another's
keys. The cluster variant runs the same tests on the session's ``redis_cluster`` (3 masters, 3
replicas; flushed the same way, on every master). Async tests run on asyncio through anyio's
pytest plugin (no extra dependency).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from node.stores.base import Store
from node.stores.memory import MemoryStore
from node.stores.redis import RedisStore
from tests.redis_server import RedisClusterServers, RedisServer

# The logical database store tests own on the shared session server.
STORE_DB = 13


def db_url(server: RedisServer, db: int) -> str:
    return f"redis://127.0.0.1:{server.port}/{db}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        # A real Redis Cluster of 3 masters and 3 replicas (tests/redis_server.py).
        pytest.param("cluster", marks=[pytest.mark.redis, pytest.mark.slow]),
    ]
)
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory"
    if request.param == "cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        return cluster.url
    server: RedisServer = request.getfixturevalue("redis_server")
    return db_url(server, STORE_DB)


async def open_test_store(url: str) -> Store:
    """A connected store with an empty database (Redis) or a new instance (memory)."""
    if url == "memory":
        return MemoryStore()
    store = RedisStore(url)
    await store.connect()
    await store.redis.flushdb()
    return store


@pytest.fixture
async def store(store_url: str, anyio_backend: str) -> AsyncIterator[Store]:
    s = await open_test_store(store_url)
    yield s
    await s.aclose()
