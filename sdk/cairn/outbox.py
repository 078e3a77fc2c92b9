"""Where each event handed to the publisher is until JetStream acknowledges it.

An event (or a version claim) is handed over by the caller's thread (``incoming``),
taken by the loop (``queue``), then sent: in the fast-ingest batch under way
(``in_batch``), published and awaiting its acknowledgement (``inflight``), being
claimed (``claiming``), or, while NATS is away, kept in the durable spool. The
publisher's parts (the send loop, :mod:`.sending`, :mod:`.claims`, :mod:`.outage`)
share this one :class:`Outbox` and nothing else of each other's.
"""

from __future__ import annotations

import asyncio
import collections
from concurrent.futures import Future
from typing import Any, TypeAlias

import msgspec
import structlog
from cairn_events import ArtifactMaterialized

from .connection import Link
from .fast_ingest import Outgoing
from .spool import Spool, SpoolEntry, claim_entry

log = structlog.get_logger(__name__)


class ClaimRequest(msgspec.Struct):
    """A version claim handed over: the version's template, the version asked for, the answer."""

    template: ArtifactMaterialized
    requested: str | None
    future: Future[ArtifactMaterialized]


#: What a caller hands over: an encoded event, or a version claim.
Handed: TypeAlias = Outgoing | ClaimRequest


class Inflight(msgspec.Struct):
    """An event published one by one, and the acknowledgement it awaits."""

    item: Outgoing
    ack: asyncio.Future[Any]
    sent_at: float


class Outbox:
    """Everything handed over and not yet acknowledged, and the newest acknowledged sequence."""

    def __init__(self, link: Link, spool: Spool) -> None:
        self._link = link
        self.spool = spool
        #: Handed over by callers' threads, not yet taken by the loop.
        self.incoming: collections.deque[Handed] = collections.deque()
        #: Taken by the loop, not yet sent.
        self.queue: collections.deque[Handed] = collections.deque()
        #: Taken from the queue into the batch under way, until that batch settles.
        self.in_batch: list[Outgoing] | None = None
        self.inflight: collections.deque[Inflight] = collections.deque()
        self.claiming: dict[asyncio.Task[None], ClaimRequest] = {}
        #: The callers' futures of claims in the spool, by event id: the redo settles them.
        self.spooled_claims: dict[str, Future[ArtifactMaterialized]] = {}
        #: The spool holds something to send; the send loop waits for the drain meanwhile.
        self.spool_pending = False
        self.spooling = False  # spooled since the last drain: logged once per outage
        #: Stream sequence of the newest event this process knows JetStream stored.
        self.last_seq = 0
        #: Set when the send loop has work: new items, or the spool drained.
        self.ready = asyncio.Event()
        #: Set when the spool should be sent (see Outage).
        self.drain_wanted = asyncio.Event()

    def acknowledged(self, seq: int) -> None:
        """JetStream stored something at ``seq``: read-your-writes waits for at least this."""
        if seq > self.last_seq:
            self.last_seq = seq

    def spool_items(self, items: list[Handed]) -> None:
        """Keep ``items`` durably, in order, until NATS takes them."""
        entries = []
        for item in items:
            if isinstance(item, ClaimRequest):
                self.spooled_claims[item.template.event_id] = item.future
                entries.append(claim_entry(item.template, item.requested, self._link.stream))
            else:
                entries.append(entry_of(item))
        if not entries:
            return
        self.spool.append(entries)
        self.spool_pending = True
        if not self.spooling:
            self.spooling = True
            log.warning("publisher.spooling", spool=str(self.spool.path))

    def resend_later(self, items: list[Outgoing]) -> None:
        """Not acknowledged in time while connected: send again from the spool."""
        self.spool_items(list(items))
        if self._link.connected:
            self.request_drain()

    def request_drain(self) -> None:
        """Have the spool sent, if it holds anything (an adopted orphan counts)."""
        if self.spool.count():
            self.spool_pending = True
        if self.spool_pending:
            self.drain_wanted.set()

    def busy(self) -> bool:
        """Whether anything waits to be sent: handed over, queued, spooled or in a batch."""
        return bool(self.incoming or self.queue or self.spool_pending or self.in_batch is not None)

    def awaited(self) -> list[asyncio.Future[Any]]:
        """The acknowledgements and claims still under way."""
        pending: list[asyncio.Future[Any]] = [f.ack for f in self.inflight if not f.ack.done()]
        pending += [task for task in self.claiming if not task.done()]
        return pending


def entry_of(item: Outgoing) -> SpoolEntry:
    """``item`` as the spool (and the quarantine) keep it."""
    return SpoolEntry(subject=item.subject, event=msgspec.Raw(item.data))


class _EventId(msgspec.Struct):
    event_id: str


_event_id = msgspec.json.Decoder(_EventId).decode


def outgoing_of(entry: SpoolEntry) -> Outgoing:
    """A spooled event as it is sent again, with its event id as ``Nats-Msg-Id``."""
    data = bytes(entry.event)
    try:
        msg_id = _event_id(data).event_id
    except (msgspec.DecodeError, msgspec.ValidationError):
        msg_id = ""  # refused before sending: it is not an event
    return Outgoing(entry.subject, data, msg_id)
