"""Fixtures for the compat tests: client environments, a live server, a slot watcher.

The building blocks live in ``environments.py`` (cached client installs) and ``live_server.py``
(the server process and a searcher's calls); this module only wires them into pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.compat.environments import (
    NodeEnv,
    ensure_ethers_env,
    ensure_flashbots_venv,
    is_compat_skipped,
)
from tests.compat.live_server import BlockspaceServer, SlotWatcher, start_server


def _skip_if_asked() -> None:
    if is_compat_skipped():
        pytest.skip("BLOCKSPACE_SKIP_COMPAT=1")


@pytest.fixture(scope="session")
def flashbots_python() -> Path:
    """The python of a cached virtualenv holding the PyPI ``flashbots`` package."""
    _skip_if_asked()
    return ensure_flashbots_venv()


@pytest.fixture(scope="session")
def ethers_env() -> NodeEnv:
    """Node and a cached node_modules holding ``@flashbots/ethers-provider-bundle``."""
    _skip_if_asked()
    return ensure_ethers_env()


@pytest.fixture(scope="session")
def blockspace_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlockspaceServer]:
    _skip_if_asked()
    server = start_server(tmp_path_factory.mktemp("blockspace-serve"))
    yield server
    server.stop()


@pytest.fixture
def slot_watcher(blockspace_server: BlockspaceServer) -> Iterator[SlotWatcher]:
    """Subscribed at setup, so every slot the test targets afterwards is seen closing."""
    with connect(blockspace_server.ws_url, open_timeout=10) as ws:
        yield SlotWatcher(ws)
