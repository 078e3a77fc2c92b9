"""The per-process tracker: publisher, artifact store and what a run needs of them.

Created on first use (the first pipeline run, save or query), not at import.
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from cairn_events import ArtifactMaterialized, Event, EventDecodeError, Header, JetStreamError

from . import own_writes
from .settings import Settings, redact_url, resolve_settings, unreachable_advice

if TYPE_CHECKING:
    from .artifact_stores import ArtifactStore
    from .client import Client
    from .models import CacheEntry, CacheQuery
    from .publishing import EventPublisher
    from .version_lookup import VersionLookup


class Tracker:
    """Sends one process's events and stores its artifacts."""

    def __init__(self, settings: Settings) -> None:
        from .artifact_stores.location import store_for
        from .publishing import EventPublisher

        self.settings = settings
        self.store: ArtifactStore = store_for(settings.artifact_store)
        self.publisher: EventPublisher = EventPublisher(
            settings.nats_url, settings.spool_dir
        ).start()
        self.flush_timeout = float(os.environ.get("CAIRN_FLUSH_TIMEOUT", "30"))
        self._client: Client | None = None

    @property
    def last_seq(self) -> int:
        """Stream sequence of the newest acknowledged event this process published."""
        return self.publisher.last_seq

    def publish(self, event: Event) -> None:
        self.publisher.publish(event)

    def hold_sending(self) -> None:
        """Keep this thread's next events until :meth:`release_sending` or a flush."""
        self.publisher.hold()

    def release_sending(self) -> None:
        self.publisher.release()

    def claim_version(
        self, template: ArtifactMaterialized, requested: str | None
    ) -> Future[ArtifactMaterialized]:
        claim = self.publisher.claim(template, requested)
        if "artifact_lookup" in self.__dict__:  # names are looked up: this may be the latest
            claim.add_done_callback(self._saw_claim)
        return claim

    def _saw_claim(self, claim: Future[ArtifactMaterialized]) -> None:
        if not claim.cancelled() and claim.exception() is None:
            event = claim.result()
            self.artifact_lookup.saw(event.name, event)

    @functools.cached_property
    def artifact_lookup(self) -> VersionLookup:
        """Which version an artifact name (and version) means, from the log."""
        from cairn_events import artifact_version_path, artifact_versions_path

        from .version_lookup import VersionLookup

        return VersionLookup(
            self.publisher,
            artifact_versions_path,
            artifact_version_path,
            lambda event: event.claim_order,
        )

    def client(self) -> Client:
        """This process's client of the query API (made on first use)."""
        if self._client is None:
            from .client import Client

            if self.settings.api_url is None:
                raise RuntimeError("no query API is configured (CAIRN_API_URL)")
            self._client = Client(self.settings.api_url, token=self.settings.api_token)
        return self._client

    # -- the cache (cairn.caching.CacheBackend) --------------------------------------

    def cache_backend(self) -> Tracker:
        return self

    def find_cache_entries(self, query: CacheQuery, *, min_seq: int = 0) -> list[CacheEntry]:
        """The read model's entries for ``query``, through the query API."""
        return self.client().find_cache_entries(query, min_seq=min_seq)

    def last_cache_fact(self, cache_key: str) -> tuple[int, Event | None]:
        """The sequence and event of the newest fact on ``cache_key``'s subject; (0, None).

        A message there that is no event (forged) reads as None at its sequence, so a lease
        can be taken over it.
        """
        from cairn_events import cache_path, decode

        stream = self.publisher.stream
        subject = stream.subject(cache_path(cache_key))

        async def read(js: Any) -> tuple[int, Event | None]:
            from nats.js.errors import NotFoundError

            try:
                msg = await js.get_last_msg(stream.name, subject)
            except NotFoundError:
                return 0, None
            try:
                return msg.seq, decode(msg.data)
            except EventDecodeError:
                return msg.seq, None

        return self.publisher.call(read, self.publisher.ack_timeout)

    def publish_after(self, event: Event, expected_seq: int) -> int | None:
        """Publish ``event`` now if its subject's last sequence is ``expected_seq``: its
        stream sequence, or None if another fact came first."""
        from cairn_events import encode

        subject = self.publisher.stream.subject_of(event)
        headers = {
            Header.MSG_ID: event.event_id,
            Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(expected_seq),
        }
        timeout = self.publisher.ack_timeout

        async def send(js: Any) -> int | None:
            from nats.js.errors import APIError

            try:
                ack = await js.publish(subject, encode(event), headers=headers, timeout=timeout)
            except APIError as exc:
                if exc.err_code == JetStreamError.WRONG_LAST_SEQUENCE:
                    return None
                raise
            return int(ack.seq)

        return self.publisher.call(send, timeout + 1)

    def flush(self) -> int:
        """Wait until NATS has everything; if it stays away, say where the events are kept."""
        if not self.publisher.flush(self.flush_timeout):
            where = self.nats_named()
            if self.publisher.connected:
                sys.stderr.write(
                    f"cairn: NATS at {where} has not acknowledged every event within "
                    f"{self.flush_timeout:g} s (CAIRN_FLUSH_TIMEOUT); what is left is sent in the "
                    f"background, and kept in {self.publisher.spool.path} if this process "
                    "exits first\n"
                )
            else:
                sys.stderr.write(
                    f"cairn: NATS at {where} is unreachable; events are kept in "
                    f"{self.publisher.spool.path} and will be sent when it is back. "
                    f"{unreachable_advice('CAIRN_NATS_URL', 'nats-server')}\n"
                )
        return self.publisher.last_seq

    def nats_named(self) -> str:
        """This process's NATS URL (redacted) and who named it: CAIRN_NATS_URL or the stack."""
        url = self.settings.nats_url
        named_by = (
            "CAIRN_NATS_URL"
            if os.environ.get("CAIRN_NATS_URL") == url
            else f"the local stack under {self.settings.home}"
        )
        return f"{redact_url(url)} ({named_by})"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self.publisher.close()


