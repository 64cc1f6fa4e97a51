"""Prometheus metrics, one registry per app (no module-level singletons)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.bids_accepted = Counter(
            "blockspace_bids_accepted", "Bids acknowledged", ["transport"], registry=self.registry
        )
        self.requests_rejected = Counter(
            "blockspace_requests_rejected",
            "Requests refused, by stable error code",
            ["transport", "code"],
            registry=self.registry,
        )
        self.slot_close_seconds = Histogram(
            "blockspace_slot_close_seconds",
            "From a slot's deadline to its stored result",
            ["phase"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.store_seconds = Histogram(
            "blockspace_store_seconds",
            "Store latency by operation",
            ["op"],
            buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
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
