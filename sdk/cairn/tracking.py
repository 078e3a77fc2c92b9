"""The per-process tracker: publisher, artifact store and what a run needs of them.

Created on first use (the first pipeline run, save or query), not at import.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

from cairn_events import ArtifactMaterialized, Event

from .settings import Settings, redact_url, resolve_settings, unreachable_advice

if TYPE_CHECKING:
    from .artifact_stores import ArtifactStore
    from .publishing import EventPublisher


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

    @property
    def last_seq(self) -> int:
        """Stream sequence of the newest acknowledged event this process published."""
        return self.publisher.last_seq

    def publish(self, event: Event) -> None:
        self.publisher.publish(event)

    def claim_version(
        self, template: ArtifactMaterialized, requested: str | None
    ) -> Future[ArtifactMaterialized]:
        return self.publisher.claim(template, requested)

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
        self.publisher.close()


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
            atexit.register(_tracker.close)
        return _tracker


def last_published_seq(api_url: str) -> int:
    """Stream sequence of this process's newest acknowledged event; 0 if it published none.

    Only an API at ``api_url`` that belongs to the stack this process publishes to can
    wait for that sequence; for any other API (another stack's) it is 0.
    Does not connect: a process that has not tracked anything has nothing to wait for.
    """
    tracker = _tracker
    if tracker is None or _tracker_pid != os.getpid():
        return 0
    ours = (tracker.settings.api_url or "").rstrip("/")
    return tracker.last_seq if ours == api_url.rstrip("/") else 0


def reset_tracker() -> None:
    """Close and forget this process's tracker (tests switch servers with it)."""
    global _tracker
    with _lock:
        if _tracker is not None and _tracker_pid == os.getpid():
            _tracker.close()
        _tracker = None
