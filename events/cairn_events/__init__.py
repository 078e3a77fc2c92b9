"""Cairn's event catalogue: immutable facts, their envelope, codec and subjects.

Every fact Cairn knows is one of these events on NATS JetStream; read models
are projections of them. Depends on msgspec only.
"""

from __future__ import annotations

from typing import TypeAlias

from ._codec import EventCodec, EventDecodeError, Upcaster
from ._envelope import Event, Producer, new_id, this_producer, utcnow
from ._labels import MAX_LABEL_BYTES, label_problem
from ._routing import subject_of
from ._subjects import (
    DEAD_LETTER_STREAM,
    DEAD_LETTER_SUBJECTS,
    DUPLICATE_WINDOW_S,
    FAST_INGEST_SINCE,
    MAX_SUBJECT_BYTES,
    NATS_SERVER_REQUIRED,
    STREAM,
    STREAM_SUBJECTS,
    Header,
    JetStreamError,
    artifact_name_prefix,
    artifact_version_subject,
    artifact_versions_filter,
    dead_letter_subject,
    is_numeric_version,
    run_subject,
    step_subject,
    token,
    untoken,
)
from .artifacts import ArtifactMaterialized
from .runs import RunFinished, RunOutcome, RunStarted
from .steps import StepFailed, StepFinished, StepStarted

AnyEvent: TypeAlias = (
    RunStarted | RunFinished | StepStarted | StepFinished | StepFailed | ArtifactMaterialized
)

EVENT_TYPES: tuple[type[Event], ...] = (
    RunStarted,
    RunFinished,
    StepStarted,
    StepFinished,
    StepFailed,
    ArtifactMaterialized,
)

#: The codec for the whole catalogue; upcasters for old shapes register on it.
codec = EventCodec(EVENT_TYPES)
encode = codec.encode
decode = codec.decode

__all__ = [
    "DEAD_LETTER_STREAM",
    "DEAD_LETTER_SUBJECTS",
    "DUPLICATE_WINDOW_S",
    "FAST_INGEST_SINCE",
    "MAX_LABEL_BYTES",
    "MAX_SUBJECT_BYTES",
    "NATS_SERVER_REQUIRED",
    "EVENT_TYPES",
    "STREAM",
    "STREAM_SUBJECTS",
    "AnyEvent",
    "ArtifactMaterialized",
    "Event",
    "EventCodec",
    "EventDecodeError",
    "Header",
    "JetStreamError",
    "Producer",
    "RunFinished",
    "RunOutcome",
    "RunStarted",
    "StepFailed",
    "StepFinished",
    "StepStarted",
    "Upcaster",
    "artifact_name_prefix",
    "artifact_version_subject",
    "artifact_versions_filter",
    "codec",
    "dead_letter_subject",
    "decode",
    "encode",
    "is_numeric_version",
    "label_problem",
    "new_id",
    "run_subject",
    "step_subject",
    "subject_of",
    "this_producer",
    "token",
    "untoken",
    "utcnow",
]
