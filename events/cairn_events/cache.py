"""Cache events: what a step's cache key found, and the entries and leases of each key.

A step that computed its outputs records a :class:`CacheStored` entry on its key's own
subject (``<root>.cache.<key>``, even with caching off, so a later run may hit it). A
step served from an entry records :class:`CacheHit` on its run's step subject, in order
with its ``step.started``; one that missed records :class:`CacheMissed` with why.

When several runs reach one key at once, the first to publish :class:`CacheLeased` on
the key's subject (compare-and-set on that subject's last sequence) computes; the others
wait for its entry, or for :class:`CacheReleased` (its step failed) or the lease's end.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from ._envelope import Event
from ._subjects import cache_path, step_path


class CacheHit(Event, frozen=True, kw_only=True, tag="cache.hit"):
    """A step run was served from the entry of ``source_step_run_id``: it produced
    nothing, and ``outputs`` (output key -> artifact version id) are that run's."""

    run_id: str
    step_run_id: str
    step_name: str
    cache_key: str
    source_run_id: str
    source_step_run_id: str
    outputs: dict[str, str] = msgspec.field(default_factory=dict)

    def subject_path(self) -> str:
        return step_path(self.run_id)


class CacheMissed(Event, frozen=True, kw_only=True, tag="cache.missed"):
    """A step run was not served from cache; ``reasons`` say why, as its line did.

    ``compared_with`` is the step run whose entry the reasons compare against (the newest
    earlier entry of the same step in the same pipeline), if there was one, and
    ``compared_run`` the name of its run. ``cache_key`` is empty when computing it failed
    (the reasons say why; the step fails with it).
    """

    run_id: str
    step_run_id: str
    step_name: str
    cache_key: str
    reasons: list[str] = msgspec.field(default_factory=list)
    compared_with: str | None = None
    compared_run: str | None = None

    def subject_path(self) -> str:
        return step_path(self.run_id)


class CacheStored(Event, frozen=True, kw_only=True, tag="cache.stored"):
    """A step run computed its outputs: the cache entry of ``cache_key``.

    ``lineage_key`` is the key computed from the upstream steps' keys instead of their
    outputs' content (what a run can compute before anything ran); ``components`` the
    parts the key was made of (code, parameters, inputs, outputs, ...), kept to explain a
    later miss; ``expires_at`` the end of the entry's life (None: it does not expire).
    """

    cache_key: str
    lineage_key: str
    pipeline_name: str
    step_name: str
    run_id: str
    step_run_id: str
    outputs: dict[str, str] = msgspec.field(default_factory=dict)
    components: dict[str, Any] = msgspec.field(default_factory=dict)
    expires_at: datetime | None = None

    def subject_path(self) -> str:
        return cache_path(self.cache_key)


class CacheLeased(Event, frozen=True, kw_only=True, tag="cache.leased"):
    """Step run ``step_run_id`` computes ``cache_key`` until ``until``; others wait for it.

    The holder publishes it again (compare-and-set) while it computes, each time with a
    later ``until``."""

    cache_key: str
    run_id: str
    run_name: str = ""
    step_run_id: str
    step_name: str
    until: datetime

    def subject_path(self) -> str:
        return cache_path(self.cache_key)


class CacheReleased(Event, frozen=True, kw_only=True, tag="cache.released"):
    """The lease of ``step_run_id`` on ``cache_key`` ended without an entry (it failed)."""

    cache_key: str
    run_id: str
    step_run_id: str

    def subject_path(self) -> str:
        return cache_path(self.cache_key)
