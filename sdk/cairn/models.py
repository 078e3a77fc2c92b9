"""What a user reads back: pipelines and their runs, step runs, artifacts and their versions.

These are the shapes the query API sends (JSON) and the runner returns after
a run; both are built from the same events, so they agree. Every shape the API
answers with is here (``Health`` and ``ErrorBody`` too), so every ``Client`` method
returns one of them. Statuses are ``cairn_events``' enums (string enums:
``run.status == "completed"`` holds).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, Protocol

import msgspec
from cairn_events import ArtifactVersionRecord, RunStatus, StepStatus

__all__ = [
    "Artifact",
    "ArtifactResponse",
    "ArtifactSummary",
    "ArtifactVersion",
    "ArtifactVersionResponse",
    "CacheEntry",
    "CacheQuery",
    "EntityMetadata",
    "ErrorBody",
    "Health",
    "LineageDirection",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "MetadataCard",
    "MetadataEntry",
    "PipelineResponse",
    "PipelineRun",
    "PipelineRunResponse",
    "PipelineSummary",
    "RecordedPipeline",
    "RunConfig",
    "RunStatus",
    "StepConfig",
    "StepRun",
    "StepRunResponse",
    "StepStatus",
]


class MetadataEntry(msgspec.Struct, kw_only=True):
    """One value of a metadata key (ZenML's ``RunMetadataResponse``): ``.value`` is the
    Python value, special types (``StorageSize``, ``Uri``...), tuples, sets and NaN kept.

    On the wire (``/metadata``, ``run_metadata`` of every shape) it is
    ``{"key", "type", "value", "logged_at", "step_run_id", "host", "pid", "user"}``, with
    ``value`` in its typed form (``cairn_events.metadata``).
    """

    key: str
    type: str
    typed_value: Any = msgspec.field(name="value")
    logged_at: datetime
    event_id: str = ""
    #: The step run it was logged from; None: logged outside a step.
    step_run_id: str | None = None
    host: str = ""
    pid: int = 0
    user: str = ""

    @property
    def value(self) -> Any:
        from .metadata.values import decode_value

        return decode_value(self.type, self.typed_value)

    @property
    def created(self) -> datetime:
        """ZenML's name for ``logged_at``."""
        return self.logged_at

    def __repr__(self) -> str:
        return f"MetadataEntry(key={self.key!r}, value={self.value!r}, type={self.type!r})"


class MetadataCard(msgspec.Struct, kw_only=True):
    """A group of metadata shown together: a key whose value is a dict, or, titled
    ``Uncategorized``, the keys whose values are not (as ZenML's dashboard groups them)."""

    title: str
    entries: dict[str, Any]


class EntityMetadata(msgspec.Struct, kw_only=True):
    """``/metadata/{kind}/{id}``: an entity's newest value of each key, and as cards."""

    entity_kind: str
    entity_id: str
    run_metadata: dict[str, MetadataEntry]
    cards: list[MetadataCard]


def metadata_cards(run_metadata: dict[str, MetadataEntry]) -> list[MetadataCard]:
    """``run_metadata`` grouped into cards: one per dict-valued key (its entries as typed
    values), then ``Uncategorized`` with the rest, if any."""
    cards, rest = [], {}
    for key, entry in run_metadata.items():
        if entry.type == "dict":
            cards.append(MetadataCard(title=key, entries=dict(entry.typed_value)))
        else:
            rest[key] = {"type": entry.type, "value": entry.typed_value}
    if rest:
        cards.append(MetadataCard(title="Uncategorized", entries=rest))
    return cards


class ArtifactVersion(ArtifactVersionRecord, kw_only=True):
    """One stored version of a named artifact (the fields of ``ArtifactVersionRecord``).

    ``load()`` reads the value back; ``producer`` and ``consumers`` are the step runs that
    stored and read it (asked of a default ``Client()``; ``Client().get_lineage(version)``
    for more than one hop).
    """

    run_metadata: dict[str, MetadataEntry] = msgspec.field(default_factory=dict)

    def load(self) -> Any:
        """The stored value, read by the materializer that wrote it."""
        from .artifacts import load_artifact_version

        return load_artifact_version(self)

    @property
    def producer(self) -> StepRun | None:
        """The step run that stored this version; None for one no step stored."""
        if self.producer_step_run_id is None:
            return None
        with _default_client() as client:
            return client.get_run_step(self.producer_step_run_id)

    @property
    def consumers(self) -> list[StepRun]:
        """The step runs that read this version (as an argument, or loading it), by start
        time; a cached step run counts, as it was given this version."""
        with _default_client() as client:
            return client.list_consumers(self)


class _StepRunReader(Protocol):
    """What ``ArtifactVersion.producer`` and ``.consumers`` ask: a ``cairn.Client``."""

    def __enter__(self) -> _StepRunReader: ...

    def __exit__(self, *exc: object) -> None: ...

    def get_run_step(self, step_run_id: str) -> StepRun: ...

    def list_consumers(self, artifact_version_or_id: ArtifactVersion) -> list[StepRun]: ...


#: Makes the default ``Client()``: set by ``cairn.client`` as it is imported (``import
#: cairn`` imports it), so that this module, which the client imports, never imports it.
default_client: Callable[[], _StepRunReader] | None = None


def _default_client() -> _StepRunReader:
    if default_client is None:
        raise RuntimeError("cairn.client was not imported: import cairn first")
    return default_client()


class StepConfig(msgspec.Struct, kw_only=True):
    substitutions: dict[str, str] = msgspec.field(default_factory=dict)
    enable_cache: bool | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)


