"""The dashboard in a real headless Chromium (Debian's), driven over the DevTools protocol: it
loads from a real server on loopback, reads the data API, draws every chart with data, and a
screenshot of the whole page is taken (kept in the test's tmp dir, and copied to
$BLOCKSPACE_ARTIFACTS if set)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from tests.data.slots import app_with_history

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIRST_SLOT, SLOTS = 1_000, 120
TIMEOUT_S = 30.0


@pytest.fixture
def server() -> Iterator[str]:
    """The app (history of 120 slots on two rollups, up to 3 cross-rollup bundles a slot)
    served by uvicorn on a free loopback port."""
    app = app_with_history(
        range(FIRST_SLOT, FIRST_SLOT + SLOTS), bids_per_slot=(8, 40), seed=5, cross_per_slot=(0, 3)
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)  # uvicorn offers no started event to wait on
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[int]:
    """Headless Chromium with its DevTools endpoint on a free port; yields that port."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium is not installed (scripts/test installs Debian's)")
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,900",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT_S
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)  # chromium writes the file when ready; nothing to wait on
        yield int(port_file.read_text().split()[0])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class DevTools:
    """A minimal DevTools protocol client over one page's websocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def _next(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await self.ws.recv())
        if "method" in message:
            self.events.append(message)
        return message

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        mid = self.next_id
        await self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            message = await self._next()
            if message.get("id") == mid:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    async def wait_event(self, method: str) -> dict[str, Any]:
        while True:
            for event in self.events:
                if event["method"] == method:
                    self.events.remove(event)
                    return event
            await self._next()

    async def evaluate(self, expression: str) -> Any:
        reply = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(reply["exceptionDetails"])
        return reply["result"].get("value")


# Resolves once the page has rendered (or failed); the page sets <body data-state>.
WAIT_RENDERED = """
new Promise(resolve => {
  const state = () => document.body && document.body.dataset.state;
  const check = () => state() && state() !== "loading" && (resolve(state()), true);
  if (!check()) {
    new MutationObserver((_, observer) => check() && observer.disconnect())
      .observe(document.body, {attributes: true});
  }
})
"""

MEASURE = """
JSON.stringify({
  slots: Number(document.body.dataset.slots),
  revenueBars: document.querySelectorAll("#chart-revenue rect.bar").length,
  bidBars: document.querySelectorAll("#chart-bids rect.bar").length,
  priceDots: document.querySelectorAll("#chart-price circle").length,
  concentrationLines: document.querySelectorAll("#chart-concentration path.line").length,
  fairnessBars: document.querySelectorAll("#chart-fairness rect.bar").length,
  crossDots: document.querySelectorAll("#chart-cross circle").length,
  winners: document.querySelectorAll("#winners tbody tr").length,
  crossWinners: document.querySelectorAll("#winners tbody tr.cross").length,
  crossSpans: [...document.querySelectorAll("#winners tbody tr.cross td.rollups")]
    .map(td => td.textContent),
  crossColumn: [...document.querySelectorAll("#blocks tbody tr")]
    .map(tr => Number(tr.children[5].textContent)),
  rows: document.querySelectorAll("#blocks tbody tr").length,
  newestRow: document.querySelector("#blocks tbody tr td").textContent,
  failedBadges: document.querySelectorAll("#blocks .badge.failed").length,
  tiles: [...document.querySelectorAll("#tiles .tile")].map(t => t.textContent),
  ledgerTiles: [...document.querySelectorAll("#ledger-tiles .tile")].map(t => t.textContent),
  ledgerRows: [...document.querySelectorAll("#ledger-entries tbody tr")].map(r => r.className),
  slashings: document.querySelectorAll("#slashings tbody tr").length,
  status: document.querySelector("#status").textContent,
  foreign: performance.getEntriesByType("resource")
    .map(e => e.name).filter(n => !n.startsWith(location.origin)),
  height: document.documentElement.scrollHeight,
})
"""


async def render_dashboard(port: int, url: str, shot: Path) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
    page = next(t for t in targets if t["type"] == "page")
    async with connect(page["webSocketDebuggerUrl"], max_size=64 * 2**20) as ws:
        dt = DevTools(ws)
        await dt.call("Page.enable")
        await dt.call("Runtime.enable")
        await dt.call("Page.navigate", url=url)
        await dt.wait_event("Page.loadEventFired")
        state = await dt.evaluate(WAIT_RENDERED)
        measured: dict[str, Any] = json.loads(await dt.evaluate(MEASURE))
        measured["state"] = state
        measured["exceptions"] = [
            e["params"] for e in dt.events if e["method"] == "Runtime.exceptionThrown"
        ]
        # The whole page, at desktop width
        await dt.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=int(measured["height"]),
            deviceScaleFactor=1,
            mobile=False,
        )
        png = await dt.call("Page.captureScreenshot", format="png")
        shot.write_bytes(base64.b64decode(png["data"]))
    return measured


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_dashboard_renders_every_chart_with_data(
    server: str, chromium: int, tmp_path: Path
) -> None:
    shot = tmp_path / "dashboard.png"
    url = f"{server}/dashboard?refresh=0&rollup=167001"
    measured = asyncio.run(asyncio.wait_for(render_dashboard(chromium, url, shot), TIMEOUT_S))
    artifacts = os.environ.get("BLOCKSPACE_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "dashboard.png")

    assert measured["state"] == "loaded", measured["status"]
    assert measured["exceptions"] == []
    assert measured["foreign"] == []  # nothing loaded from anywhere but this server
    # The default window: the newest 100 of 120 closed slots, one mark per slot in each chart
    assert measured["slots"] == 100
    assert measured["revenueBars"] == 100
    assert measured["fairnessBars"] == 100
    assert measured["bidBars"] >= 100  # stacked: one rect per outcome present
    assert measured["priceDots"] == 100
    assert measured["concentrationLines"] == 2
    assert measured["rows"] == 12 and measured["newestRow"] == str(FIRST_SLOT + SLOTS - 1)
    assert len(measured["tiles"]) == 12
    assert any(t.startswith("slots100") for t in measured["tiles"])
    # Cross-rollup bundles: the share of revenue per slot (one dot per slot with revenue), both
    # tiles, a marker and the rollups spanned in the winners list, a count per block
    assert measured["crossDots"] == 100
    cross_tiles = [t for t in measured["tiles"] if t.startswith("cross-rollup")]
    assert len(cross_tiles) == 2 and all(t.endswith("%") for t in cross_tiles)
    assert measured["winners"] == 20
    assert 0 < measured["crossWinners"] < 20
    assert set(measured["crossSpans"]) == {"⇄ 10 + 167001"}
    assert sum(measured["crossColumn"]) > 0
    assert measured["status"].startswith(f"slots {FIRST_SLOT + 20}–{FIRST_SLOT + SLOTS - 1}")
    # The ledger panel: deposits, the bond, one slash (the reporter's reward, the burn)
    assert measured["ledgerTiles"][:2] == ["revenue credited0", "operator bond28.8"]
    assert measured["ledgerRows"][:3] == ["burn", "reward", "slash"]
    assert "deposit" in measured["ledgerRows"] and measured["slashings"] == 1
    width, height = png_size(shot)
    assert width == 1280 and height >= 900
    assert shot.stat().st_size > 40_000  # charts and text, not a blank page
