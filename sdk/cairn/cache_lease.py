"""The lease of a cache key: which of the runs reaching one key at once computes it.

The first to publish ``cache.leased`` on the key's subject (compare-and-set on the
subject's last sequence: :meth:`LeaseBackend.publish_after`) computes; the others wait
for its ``cache.stored`` and reuse its outputs, or take the lease over when it is released
(its step failed) or runs out. A holder renews its lease every third of
:func:`lease_seconds` while its step runs (one thread per process, :class:`_Renewals`),
so a killed holder's lease ends within that; a waiter gives up after :func:`wait_seconds`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import structlog
from cairn_events import CacheLeased, CacheStored, Event

from .progress import say

if TYPE_CHECKING:
    from .models import CacheEntry

log = structlog.get_logger(__name__)

#: How long a lease holds unrenewed by default (CAIRN_CACHE_LEASE_S); renewed every third.
LEASE_S = 60.0
#: How long a step waits for another run's lease in all by default (CAIRN_CACHE_WAIT_S).
WAIT_S = 3600.0
#: How often a waiter looks at the key's subject.
_POLL_S = 0.05


class LeaseBackend(Protocol):
    """What a lease needs of the tracker: the key's subject on the log."""

    def last_cache_fact(self, cache_key: str) -> tuple[int, Event | None]:
        """The stream sequence and event of the newest fact on the key's subject (0, None)."""
        ...

    def publish_after(self, event: Event, expected_seq: int) -> int | None:
        """Publish ``event`` if the last sequence of its subject is ``expected_seq``: its
        stream sequence, or None if another fact came first."""
        ...


def lease_seconds() -> float:
    """How long a lease holds without renewal (``CAIRN_CACHE_LEASE_S``, default 60)."""
    return _seconds("CAIRN_CACHE_LEASE_S", LEASE_S)


def wait_seconds() -> float:
    """How long a step waits in all for another run's lease (``CAIRN_CACHE_WAIT_S``)."""
    return _seconds("CAIRN_CACHE_WAIT_S", WAIT_S)


