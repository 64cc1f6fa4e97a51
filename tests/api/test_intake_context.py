"""The intake context is built once and rebuilt when what it holds changes: a protected tx
that arrives (or leaves with its slot's close) and the committee are never read stale."""

from __future__ import annotations

from api.engine import Engine
from auction.presets import MAINNET, Rollup
from auction.transactions import decode_transaction
from auction.types import PublicTx
from node.metrics import Metrics
from node.stores.memory import MemoryStore
from tests.factories import CHAIN, key, tx


def _engine() -> Engine:
    return Engine(store=MemoryStore(), rollups={CHAIN: Rollup(CHAIN), 10: Rollup(10)},
                  preset=MAINNET, slot_ms=2000, clock_ms=lambda: 2_000_005, metrics=Metrics())


def test_context_is_reused_until_something_changes() -> None:
    intake = _engine().intake
    assert intake.intake_context(None) is intake.intake_context(None)
    assert intake.intake_context(CHAIN) is intake.intake_context(CHAIN)
    assert intake.intake_context(CHAIN) is not intake.intake_context(10)


def test_protected_arrival_and_close_rebuild_the_context() -> None:
    engine = _engine()
    intake = engine.intake
    before = intake.intake_context(None)
    ptx = PublicTx(CHAIN, decode_transaction(tx(key(3), nonce=0)), 0, protected=True)
    engine.chains[CHAIN].arrived(ptx)
    # Verify a protected tx that just arrived is protected at once, at every endpoint of its chain
    assert ptx.tx.hash in intake.intake_context(None).protected_hashes
    assert ptx.tx.hash in intake.intake_context(CHAIN).protected_hashes
    assert ptx.tx.hash not in intake.intake_context(10).protected_hashes
    assert ptx.tx.hash not in before.protected_hashes
    # A public (unprotected) tx protects nothing
    public = PublicTx(CHAIN, decode_transaction(tx(key(4), nonce=0)), 0, protected=False)
    engine.chains[CHAIN].arrived(public)
    assert public.tx.hash not in intake.intake_context(None).protected_hashes
    engine.chains[CHAIN].start(engine.chains[CHAIN].head, (), closed_through=5)
    assert ptx.tx.hash not in intake.intake_context(None).protected_hashes


def test_committee_change_rebuilds_the_context() -> None:
    engine = _engine()
    assert engine.intake.intake_context(None).committee_id is None
    engine.encryption_committee_id = b"\x01" * 32
    assert engine.intake.intake_context(None).committee_id == b"\x01" * 32


def test_unserved_endpoints_are_not_cached() -> None:
    intake = _engine().intake
    for rollup in range(1_000, 1_100):
        intake.intake_context(rollup)
    assert set(intake._contexts) <= {None, CHAIN, 10}