class StepRun(msgspec.Struct, kw_only=True):
    """One execution of a step inside a pipeline run."""

    id: str
    name: str
    run_id: str
    status: StepStatus
    function: str
    config: StepConfig
    inputs: dict[str, ArtifactVersion] = msgspec.field(default_factory=dict)
    outputs: dict[str, ArtifactVersion] = msgspec.field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    error: str | None = None
    run_metadata: dict[str, MetadataEntry] = msgspec.field(default_factory=dict)
    #: The step's cache key (None before caching was recorded).
    cache_key: str | None = None
    #: For a cached step run: the step run whose outputs it reused (ZenML's name).
    original_step_run_id: str | None = None
    #: Why the step was not served from cache (empty for a hit).
    cache_miss_reasons: list[str] = msgspec.field(default_factory=list)
    #: The run whose entry of this step the reasons compare against, if there was one.
    cache_compared_run: str | None = None

    @property
    def output(self) -> ArtifactVersion:
        """The single output of a one-output step."""
        if len(self.outputs) != 1:
            raise ValueError(
                f"Step '{self.name}' has {len(self.outputs)} outputs "
                f"({', '.join(self.outputs) or 'none'}); use .outputs[name] instead of .output"
            )
        return next(iter(self.outputs.values()))

    @property
    def parameters(self) -> dict[str, Any]:
        return self.config.parameters


class RunConfig(msgspec.Struct, kw_only=True):
    substitutions: dict[str, str] = msgspec.field(default_factory=dict)
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    enable_cache: bool | None = None


class PipelineRun(msgspec.Struct, kw_only=True):
    """One run of a pipeline with its steps keyed by step name (invocation id)."""

    id: str
    name: str
    pipeline_name: str
    status: RunStatus
    config: RunConfig
    steps: dict[str, StepRun] = msgspec.field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    error: str | None = None
    failed_step: str | None = None
    run_metadata: dict[str, MetadataEntry] = msgspec.field(default_factory=dict)


class Artifact(msgspec.Struct, kw_only=True):
    """A named artifact with every version stored under its name.

    Artifacts are names in the events: ``id`` is derived from the name (the same on every
    replay). ``versions`` is keyed by version, oldest first; ``latest`` is the newest
    claimed version, as in ZenML.
    """

    id: str
    name: str
    version_count: int
    versions: dict[str, ArtifactVersion]
    latest: ArtifactVersion
    created_at: datetime
    updated_at: datetime

    @property
    def latest_version_name(self) -> str:
        return self.latest.version

    @property
    def latest_version_id(self) -> str:
        return self.latest.id

    @property
    def created(self) -> datetime:
        """When the first version was stored (ZenML's name for ``created_at``)."""
        return self.created_at

    @property
    def updated(self) -> datetime:
        """When the newest version was stored (ZenML's name for ``updated_at``)."""
        return self.updated_at


class ArtifactSummary(msgspec.Struct, kw_only=True):
    """One artifact name: its id (derived from the name), how many versions it has, its latest.

    ``latest`` is the newest claimed version, ``latest_version`` its version.
    """

    id: str
    name: str
    version_count: int
    latest_version: str
    latest: ArtifactVersion

    @property
    def latest_version_name(self) -> str:
        """ZenML's name for ``latest_version``."""
        return self.latest_version

    @property
    def latest_version_id(self) -> str:
        return self.latest.id


class PipelineSummary(msgspec.Struct, kw_only=True):
    """A pipeline as runs name it: how many runs it has and what its latest run did.

    Pipelines are names in the events (each run says which pipeline it runs): ``id`` is
    derived from the name, the same on every replay. ``created_at`` is when its first run
    started, ``updated_at`` when its latest did.
    """

    id: str
    name: str
    run_count: int
    latest_run_id: str
    latest_run_name: str
    latest_run_status: RunStatus
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def num_runs(self) -> int:
        """ZenML's name for ``run_count``."""
        return self.run_count

    @property
    def created(self) -> datetime | None:
        return self.created_at

    @property
    def updated(self) -> datetime | None:
        return self.updated_at


