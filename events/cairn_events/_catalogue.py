"""The catalogue: every event type, registered once.

:data:`AnyEvent` is the one list. The type tuple, the codec and the subject routing are
derived from it, so a new event family costs its Struct (with its subject rule) and one
entry here.
"""

from __future__ import annotations

from typing import TypeAlias, get_args

from ._codec import EventCodec
from ._envelope import Event
from ._subjects import DEFAULT_STREAM, EventStream
from .artifacts import ArtifactMaterialized
from .cache import CacheHit, CacheLeased, CacheMissed, CacheReleased, CacheStored
from .metadata import MetadataLogged
from .runs import RunFinished, RunStarted
from .steps import StepFailed, StepFinished, StepStarted

AnyEvent: TypeAlias = (
    RunStarted
    | RunFinished
    | StepStarted
    | StepFinished
    | StepFailed
    | ArtifactMaterialized
    | CacheHit
    | CacheMissed
    | CacheStored
    | CacheLeased
    | CacheReleased
    | MetadataLogged
)

EVENT_TYPES: tuple[type[Event], ...] = get_args(AnyEvent)

#: The codec for the whole catalogue; upcasters for old shapes register on it.
codec: EventCodec[AnyEvent] = EventCodec(EVENT_TYPES)
encode = codec.encode
decode = codec.decode


def subject_of(event: Event, stream: EventStream = DEFAULT_STREAM) -> str:
    """The subject ``event`` belongs on (in ``stream``): its class's rule, under the root."""
    return stream.subject_of(event)
