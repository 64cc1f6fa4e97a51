"""Serving an app over HTTP/1.1: uvicorn's h11 protocol with a request read timeout and
connection caps, so slow or idle clients cannot hold the server's connections (slowloris).

- Every request must arrive in full (request line, headers and body) within ``read_timeout_s``
  of its first byte (of the connection's opening, for its first request). A request still
  incomplete then gets ``408`` (when any of it came) and the connection is closed. Idle
  keep-alive connections are closed after ``keep_alive_s`` (uvicorn's own timer).
- At most ``max_connections`` connections are open at once (HTTP and websocket), and at most
  ``max_connections_per_client`` from one client address; a connection over either cap gets
  ``503`` and is closed at once, before anything of it is read.

uvicorn has ``limit_concurrency`` and ``timeout_keep_alive`` but no read timeout, and counts
connections only once a request has arrived; both are added here by subclassing its h11 protocol
(the protocol it serves with when httptools is not installed, as here).
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from node.settings import SETTINGS_ENV, Settings

_SERVICE_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\ntoo many clients"
)
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 24\r\nconnection: close\r\n\r\nrequest read timed out\r\n"
)
# h11 states in which the peer is still sending the current request.
_READING = (h11.IDLE, h11.SEND_BODY)


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a read timeout and connection caps (class attributes set by
    ``bounded_protocol``, one subclass per server)."""

    read_timeout_s: ClassVar[float]
    max_connections: ClassVar[int]
    max_connections_per_client: ClassVar[int]
    # Open transports by client host, this server's (websockets included, until they end).
    by_client: ClassVar[dict[str, set[asyncio.BaseTransport]]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None
        self._request_began = False
        self._host = ""

    # --- connections ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._host = self.client[0] if self.client else ""
        peers = self.by_client.setdefault(self._host, set())
        # Verify that the connection is under both caps (counting itself)
        if (
            len(self.connections) > self.max_connections
            or len(peers) >= self.max_connections_per_client
        ):
            self.logger.info("refused a connection from %s: connection cap", self._host)
            transport.write(_SERVICE_UNAVAILABLE)
            transport.close()
            return
        peers.add(transport)
        self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        self._release()
        super().connection_lost(exc)

    def _release(self) -> None:
        peers = self.by_client.get(self._host)
        if peers is not None:
            peers.discard(self.transport)
            if not peers:
                del self.by_client[self._host]

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # The websocket protocol takes the transport over: stop the read timer, and give the
        # client's place back only when the websocket ends.
        self._cancel_read_timer()
        super().handle_websocket_upgrade(event)
        ws = self.transport.get_protocol()
        ws_lost = ws.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            self._release()
            ws_lost(exc)

        ws.connection_lost = connection_lost  # type: ignore[method-assign]

    # --- the read timeout ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._read_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_read_timer()  # the first byte of a request on a kept-alive connection
        self._request_began = True
        super().data_received(data)
        if self.conn.their_state not in _READING:
            self._cancel_read_timer()  # the whole request is in (or the connection is done)

    def on_response_complete(self) -> None:
        self._request_began = False
        super().on_response_complete()

    def _arm_read_timer(self) -> None:
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing() or self.conn.their_state not in _READING:
            return
        started = self.cycle is not None and self.cycle.response_started
        if self._request_began and not started:
            self.transport.write(_REQUEST_TIMEOUT)
        self.logger.info("closed a connection from %s: request read timed out", self._host)
        self.transport.close()


def bounded_protocol(
    *, read_timeout_s: float, max_connections: int, max_connections_per_client: int
) -> type[BoundedH11Protocol]:
    """A protocol class for one server with these limits."""
    return type(
        "BoundedH11Protocol",
        (BoundedH11Protocol,),
        {
            "read_timeout_s": read_timeout_s,
            "max_connections": max_connections,
            "max_connections_per_client": max_connections_per_client,
            "by_client": {},
        },
    )


def compute_protocol(settings: Settings) -> type[BoundedH11Protocol]:
    """The protocol class serving with ``settings``' HTTP limits."""
    return bounded_protocol(
        read_timeout_s=settings.http_read_timeout_s,
        max_connections=settings.http_max_connections,
        max_connections_per_client=settings.http_max_connections_per_client,
    )


@functools.cache
def _worker_protocol_class() -> type[BoundedH11Protocol]:
    return compute_protocol(Settings.model_validate_json(os.environ[SETTINGS_ENV]))


def worker_protocol(**kwargs: Any) -> BoundedH11Protocol:
    """Protocol factory for worker processes (``serve --workers``), which uvicorn can only name by
    an import string: limits from the settings in the environment, as ``create_app_from_env``."""
    return _worker_protocol_class()(**kwargs)


def server_options(settings: Settings, *, workers: int = 1) -> dict[str, Any]:
    """uvicorn options that serve with ``settings``' HTTP limits (docs/protocol.md)."""
    return {
        "http": compute_protocol(settings) if workers == 1 else "node.server:worker_protocol",
        "timeout_keep_alive": settings.http_keep_alive_s,
    }
