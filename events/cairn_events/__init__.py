"""Cairn's event catalogue: immutable facts, their envelope, codec and subjects.

Every fact Cairn knows is one of these events on NATS JetStream; read models
are projections of them. Depends on msgspec only.
"""

from __future__ import annotations

from ._catalogue import EVENT_TYPES, AnyEvent, codec, decode, encode, subject_of
from ._codec import EventCodec, EventDecodeError, Upcaster
from ._envelope import Event, Producer, new_id, this_producer, utcnow
from ._labels import MAX_LABEL_BYTES, label_problem
from ._protocol import Header, JetStreamError, NatsStatus
from ._states import SUCCEEDED, RunOutcome, RunStatus, StepStatus
from ._subjects import (
    DEFAULT_STREAM,
    DUPLICATE_WINDOW_S,
    FAST_INGEST_SINCE,
    MAX_SUBJECT_BYTES,
    MAX_VERSION_NUMBER,
    NATS_SERVER_REQUIRED,
    EventStream,
    Family,
    artifact_version_path,
    artifact_versions_path,
    cache_path,
    is_numeric_version,
    metadata_path,
    model_version_path,
    prune_path,
    run_path,
    step_path,
    tag_path,
    token,
    untoken,
)
from .artifacts import ArtifactMaterialized, ArtifactVersionRecord
from .cache import CacheHit, CacheLeased, CacheMissed, CacheReleased, CacheStored
from .metadata import EntityKind, MetadataLogged, MetadataType, TypedValue
from .runs import RunFinished, RunStarted
from .steps import StepFailed, StepFinished, StepStarted

__all__ = [
    "DEFAULT_STREAM",
    "DUPLICATE_WINDOW_S",
    "EVENT_TYPES",
    "FAST_INGEST_SINCE",
    "MAX_LABEL_BYTES",
    "MAX_SUBJECT_BYTES",
    "MAX_VERSION_NUMBER",
    "NATS_SERVER_REQUIRED",
    "SUCCEEDED",
    "AnyEvent",
    "ArtifactMaterialized",
    "ArtifactVersionRecord",
    "CacheHit",
    "CacheLeased",
    "CacheMissed",
    "CacheReleased",
    "CacheStored",
    "EntityKind",
    "Event",
    "EventCodec",
    "EventDecodeError",
    "EventStream",
    "Family",
    "Header",
    "JetStreamError",
    "MetadataLogged",
    "MetadataType",
    "NatsStatus",
    "Producer",
    "RunFinished",
    "RunOutcome",
    "RunStarted",
    "RunStatus",
    "StepFailed",
    "StepFinished",
    "StepStarted",
    "StepStatus",
    "TypedValue",
    "Upcaster",
    "artifact_version_path",
    "artifact_versions_path",
    "cache_path",
    "codec",
    "decode",
    "encode",
    "is_numeric_version",
    "label_problem",
    "metadata_path",
    "model_version_path",
    "new_id",
    "prune_path",
    "run_path",
    "step_path",
    "subject_of",
    "tag_path",
    "this_producer",
    "token",
    "untoken",
    "utcnow",
]