def _seconds(variable: str, default: float) -> float:
    raw = os.environ.get(variable, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = default
    return value if 0 < value < 10**7 else default


def _lease_end(fact: CacheLeased) -> datetime:
    """When ``fact``'s lease ends: its ``until``, but never later than a lease this process
    would take (a lease claiming to hold for a year is no reason to wait a year)."""
    return min(fact.until, fact.occurred_at + timedelta(seconds=lease_seconds()))


class Lease:
    """The compare-and-set lease of one key: take it, or wait for whoever holds it.

    A holder renews its lease every third of :func:`lease_seconds` while its step runs
    (:meth:`keep`), so a waiter waits as long as the holder lives, and a lease of a killed
    process ends at most :func:`lease_seconds` after its last renewal. A waiter gives up
    after :func:`wait_seconds` in all and computes itself.
    """

    def __init__(
        self,
        backend: LeaseBackend,
        cache_key: str,
        *,
        run_id: str,
        run_name: str,
        step_run_id: str,
        step_name: str,
        fresh: bool = False,
    ) -> None:
        self.backend = backend
        self.cache_key = cache_key
        #: Whether no entry of the key is known: the lease is first tried on an empty
        #: subject (one round trip), before reading what is on it.
        self.fresh = fresh
        self.run_id = run_id
        self.run_name = run_name
        self.step_run_id = step_run_id
        self.step_name = step_name
        self.held = False
        self._seq = 0  # the stream sequence of our newest lease
        self._failing = False  # whether renewals fail (NATS away) since the last success

    def acquire(self, usable: Callable[[CacheStored, int], CacheEntry | None]) -> CacheEntry | None:
        """Take the lease (None: compute) or get the entry someone else computed meanwhile.

        ``usable`` turns a ``cache.stored`` found on the subject into a servable entry (None
        if it is not). NATS going away means computing without a lease.
        """
        waited_since: float | None = None
        give_up = time.monotonic() + wait_seconds()
        try:
            # nothing is known of the key: most likely nothing is on its subject yet
            if self.fresh and (taken := self.backend.publish_after(self._lease(), 0)):
                self.held, self._seq = True, taken
                return None
            while True:
                seq, fact = self.backend.last_cache_fact(self.cache_key)
                if isinstance(fact, CacheStored):
                    entry = usable(fact, seq)
                    if entry is not None:
                        return entry
                elif isinstance(fact, CacheLeased) and fact.step_run_id == self.step_run_id:
                    self.held, self._seq = True, seq  # ours, from an earlier attempt
                    return None
                elif (
                    isinstance(fact, CacheLeased)
                    and _lease_end(fact) > datetime.now(UTC)
                    and time.monotonic() < give_up
                ):
                    if waited_since is None:
                        waited_since = time.monotonic()
                        self._say_waiting(fact)
                    time.sleep(_POLL_S)
                    continue
                if (taken := self.backend.publish_after(self._lease(), seq)) is not None:
                    self.held, self._seq = True, taken
                    return None
        except Exception as exc:  # NATS away or refusing: compute without a lease
            log.warning("cache.lease_unavailable", key=self.cache_key, error=str(exc))
            return None
        finally:
            if waited_since is not None:
                waited = round(time.monotonic() - waited_since, 3)
                log.info("cache.waited", key=self.cache_key, waited_s=waited, held=self.held)

    def _lease(self) -> CacheLeased:
        return CacheLeased(
            cache_key=self.cache_key,
            run_id=self.run_id,
            run_name=self.run_name,
            step_run_id=self.step_run_id,
            step_name=self.step_name,
            until=datetime.now(UTC) + timedelta(seconds=lease_seconds()),
        )

    def _say_waiting(self, fact: CacheLeased) -> None:
        log.info(
            "cache.waiting", key=self.cache_key, holder=fact.step_run_id, until=str(fact.until)
        )
        say(
            f"Step {self.step_name} waits for run {fact.run_name or fact.run_id}, which is "
            f"computing the same step, to reuse its outputs (it renews its lease while it "
            f"runs; if it was killed, this waits until {_lease_end(fact):%H:%M:%S} UTC at "
            "most). To compute now instead, stop this run and rerun it with "
            "enable_cache=False."
        )

    def keep(self) -> None:
        """Renew the lease while the step computes, until :meth:`end` (by the process's one
        renewing thread, :data:`_RENEWALS`)."""
        if self.held:
            _RENEWALS.add(self)

    def renew(self) -> bool:
        """Publish the lease again with a later end; False when it is no longer ours to renew
        (another fact came first: its entry, or a lease taken over)."""
        try:
            renewed = self.backend.publish_after(self._lease(), self._seq)
        except Exception as exc:  # NATS away: tried again at the next renewal
            if not self._failing:  # said once when renewals start failing, once when back
                self._failing = True
                log.warning("cache.lease_renewals_failing", key=self.cache_key, error=str(exc))
            return True
        if self._failing:
            self._failing = False
            log.info("cache.lease_renewals_back", key=self.cache_key)
        if renewed is None:
            return False
        self._seq = renewed
        return True

    def end(self) -> None:
        """Stop renewing (before the entry or the release is published)."""
        _RENEWALS.discard(self)


class _Renewals:
    """The leases this process holds, renewed every third of :func:`lease_seconds` by one
    daemon thread (started with the first lease), so taking a lease starts no thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[Lease, float] = {}  # lease -> when it was last published
        self._thread: threading.Thread | None = None

    def add(self, lease: Lease) -> None:
        with self._lock:
            self._leases[lease] = time.monotonic()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="cairn-lease-renewals", daemon=True
                )
                self._thread.start()

    def discard(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop(lease, None)

    def _run(self) -> None:
        while True:
            every = lease_seconds() / 3
            time.sleep(min(every, 1.0))
            now = time.monotonic()
            with self._lock:
                due = [lease for lease, last in self._leases.items() if now - last >= every]
            for lease in due:
                kept = lease.renew()
                with self._lock:
                    if lease in self._leases:
                        if kept:
                            self._leases[lease] = time.monotonic()
                        else:
                            del self._leases[lease]


_RENEWALS = _Renewals()
