"""Encrypted bids end to end with real ``blockspace signer`` processes (issue 14, stage 2b):
plaintext and encrypted bundles sent in one slot win in one block the committee signs, after
t members committed to the slot's ciphertext set and released their key shares over HTTP, and
each member re-opened the slot itself before signing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from api.searcher import BundleEncryptor, SearcherKey, bundle_params, encrypted_bundle_params
from auction.slots import compute_deadline_ms
from auction.types import Evidence
from committee.records import signed_block_from_json
from committee.verify import verify_signed_block
from tests.committee.test_processes import GWEI, ROLLUP, Bidding, Cluster, settings_of

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def bundle_body(k: SearcherKey, slot: int, nonce: int, bid_wei: int) -> bytes:
    raw = k.sign_tx(type=2, chainId=ROLLUP, nonce=nonce, maxPriorityFeePerGas=2 * GWEI,
                    maxFeePerGas=100 * GWEI, gas=60_000, to="0x" + "42" * 20, value=0,
                    data=b"")  # fmt: skip
    return k.request("eth_sendBundle", [bundle_params([raw], slot, bid_wei=bid_wei)])


async def test_encrypted_and_plaintext_bids_win_in_one_signed_block(tmp_path: Path) -> None:
    with Cluster(tmp_path, 4, 3, settings_of(slot_ms=2000, signing_window_ms=4000)) as cluster:
        b = Bidding(cluster)
        await b.engine.start()
        try:
            slot = b.engine.open_slot() + 1  # a whole slot ahead to send in
            plain = []
            for i in range(2):
                await b.bid(slot, 1 + i, bid_wei=10**15 * (i + 1))
            sealed = []
            for i, seed in enumerate((11, 12)):
                k = SearcherKey.from_seed(seed)
                enc = BundleEncryptor(cluster.committee, slot, searcher=k.address)
                for j in range(2):
                    body = bundle_body(k, slot, 100 * seed + j, 10**15 * (5 + 2 * i + j))
                    params = encrypted_bundle_params(enc.encrypt(body))
                    call = k.request("bs_sendEncryptedBundle", [params])
                    answer = await b.engine.intake.submit_sealed_bundle(
                        params, searcher=k.address, evidence=Evidence(call, k.sign_body(call)),
                        endpoint_rollup=None, transport="http",
                    )  # fmt: skip
                    sealed.append(answer["bidId"])
            assert compute_deadline_ms(b.engine.clock, slot - 1) > b.engine.now_ms() - 2000
            published = []
            while not published or published[-1]["slot"] < slot:
                published.append(await b.next_published(timeout_s=60))
            outcome = next(p for p in published if p["slot"] == slot)
            plain = [o.bid.bid_id for o in (await b.engine.store.get_result(ROLLUP, slot)).outcomes
                     if o.bid.bid_id not in sealed]  # type: ignore[union-attr]  # fmt: skip
        finally:
            await b.stop()
            await asyncio.sleep(0)
    assert outcome["status"] == "signed", outcome
    signed = signed_block_from_json(outcome)
    verify_signed_block(signed, cluster.committee)
    winners = {w.bid_id for w in signed.block.bundles}
    assert set(sealed) <= winners and len(plain) == 2 and set(plain) <= winners
