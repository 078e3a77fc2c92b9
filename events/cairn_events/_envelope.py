"""The envelope every event carries: identity, time, producer and schema version."""

from __future__ import annotations

import getpass
import os
import socket
from datetime import UTC, datetime
from functools import cache

import msgspec
import uuid_utils


class Producer(msgspec.Struct, frozen=True, kw_only=True):
    """Who emitted an event: the host, the process and the OS user."""

    host: str
    pid: int
    user: str


def new_id() -> str:
    """A new UUIDv7 as a string: time-ordered, so ids sort by creation."""
    return str(uuid_utils.uuid7())


def utcnow() -> datetime:
    return datetime.now(UTC)


@cache
def _producer_for(pid: int) -> Producer:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in a container with a bare uid
        user = str(os.getuid())
    return Producer(host=socket.gethostname(), pid=pid, user=user)


def this_producer() -> Producer:
    """The producer for the calling process (re-read after a fork)."""
    return _producer_for(os.getpid())


class Event(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    tag_field="type",
    omit_defaults=False,
):
    """Base of every event: an immutable fact with its envelope.

    Subclasses set ``tag`` (dotted, past tense, never renamed) and may raise
    ``schema`` when their shape changes; an upcaster then upgrades older shapes.
    """

    event_id: str = msgspec.field(default_factory=new_id)
    occurred_at: datetime = msgspec.field(default_factory=utcnow)
    producer: Producer = msgspec.field(default_factory=this_producer)
    schema: int = 1

    @property
    def tag(self) -> str:
        return type(self).__struct_config__.tag  # type: ignore[return-value]

    def subject_path(self) -> str:
        """This event's subject less the stream's root: each event class gives its rule
        (one of the ``*_path`` functions of ``_subjects``, which writes the grammar down)."""
        raise NotImplementedError(f"{type(self).__name__} has no subject rule")
