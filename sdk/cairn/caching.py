"""Serving steps from cache: finding entries, deciding hit or miss, and leasing a key.

A run plans every step before any runs (:meth:`RunCache.plan`): whether caching is on
for it (the step's ``enable_cache`` wins over the pipeline's; on by default), its policy,
and its **lineage key** (:mod:`cairn.cache_key`), then asks the query API once for the
entries of all those keys (:meth:`RunCache.prefetch`). When a step is reached its real key
is computed from its inputs' content; an entry found by lineage key whose key is the same
is a hit with no further round trip, which keeps a fully cached run fast. Otherwise (its
upstream computed, or nothing was found) the step's lease, below, reads the key's subject
on the log, where an entry the run did not know of is found.

Entries this process recorded or served are kept in memory (:data:`_MEMORY`), so the
next run here finds them before the projector has them, and a run whose every servable
step has one asks nothing up front; where the read model answered, what it says of an
entry wins over memory. An entry is served only if it has not expired, the read model (or
memory) holds all of its output versions and their data is still in the artifact store;
otherwise the step runs and its line says why (the reasons against the step's newest
earlier entry: :func:`cairn.cache_key.explain`). A step invoked twice in one run with the
same key is computed once.

When two runs reach one key at the same time, the **lease** decides which computes
(:mod:`cairn.cache_lease`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import structlog
from cairn_events import CacheReleased, CacheStored, Event

from .cache_key import (
    CacheComponents,
    components,
    explain,
    input_identity,
    upstream_identity,
    with_inputs,
)
from .cache_lease import Lease, LeaseBackend
from .cache_policy import CachePolicy
from .composition import OutputHandle
from .errors import StepDefinitionError
from .models import ArtifactVersion, CacheEntry, CacheQuery
from .progress import say

if TYPE_CHECKING:
    from .composition import Invocation
    from .executor import StepInput

log = structlog.get_logger(__name__)

#: How often the read model is asked again for an entry's output versions.
_POLL_S = 0.05
#: How long a reused entry's output versions may take to reach the read model.
_RECORDED_WAIT_S = 10.0
#: Entries kept in memory per process.
_MEMORY_SIZE = 10_000
_DEFAULT_POLICY = CachePolicy()


class CacheBackend(LeaseBackend, Protocol):
    """What the cache needs of the tracker: the query API's lookup, the key's subject (a
    lease's needs) and publishing."""

    def find_cache_entries(self, query: CacheQuery, *, min_seq: int = 0) -> list[CacheEntry]:
        """The entries the read model has for ``query`` (after ``min_seq``, when given)."""
        ...

    def publish(self, event: Event) -> None: ...


class StepPlan(msgspec.Struct, kw_only=True):
    """How the cache treats one invocation in this run."""

    enabled: bool
    #: Who turned caching off (for the why-not-cached record), when it is off.
    disabled_by: str | None
    policy: CachePolicy
    lineage_key: str | None
    #: The key's parts with the inputs as the lineage key has them (None: not computable yet).
    parts: CacheComponents | None = None


class Hit(msgspec.Struct, kw_only=True):
    """Serve the step from ``entry`` (or from ``reused``, an invocation earlier in this run)."""

    cache_key: str
    entry: CacheEntry | None = None
    reused: Any = None  # the ExecutedStep of the same key earlier in this run


class Miss(msgspec.Struct, kw_only=True):
    """Compute the step; ``reasons`` say why it was not served, ``lease`` if it holds one."""

    cache_key: str
    lineage_key: str
    components: CacheComponents
    reasons: list[str]
    compared_with: str | None = None
    compared_run: str | None = None
    lease: Lease | None = None
    #: The life of the entry it records, from when it is recorded (None: for ever).
    expires_after: float | None = None


class _Newest:
    """The newest entry by cache key and by step of a pipeline: what a decision asks for."""

    def __init__(self, limit: int = _MEMORY_SIZE) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._by: dict[tuple[str, ...], tuple[datetime, str, Any]] = {}

    def add(self, entry: CacheEntry, item: Any) -> None:
        """Index ``item`` (``entry`` or what stands for it) as ``entry`` says."""
        stamp = (entry.created_at, entry.step_run_id, item)
        with self._lock:
            if len(self._by) > 3 * self._limit:  # a long-lived process: start over
                self._by.clear()
            for index in (
                ("key", entry.cache_key),
                ("lineage", entry.lineage_key),
                ("step", entry.pipeline_name, entry.step_name),
            ):
                current = self._by.get(index)
                if current is None or current[:2] <= stamp[:2]:
                    self._by[index] = stamp

    def by_key(self, cache_key: str) -> tuple[datetime, str, Any] | None:
        return self._by.get(("key", cache_key))

    def by_lineage_key(self, lineage_key: str) -> tuple[datetime, str, Any] | None:
        return self._by.get(("lineage", lineage_key))

    def by_step(self, pipeline_name: str, step_name: str) -> tuple[datetime, str, Any] | None:
        return self._by.get(("step", pipeline_name, step_name))

    def clear(self) -> None:
        with self._lock:
            self._by.clear()


class _Remembered:
    """An entry this process recorded; its versions resolve when its claims are done."""

    __slots__ = ("entry", "outputs", "step_run_id")

    def __init__(self, entry: CacheEntry, outputs: dict[str, Callable[[], ArtifactVersion]]):
        self.entry = entry
        self.step_run_id = entry.step_run_id
        self.outputs = outputs

    def resolved(self) -> CacheEntry:
        versions: dict[str, ArtifactVersion] = {}
        missing: list[str] = []
        for key, version_of in self.outputs.items():
            try:
                versions[key] = version_of()
            except Exception:  # the claim was refused or is still pending
                missing.append(key)
        return msgspec.structs.replace(self.entry, outputs=versions, missing_outputs=missing)


#: The entries this process recorded (as :class:`_Remembered`), newest per key and step.
_MEMORY = _Newest()


def forget_remembered_entries() -> None:
    """Forget the entries this process recorded (tests that switch stacks call it)."""
    _MEMORY.clear()


class RunCache:
    """The cache as one run of a pipeline sees it."""

    def __init__(
        self,
        backend: CacheBackend,
        *,
        pipeline_name: str,
        run_id: str,
        run_name: str,
        enable_cache: bool | None,
        policy: CachePolicy | None,
        substitutions: dict[str, str],
        flush_timeout: float,
    ) -> None:
        self.backend = backend
        self.pipeline_name = pipeline_name
        self.run_id = run_id
        self.run_name = run_name
        self.enable_cache = enable_cache
        self.policy = policy
        self.substitutions = substitutions
        self.flush_timeout = flush_timeout
        self.plans: dict[str, StepPlan] = {}
        self._found = _Newest()  # what the read model answered
        self._found_ids: set[str] = set()
        self._asked_steps: set[str] = set()
        self._computed: dict[str, Any] = {}  # key -> ExecutedStep, earlier in this run
        self._lookup_failed = False
        self.hits = 0
        self.steps = 0

    # -- before the run ----------------------------------------------------------------

    def plan(self, order: list[Invocation]) -> None:
        """Each invocation's plan, lineage keys from upstream lineage keys, in run order."""
        for invocation in order:
            step = invocation.step
            enabled, disabled_by = True, None
            if step.enable_cache is not None:
                enabled = step.enable_cache
                disabled_by = None if enabled else "enable_cache=False on the step"
            elif self.enable_cache is not None:
                enabled = self.enable_cache
                disabled_by = None if enabled else "enable_cache=False on the pipeline"
            policy = step.cache_policy or self.policy or _DEFAULT_POLICY
            _check_ignored(invocation, policy)
            parts = self._lineage_parts(invocation, policy)
            self.plans[invocation.id] = StepPlan(
                enabled=enabled,
                disabled_by=disabled_by,
                policy=policy,
                lineage_key=None if parts is None else parts.key(),
                parts=parts,
            )

    def _lineage_parts(self, invocation: Invocation, policy: CachePolicy) -> CacheComponents | None:
        identities: dict[str, str] = {}
        for name, value in invocation.arguments.items():
            if name in invocation.parameters:
                continue
            if isinstance(value, OutputHandle):
                upstream = self.plans[value.invocation_id].lineage_key
                if upstream is None:
                    return None
                identities[name] = upstream_identity(upstream, value.key)
            else:
                version = _known_input(value)
                if version is None:
                    return None  # known only once it is saved: asked for when reached
                identities[name] = input_identity(version.id, version.content_hash, policy)
        try:
            return components(invocation, identities, self.substitutions, policy)
        except Exception:  # e.g. a file dependency that cannot be read: the step says so
            return None

    def prefetch(self) -> None:
        """Ask the query API once for the entries of every planned step's lineage key (a
        root step's lineage key is its key).

        Not asked when this process recorded an entry of every lineage key of the steps that
        may be served (the same pipeline run again here): those are served from memory,
        checked as every entry is (expiry, recorded versions, data in the store), and a step
        that misses asks for its own. Facts against an entry that only the read model would
        know (issue 13's deleted runs and pruned records) must reach this memory before they
        exist, or this shortcut must go.
        """
        served = [p for p in self.plans.values() if p.enabled]
        if all(p.lineage_key and _MEMORY.by_lineage_key(p.lineage_key) for p in served):
            return  # (with caching off for every step, nothing is served: nothing to ask)
        lineage_keys = sorted({p.lineage_key for p in self.plans.values() if p.lineage_key})
        # The entries to serve (without what a miss is explained with), and the newest entry
        # of each step (with it) that this process has no entry of its lineage key for: a
        # step it has one for most likely hits, and asks for its own if it does not.
        unknown = [
            name
            for name, plan in self.plans.items()
            if not plan.lineage_key or _MEMORY.by_lineage_key(plan.lineage_key) is None
        ]
        self._ask(CacheQuery(lineage_keys=lineage_keys, with_components=False), unknown)

    def _ask(self, query: CacheQuery, step_names: list[str]) -> None:
        query.steps = [(self.pipeline_name, name) for name in step_names]
        self._asked_steps.update(step_names)
        if self._lookup_failed:
            return
        try:
            found = self.backend.find_cache_entries(query)
        except Exception as exc:
            self._lookup_failed = True
            log.warning("cache.lookup_failed", error=str(exc))
            say(f"Cache lookups are off for this run: the query API did not answer ({exc}).")
            return
        for entry in found:
            self._found.add(entry, entry)
            self._found_ids.add(entry.step_run_id)

    # -- per step --------------------------------------------------------------------

    def decide(
        self, invocation: Invocation, inputs: dict[str, StepInput], step_run_id: str
    ) -> Hit | Miss:
        """Whether ``invocation`` (reading ``inputs``) is served from cache, and why not.

        On a miss with caching on, the step run ``step_run_id`` leases the key first: if
        another run holds it, this waits for that run's entry and serves it.
        """
        self.steps += 1
        plan = self.plans[invocation.id]
        policy = plan.policy
        identities = {
            name: input_identity(given.artifact_version_id, given.content_hash, policy)
            for name, given in inputs.items()
        }
        if plan.parts is not None:  # all but the inputs computed when the run was planned
            parts = with_inputs(plan.parts, identities, policy)
        else:
            parts = components(invocation, identities, self.substitutions, policy)
        key = parts.key()
        lineage_key = plan.lineage_key or key
        miss = Miss(
            cache_key=key,
            lineage_key=lineage_key,
            components=parts,
            reasons=[],
            expires_after=policy.expires_after,
        )
        if not plan.enabled:
            miss.reasons = [f"caching is disabled for this step ({plan.disabled_by})"]
            return miss
        if (earlier := self._computed.get(key)) is not None:
            return Hit(cache_key=key, reused=earlier)
        # A key the run could not ask for up front (its upstream computed) is not asked of
        # the query API: the lease below reads the key's subject, where an entry would be.
        candidate = self._newest(self._found.by_key(key), _MEMORY.by_key(key))
        if candidate is not None:
            problem = self.unusable(candidate) or _lacking(candidate, invocation)
            if problem is None:
                return Hit(cache_key=key, entry=candidate)
            miss.reasons = [problem]
            miss.compared_with = candidate.step_run_id
            miss.compared_run = candidate.run_name or candidate.run_id
        else:  # what to explain the miss against: the step's newest entry
            if invocation.id not in self._asked_steps:
                self._ask(CacheQuery(), [invocation.id])
            previous = self._newest(
                self._found.by_step(self.pipeline_name, invocation.id),
                _MEMORY.by_step(self.pipeline_name, invocation.id),
            )
            if previous is not None:
                miss.reasons = explain(previous.components, parts)
                miss.compared_with = previous.step_run_id
                miss.compared_run = previous.run_name or previous.run_id
            else:
                miss.reasons = ["no earlier run of this step has its cache key"]
        miss.lease = Lease(
            self.backend,
            key,
            run_id=self.run_id,
            run_name=self.run_name,
            step_run_id=step_run_id,
            step_name=invocation.id,
            fresh=candidate is None,
        )
        entry = miss.lease.acquire(self._stored_entry)
        if entry is not None:  # another run computed it meanwhile
            return Hit(cache_key=key, entry=entry)
        miss.lease.keep()
        return miss

    def _stored_entry(self, fact: CacheStored, seq: int) -> CacheEntry | None:
        """The entry ``fact`` (found on the key's subject at ``seq``) records, if usable.

        Its output versions may reach the read model a little after it: asked again for
        at most :data:`_RECORDED_WAIT_S`.
        """
        started = time.monotonic()
        query = CacheQuery(keys=[fact.cache_key])
        asked = 0
        try:
            while True:
                asked += 1
                try:
                    found = self.backend.find_cache_entries(query, min_seq=seq)
                except Exception as exc:
                    log.warning("cache.lookup_failed", error=str(exc))
                    return None
                entry = next((e for e in found if e.step_run_id == fact.step_run_id), None)
                if entry is not None and not entry.missing_outputs:
                    return entry if self.unusable(entry) is None else None
                if time.monotonic() - started >= _RECORDED_WAIT_S:
                    return None
                if asked == 1:
                    log.info("cache.entry_versions_waiting", key=fact.cache_key)
                time.sleep(_POLL_S)
        finally:
            if asked > 1:
                waited = round(time.monotonic() - started, 3)
                log.info("cache.entry_versions_waited", key=fact.cache_key, waited_s=waited)

    def _newest(
        self,
        found: tuple[datetime, str, Any] | None,
        remembered: tuple[datetime, str, Any] | None,
    ) -> CacheEntry | None:
        """The newer of what the read model answered and what this process remembers; the
        read model's answer when it has the entry (what it says, pruned..., wins)."""
        if remembered is not None and (
            remembered[1] in self._found_ids or (found is not None and found[:2] >= remembered[:2])
        ):
            remembered = None
        if remembered is not None:
            entry: CacheEntry = remembered[2].resolved()
            return entry
        return None if found is None else found[2]

    def unusable(self, entry: CacheEntry) -> str | None:
        """Why ``entry`` may not be served (None: it may)."""
        origin = f"its entry from run {entry.run_name or entry.run_id}"
        if entry.unusable:
            return f"{origin} cannot be used: {entry.unusable}"
        if entry.expires_at is not None and entry.expires_at <= datetime.now(UTC):
            return f"{origin} expired at {entry.expires_at:%Y-%m-%d %H:%M:%S} UTC"
        if entry.missing_outputs:
            return (
                f"{origin} names output versions that are not recorded "
                f"({', '.join(entry.missing_outputs)})"
            )
        from .artifact_stores.location import store_holding

        for key, version in entry.outputs.items():
            if not _data_present(version.uri, store_holding):
                return (
                    f"the data of output '{key}' ({version.name} version {version.version}) of "
                    f"{origin} is missing from the artifact store ({version.uri})"
                )
        return None

    # -- after the step ----------------------------------------------------------------

    def hit(self, served: Hit) -> None:
        """A step was served from ``served``; an entry the read model gave is remembered,
        so the next run here need not ask for it."""
        self.hits += 1
        entry = served.entry
        if entry is not None and _MEMORY.by_key(entry.cache_key) is None:
            versions = dict(entry.outputs)
            _MEMORY.add(entry, _Remembered(entry, {k: _constant(v) for k, v in versions.items()}))

    def computed(self, miss: Miss, executed: Any, step_name: str) -> None:
        """Record the entry of a step that computed its outputs (caching on or off)."""
        if miss.lease is not None:
            miss.lease.end()
        outputs = executed.outputs
        step_run = executed.step_run
        event = CacheStored(
            cache_key=miss.cache_key,
            lineage_key=miss.lineage_key,
            pipeline_name=self.pipeline_name,
            step_name=step_name,
            run_id=self.run_id,
            step_run_id=step_run.id,
            outputs={p.output_name: p.artifact_version_id for p in outputs},
            components=msgspec.to_builtins(miss.components),
            expires_at=(
                None
                if miss.expires_after is None
                else datetime.now(UTC) + timedelta(seconds=miss.expires_after)
            ),
        )
        self.backend.publish(event)
        self._computed[miss.cache_key] = executed
        entry = CacheEntry(
            cache_key=event.cache_key,
            lineage_key=event.lineage_key,
            pipeline_name=event.pipeline_name,
            step_name=step_name,
            run_id=self.run_id,
            run_name=self.run_name,
            step_run_id=step_run.id,
            created_at=event.occurred_at,
            expires_at=event.expires_at,
            components=event.components,
        )
        timeout = self.flush_timeout
        resolvers = {p.output_name: p.version_resolver(timeout) for p in outputs}
        _MEMORY.add(entry, _Remembered(entry, resolvers))

    def failed(self, miss: Miss, step_run_id: str) -> None:
        """The step raised: it leaves no entry, and its lease (if any) is given back."""
        if miss.lease is not None:
            miss.lease.end()
        if miss.lease is not None and miss.lease.held:
            self.backend.publish(
                CacheReleased(cache_key=miss.cache_key, run_id=self.run_id, step_run_id=step_run_id)
            )

    def all_hit(self) -> bool:
        return self.steps > 0 and self.hits == self.steps


def miss_explained(reasons: list[str], compared_run: str | None) -> str:
    """Why a step was not served from cache, as its line and ``cairn step why-not-cached``
    say it."""
    against = f" (compared with run {compared_run})" if compared_run else ""
    return f"{'; '.join(reasons)}{against}."


def _constant(version: ArtifactVersion) -> Callable[[], ArtifactVersion]:
    return lambda: version


def _check_ignored(invocation: Invocation, policy: CachePolicy) -> None:
    """StepDefinitionError if ``policy`` ignores an input the step does not have (a typo
    would leave the key as it was, silently)."""
    arguments = invocation.step.signature.parameters
    unknown = [name for name in policy.ignored_inputs if name not in arguments]
    if unknown:
        raise StepDefinitionError(
            f"Step '{invocation.id}': CachePolicy(ignored_inputs=...) names "
            f"{', '.join(map(repr, unknown))}, which the step does not take; its arguments are "
            f"{', '.join(map(repr, arguments)) or 'none'}."
        )


def _lacking(entry: CacheEntry, invocation: Invocation) -> str | None:
    """Why ``entry`` cannot stand for ``invocation``'s outputs: an output it does not have
    (only a forged entry has the key and not the outputs)."""
    missing = [spec.key for spec in invocation.step.outputs if spec.key not in entry.outputs]
    if missing:
        return (
            f"its entry from run {entry.run_name or entry.run_id} has no output "
            f"{', '.join(repr(m) for m in missing)}"
        )
    return None


def _data_present(uri: str, store_holding: Callable[[str], Any]) -> bool:
    """Whether the data at ``uri`` is still there: a local folder that exists and is not
    empty (which files a materializer wrote is its own affair: one of several deleted is
    found when the step that reads it loads it)."""
    if "://" not in uri:
        try:
            with os.scandir(uri) as entries:
                return next(entries, None) is not None
        except NotADirectoryError:
            return True  # a store that keeps a version in one file
        except OSError:
            return False
    try:
        return bool(store_holding(uri).exists(uri))
    except Exception:
        return False


def _known_input(value: Any) -> ArtifactVersion | None:
    """The artifact version an input given from outside the run stands for, if known yet."""
    version = getattr(value, "version", value)
    return version if isinstance(version, ArtifactVersion) else None
