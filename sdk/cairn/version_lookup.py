"""Which version a name means, read from the log: for metadata logged by name.

``log_artifact_metadata(artifact_name=N)`` attaches to N's latest version, and may be
called thousands of times a second: it must not wait for the bus per call. So the first
lookup of a name reads its newest claim (``get_last_msg`` over the name's claim subjects)
and starts an ordered JetStream consumer on them (deliver-last, so nothing falls between
the read and the watch); every later claim of the name reaches this process as it is
stored, and the latest is a dictionary read. Claims this process makes are taken in as
they are acknowledged, so a version just saved is the latest at once. An explicit version
never changes which claim it is, so it is read once and kept.

While NATS is away, a name already watched answers with the newest claim seen; a name not
seen yet cannot be looked up (:class:`~cairn.errors.StackUnavailableError`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import msgspec
import structlog
from cairn_events import Event, EventDecodeError, decode

log = structlog.get_logger(__name__)

#: At most this many names are watched; the longest unused stops being watched.
MAX_WATCHED = 256


class _Claim(msgspec.Struct):
    """A name's newest claim seen: its event, and its place among the name's claims."""

    event: Event
    order: int


class VersionLookup:
    """Looks up claims (artifact or model versions) on one publisher's stream.

    ``claims_path(name)`` is the wildcard over a name's claims, ``claim_path(name, version)``
    one version's subject (both less the stream's root); ``order(event)`` the claim's place
    among its name's claims.
    """

    def __init__(self, publisher: Any, claims_path: Any, claim_path: Any, order: Any) -> None:
        self._publisher = publisher
        self._claims_path = claims_path
        self._claim_path = claim_path
        self._order = order
        self._latest: OrderedDict[str, _Claim] = OrderedDict()
        self._watches: dict[str, Any] = {}
        self._exact: dict[tuple[str, str], Event] = {}
        self._lock = threading.Lock()

    def latest(self, name: str) -> Event | None:
        """The newest claim of ``name``; None if it has none."""
        found = self._latest.get(name)
        if found is not None:
            return found.event
        watched: Event | None = self._publisher.call(
            lambda js: self._watch(js, name), self._timeout()
        )
        return watched

    def exact(self, name: str, version: str) -> Event | None:
        """The claim of ``version`` of ``name``; None if there is none."""
        found = self._exact.get((name, version))
        if found is None:
            found = self._publisher.call(lambda js: self._read(js, name, version), self._timeout())
            if found is not None:
                self._exact[(name, version)] = found
        return found

    def saw(self, name: str, event: Event) -> None:
        """Take in a claim this process made (it may be the name's newest)."""
        self._note(name, event)

    def _timeout(self) -> float:
        return float(self._publisher.ack_timeout) + 1

    def _note(self, name: str, event: Event) -> None:
        order = self._order(event)
        with self._lock:
            found = self._latest.get(name)
            if name in self._watches and (found is None or order > found.order):
                self._latest[name] = _Claim(event, order)

    async def _read(self, js: Any, name: str, version: str) -> Event | None:
        from nats.js.errors import NotFoundError

        stream = self._publisher.stream
        try:
            msg = await js.get_last_msg(
                stream.name, stream.subject(self._claim_path(name, version))
            )
        except NotFoundError:
            return None
        return decode(msg.data)

    async def _watch(self, js: Any, name: str) -> Event | None:
        from nats.js.api import DeliverPolicy
        from nats.js.errors import NotFoundError

        stream = self._publisher.stream
        subject = stream.subject(self._claims_path(name))
        try:
            msg = await js.get_last_msg(stream.name, subject)
        except NotFoundError:
            return None  # no claim yet: nothing to watch
        newest = decode(msg.data)

        async def on_claim(claim: Any) -> None:
            try:
                self._note(name, decode(claim.data))
            except EventDecodeError:
                log.warning("version_lookup.undecodable_claim", subject=claim.subject)

        if name not in self._watches:
            self._watches[name] = await js.subscribe(
                subject,
                stream=stream.name,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.LAST,
                cb=on_claim,
            )
            await self._forget_oldest()
        self._note(name, newest)
        return self._latest[name].event if name in self._latest else newest

    async def _forget_oldest(self) -> None:
        while len(self._watches) > MAX_WATCHED:
            oldest = next(iter(self._latest), None) or next(iter(self._watches))
            self._latest.pop(oldest, None)
            watch = self._watches.pop(oldest, None)
            if watch is not None:
                await watch.unsubscribe()
