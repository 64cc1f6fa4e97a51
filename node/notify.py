"""Server-pushed notifications: per-searcher bundle events and slot boundaries."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

Message = dict[str, Any]


class Subscriber:
    """One connection's outbox. Bounded: a consumer that falls far behind loses notifications
    (counted in ``dropped``) rather than growing the server's memory without limit."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, msg: Message) -> None:
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.dropped += 1


class Notifier:
    def __init__(self) -> None:
        self._searchers: dict[str, set[Subscriber]] = defaultdict(set)
        self._slots: set[Subscriber] = set()
        self._blocks: set[Subscriber] = set()

    def watch_searcher(self, searcher: str, sub: Subscriber) -> None:
        self._searchers[searcher].add(sub)

    def watches_searcher(self, searcher: str) -> bool:
        """Whether any connection is subscribed to ``searcher``'s bundle events (the intake
        builds a notification only for someone)."""
        return bool(self._searchers.get(searcher))

    def watch_slots(self, sub: Subscriber) -> None:
        self._slots.add(sub)

    def watch_blocks(self, sub: Subscriber) -> None:
        self._blocks.add(sub)

    def forget(self, sub: Subscriber) -> None:
        for subs in self._searchers.values():
            subs.discard(sub)
        self._slots.discard(sub)
        self._blocks.discard(sub)

    def to_searcher(self, searcher: str, kind: str, payload: dict[str, Any]) -> None:
        subs = self._searchers.get(searcher)
        if not subs:
            return
        msg = {
            "jsonrpc": "2.0",
            "method": "bs_subscription",
            "params": {"subscription": "bundles", "result": {"event": kind, **payload}},
        }
        for sub in subs:
            sub.offer(msg)

    def to_slot_watchers(self, payload: dict[str, Any]) -> None:
        msg = {
            "jsonrpc": "2.0",
            "method": "bs_subscription",
            "params": {"subscription": "slots", "result": payload},
        }
        for sub in self._slots:
            sub.offer(msg)

    def to_block_watchers(self, payload: dict[str, Any]) -> None:
        msg = {
            "jsonrpc": "2.0",
            "method": "bs_subscription",
            "params": {"subscription": "blocks", "result": payload},
        }
        for sub in self._blocks:
            sub.offer(msg)