#: How long a query waits for this process's events still on their way to be acknowledged
#: (a metadata call just made, say) before it asks; past it, it asks without them.
READ_YOUR_WRITES_WAIT_S = 5.0

_tracker: Tracker | None = None
_tracker_pid: int | None = None
_lock = threading.Lock()


def get_tracker() -> Tracker:
    """This process's tracker, connected on first use (and again after a fork)."""
    global _tracker, _tracker_pid
    with _lock:
        if _tracker is None or _tracker_pid != os.getpid():
            _tracker = Tracker(resolve_settings())
            _tracker_pid = os.getpid()
            own_writes.register(last_published_seq)
            atexit.register(_tracker.close)
        return _tracker


def last_published_seq(api_url: str) -> int:
    """Stream sequence of this process's newest event, once what it handed over is
    acknowledged (waiting at most READ_YOUR_WRITES_WAIT_S); 0 if it published none.

    Only an API at ``api_url`` that belongs to the stack this process publishes to can
    wait for that sequence; for any other API (another stack's) it is 0.
    Does not connect: a process that has not tracked anything has nothing to wait for.
    """
    tracker = _tracker
    if tracker is None or _tracker_pid != os.getpid():
        return 0
    ours = (tracker.settings.api_url or "").rstrip("/")
    if ours != api_url.rstrip("/"):
        return 0
    if tracker.publisher.connected:  # what was handed over but not yet acknowledged counts
        tracker.publisher.flush(READ_YOUR_WRITES_WAIT_S)
    return tracker.last_seq


def reset_tracker() -> None:
    """Close and forget this process's tracker (tests switch servers with it)."""
    global _tracker
    with _lock:
        if _tracker is not None and _tracker_pid == os.getpid():
            _tracker.close()
        _tracker = None
