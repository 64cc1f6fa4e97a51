"""Prometheus metrics, one registry per app (no module-level singletons).

Nothing here may reveal a pending bid (docs/metrics.md lists every metric and what it can tell).
Intake counts (bids accepted, requests refused, the store's per-bid latency) are therefore staged
per slot and published only when that slot closes: between two closes ``/metrics`` does not move
whatever arrives. Everything else is either measured at a close or says nothing about bids.
"""

from __future__ import annotations

import bisect
from collections import Counter as Tally
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

STORE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


@dataclass
class _Counts:
    """Intake counts of one slot (or, once published, of every closed slot)."""

    bids: Tally[str] = field(default_factory=Tally)  # by transport
    refusals: Tally[tuple[str, str]] = field(default_factory=Tally)  # by (transport, code)
    store_buckets: list[int] = field(default_factory=lambda: [0] * (len(STORE_BUCKETS) + 1))
    store_sum: float = 0.0

    def add(self, other: _Counts) -> None:
        self.bids.update(other.bids)
        self.refusals.update(other.refusals)
        for i, n in enumerate(other.store_buckets):
            self.store_buckets[i] += n
        self.store_sum += other.store_sum


class ClosedSlotTally(Collector):
    """Intake counts staged per (rollup, slot) and published when the slot closes.

    A refusal names no rollup (many are refused before one is known): it is staged under the
    slot alone and published when any rollup closes that slot. Staged slots are bounded by the
    intake window (open slot .. open + max_slots_ahead) times the rollups served.
    """

    def __init__(self) -> None:
        self._staged: dict[tuple[int | None, int], _Counts] = {}
        self._published = _Counts()

    def _slot(self, rollup: int | None, slot: int) -> _Counts:
        counts = self._staged.get((rollup, slot))
        if counts is None:
            counts = self._staged[(rollup, slot)] = _Counts()
        return counts

    def stage_bid(self, rollup: int, slot: int, transport: str, store_seconds: float) -> None:
        counts = self._slot(rollup, slot)
        counts.bids[transport] += 1
        counts.store_buckets[bisect.bisect_left(STORE_BUCKETS, store_seconds)] += 1
        counts.store_sum += store_seconds

    def stage_refusal(self, transport: str, code: str, slot: int | None) -> None:
        """``slot`` None publishes at once (refusals that say nothing about open slots)."""
        counts = self._published if slot is None else self._slot(None, slot)
        counts.refusals[(transport, code)] += 1

    def publish_through(self, rollup: int, slot: int) -> None:
        """Publish what was staged for ``rollup`` (and for no rollup) up to ``slot``."""
        for key in [k for k in self._staged if k[1] <= slot and k[0] in (rollup, None)]:
            self._published.add(self._staged.pop(key))

    def collect(self) -> Iterator[Metric]:
        p = self._published
        bids = CounterMetricFamily(
            "blockspace_bids_accepted",
            "Bids acknowledged, counted when their slot closes",
            labels=["transport"],
        )
        for transport, n in sorted(p.bids.items()):
            bids.add_metric([transport], n)
        yield bids
        refused = CounterMetricFamily(
            "blockspace_requests_rejected",
            "Requests refused, by stable error code (intake: counted when the slot closes)",
            labels=["transport", "code"],
        )
        for (transport, code), n in sorted(p.refusals.items()):
            refused.add_metric([transport, code], n)
        yield refused
        store = HistogramMetricFamily(
            "blockspace_store_seconds",
            "Store latency by operation (append_bid: counted when the bid's slot closes)",
            labels=["op"],
        )
        cumulative, buckets = 0, []
        for bound, n in zip((*STORE_BUCKETS, float("inf")), p.store_buckets, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
        store.add_metric(["append_bid"], buckets, p.store_sum)
        yield store


class StoreFaults(Collector):
    """``blockspace_store_faults_total{kind}``: faults the Redis store handled, read live from
    its ``faults`` counter (replica_timeout, slot_moved, write_failed; docs/redis.md)."""

    def __init__(self, faults: Mapping[str, int]) -> None:
        self._faults = faults

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "blockspace_store_faults",
            "Store faults: a replica not confirming in time, a cluster slot moved, a failed write",
            labels=["kind"],
        )
        for kind in ("replica_timeout", "slot_moved", "write_failed"):
            family.add_metric([kind], self._faults.get(kind, 0))
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._store_watched = False
        self.intake = ClosedSlotTally()
        self.registry.register(self.intake)
        self.slot_close_seconds = Histogram(
            "blockspace_slot_close_seconds",
            "From a slot's deadline to its stored result",
            ["phase"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.slot_bids = Gauge(
            "blockspace_slot_bids",
            "Bids in the last closed slot",
            ["rollup"],
            registry=self.registry,
        )
        self.websocket_connections = Gauge(
            "blockspace_websocket_connections", "Open websocket connections", registry=self.registry
        )
        self.system_faults = Counter(
            "blockspace_system_faults",
            "Internal errors (log level error)",
            ["where"],
            registry=self.registry,
        )
        # Close leases (docs/redis.md, "Close leases and fencing").
        self.close_fenced = Counter(
            "blockspace_close_fenced",
            "Writes of a slot's close refused for a stale fencing token (another process "
            "took the close over)",
            ["where"],
            registry=self.registry,
        )
        self.close_takeovers = Counter(
            "blockspace_close_takeovers",
            "Slot closes taken over after the closer's lease expired unfinished",
            registry=self.registry,
        )
        self.close_leases_lost = Counter(
            "blockspace_close_leases_lost",
            "Close leases this process found taken over (or lapsed) while it was closing",
            registry=self.registry,
        )

    def watch_store(self, store: object) -> None:
        """Export the store's fault counters, if it keeps any (the Redis store does)."""
        faults = getattr(store, "faults", None)
        if isinstance(faults, Mapping) and not self._store_watched:
            self._store_watched = True  # one store per registry (one engine per app)
            self.registry.register(StoreFaults(faults))

    def count_bid(self, rollup: int, slot: int, transport: str, store_seconds: float) -> None:
        """An acknowledged bid (and its store latency), published when its slot closes."""
        self.intake.stage_bid(rollup, slot, transport, store_seconds)

    def count_refusal(self, transport: str, code: str, slot: int | None) -> None:
        """A refused request, published when ``slot`` closes (None: at once)."""
        self.intake.stage_refusal(transport, code, slot)

    def slot_closed(self, rollup: int, slot: int) -> None:
        """Publish the intake counts of ``rollup``'s slots up to ``slot``, now closed."""
        self.intake.publish_through(rollup, slot)
