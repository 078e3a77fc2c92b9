"""The publisher's connection to NATS, and what the server allows on it.

:class:`Link` opens the connection (failing fast on the first try), refuses a
server too old for version claims, sets the stream up with
:func:`cairn.stream_setup.ensure_stream` (as the projector does) and opens
fast-ingest batches when both the server and the caller want them, and single
publishes (:mod:`.acks`) for everything else. The publisher's parts read its state
(``connected``, ``closing``, ``fast``, ``acks``, ``max_payload``); what happens when the connection goes away is for the
:class:`ConnectionWatcher` given to :meth:`Link.open` (see :mod:`.outage`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol

from cairn_events import FAST_INGEST_SINCE, NATS_SERVER_REQUIRED, EventStream

from .acks import Acks
from .errors import StackUnavailableError
from .fast_ingest import FastIngest
from .settings import redact_url
from .stream_setup import ensure_stream

#: nats-server's default max_payload, until the server says its own.
DEFAULT_MAX_PAYLOAD = 1024 * 1024


class ConnectionWatcher(Protocol):
    """Told when the connection goes away, comes back, or is closed for good."""

    async def on_disconnected(self) -> None: ...

    async def on_reconnected(self) -> None: ...

    async def on_closed(self) -> None: ...


class Link:
    """One NATS connection to one stream: its JetStream context, batches, and limits.

    ``batches`` False keeps this publisher to one publish at a time even where the
    server takes batches; the stream is set up the same either way, since other
    publishers share it.
    """

    def __init__(
        self,
        nats_url: str,
        stream: EventStream,
        *,
        batches: bool,
        connect_timeout: float,
        ack_timeout: float,
    ) -> None:
        self.nats_url = nats_url
        self.stream = stream
        self.batches = batches
        self.connect_timeout = connect_timeout
        self.ack_timeout = ack_timeout
        self.nc: Any = None
        self.js: Any = None
        #: The batch sender; None while this publisher sends one event at a time.
        self.fast: FastIngest | None = None
        #: Single publishes and their acknowledgements; set by open().
        self.acks: Acks
        self.max_payload = DEFAULT_MAX_PAYLOAD
        #: Whether the connection is up right now (the watcher keeps it current).
        self.connected = False
        #: Set when the publisher closes the connection itself: not an outage.
        self.closing = False
        self._stream_batched = False  # the stream takes batches, as far as we know

    async def open(self, watcher: ConnectionWatcher) -> None:
        """Connect, check the server, make sure the stream exists; fail fast on the first try."""
        import nats

        nc = await nats.connect(
            self.nats_url,
            connect_timeout=self.connect_timeout,
            allow_reconnect=False,  # fail fast on the first connect (bad credentials, wrong port)
            reconnect_time_wait=0.2,
            disconnected_cb=watcher.on_disconnected,
            reconnected_cb=watcher.on_reconnected,
            closed_cb=watcher.on_closed,
            error_cb=_ignore_error,
        )
        server = nc.connected_server_version
        if (server.major, server.minor) < NATS_SERVER_REQUIRED:
            self.closing = True  # this close is ours, not an outage
            await nc.close()
            required = ".".join(map(str, NATS_SERVER_REQUIRED))
            raise StackUnavailableError(
                f"NATS at {redact_url(self.nats_url)} runs nats-server "
                f"{server.major}.{server.minor}.{server.patch}; Cairn needs "
                f"{required} or newer (artifact versions are claimed with "
                f"Nats-Expected-Last-Subject-Sequence-Subject). Upgrade that server to "
                f"nats-server {required} or newer."
            )
        # once connected, ride out any outage: the spool keeps what NATS cannot take meanwhile
        nc.options.update(allow_reconnect=True, max_reconnect_attempts=-1)
        self.nc, self.js = nc, nc.jetstream()
        self.max_payload = int(nc.max_payload or DEFAULT_MAX_PAYLOAD)
        self._stream_batched = await ensure_stream(
            self.js, self.stream, fast_ingest=(server.major, server.minor) >= FAST_INGEST_SINCE
        )
        self.acks = await Acks(nc, stall_timeout=self.ack_timeout).open()
        self.fast = (
            await FastIngest(nc, ack_timeout=self.ack_timeout).open()
            if self._stream_batched and self.batches
            else None
        )
        self.connected = True

    async def ensure_stream(self) -> None:
        """Create the stream again if it went missing (JetStream restarted without its store)."""
        await ensure_stream(self.js, self.stream, fast_ingest=self._stream_batched)

    def stop_batches(self) -> None:
        """The stream stopped taking batches (made again without them): send one by one."""
        self.fast = None
        self._stream_batched = False

    async def close(self) -> None:
        """Close the connection, waiting at most the ack timeout for it."""
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), self.ack_timeout)


async def _ignore_error(exc: Exception) -> None:
    """Connection errors are handled by reconnecting and spooling, not reported one by one."""
