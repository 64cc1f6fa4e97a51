"""Bid stores: one interface (``base.Store``), an embedded and a Redis implementation."""

from __future__ import annotations

from node.stores.base import IntakeLimits, Store


async def open_store(url: str, **options: object) -> Store:
    """``memory`` for the embedded store, ``redis://...`` for Redis,
    ``redis+cluster://host:port,...`` for a Redis Cluster."""
    if url == "memory":
        from node.stores.memory import MemoryStore

        return MemoryStore()
    if url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
        from node.stores.redis import RedisStore

        store = RedisStore(url, **options)  # type: ignore[arg-type]
        await store.connect()
        return store
    raise ValueError(f"unknown store {url!r}: use 'memory', a redis:// or redis+cluster:// URL")


__all__ = ["IntakeLimits", "Store", "open_store"]