class RecordedPipeline(PipelineSummary, kw_only=True):
    """A pipeline with its 50 newest runs (newest first, as ZenML's ``runs``) and steps.

    ``run_count`` counts them all; ``Client.list_pipeline_runs(pipeline_name=...)`` pages
    through every one.
    """

    runs: list[PipelineRun] = msgspec.field(default_factory=list)
    last_successful_run: PipelineRun | None = None

    @property
    def latest_run(self) -> PipelineRun | None:
        return self.runs[0] if self.runs else None

    @property
    def last_run(self) -> PipelineRun | None:
        """ZenML's name for ``latest_run``."""
        return self.latest_run


# ZenML's names for these shapes, so type hints move over with ``zenml.models`` -> ``cairn.models``.
ArtifactResponse = Artifact
ArtifactVersionResponse = ArtifactVersion
PipelineResponse = RecordedPipeline
PipelineRunResponse = PipelineRun
StepRunResponse = StepRun


class CacheEntry(msgspec.Struct, kw_only=True):
    """A step run that computed its outputs, as the cache finds it (``/cache/lookup``).

    ``outputs`` are its output versions by output key; ``missing_outputs`` the keys whose
    version is not recorded (yet, or ever: a refused claim); ``unusable`` says why the
    entry may not be served when the read model knows (None: nothing against it).
    """

    cache_key: str
    lineage_key: str
    pipeline_name: str
    step_name: str
    run_id: str
    run_name: str | None = None
    step_run_id: str
    created_at: datetime
    expires_at: datetime | None = None
    components: dict[str, Any] = msgspec.field(default_factory=dict)
    outputs: dict[str, ArtifactVersion] = msgspec.field(default_factory=dict)
    missing_outputs: list[str] = msgspec.field(default_factory=list)
    unusable: str | None = None


class CacheQuery(msgspec.Struct, kw_only=True):
    """What ``/cache/lookup`` is asked: the newest entry of each key and of each lineage
    key, and the newest entry of each ``[pipeline name, step name]`` (to explain a miss)."""

    keys: list[str] = msgspec.field(default_factory=list)
    lineage_keys: list[str] = msgspec.field(default_factory=list)
    steps: list[tuple[str, str]] = msgspec.field(default_factory=list)
    #: Whether entries come with their components (what a miss is explained with); else {}.
    with_components: bool = True


class Health(msgspec.Struct, kw_only=True):
    """``/health``: the API answers, and the checkpoint of the projector it reads from."""

    status: str
    checkpoint: int


class ErrorBody(msgspec.Struct, kw_only=True):
    """The JSON body of every API error: a machine code and a sentence for people."""

    error: str
    message: str


# -- lineage ----------------------------------------------------------------------------

#: The ways lineage goes from a version: what it was computed from, what was computed from it.
LineageDirection = Literal["upstream", "downstream", "both"]


class LineageNode(msgspec.Struct, kw_only=True, gc=False):
    """An artifact version (``kind="artifact_version"``: ``name`` and ``version``) or a step
    run (``kind="step_run"``: its step's ``name``, ``version`` None, its pipeline run's
    ``run_id`` and ``run_name``, its ``status`` and, when cached, the step run it reused)."""

    kind: Literal["artifact_version", "step_run"]
    id: str
    name: str
    version: str | None = None
    run_id: str | None = None
    run_name: str | None = None
    status: StepStatus | None = None
    original_step_run_id: str | None = None


class LineageEdge(msgspec.Struct, kw_only=True, gc=False):
    """``kind="input"``: version ``source`` was read by step run ``target`` as its argument
    ``key``; ``kind="output"``: step run ``source`` stored (or, cached, reused) version
    ``target`` as its output ``key``."""

    kind: Literal["input", "output"]
    source: str
    target: str
    key: str


class LineageGraph(msgspec.Struct, kw_only=True):
    """The lineage of one artifact version (``Client.get_lineage``): ``nodes`` (that version
    first, then the step runs and versions around it) and the ``edges`` between them.

    Upstream is what it was computed from: its producer, that step run's inputs, their
    producers, ... Downstream is what was computed from it: the step runs that read it,
    their outputs, those versions' readers, ... ``depth`` counts artifact-version hops
    (None: any depth).
    """

    artifact_version_id: str
    direction: LineageDirection
    depth: int | None
    nodes: list[LineageNode]
    edges: list[LineageEdge]

    def nodes_by_id(self) -> dict[str, LineageNode]:
        return {node.id: node for node in self.nodes}
