"""Turning fetched messages into what one transaction writes: row changes and dead letters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import cairn_events
import structlog
from cairn_projections import FoldError, RowChange, fold
from nats.aio.msg import Msg

from .consumer import stream_seq

log = structlog.get_logger(__name__)

#: How JSON spells NUL; Postgres text and jsonb cannot hold it.
_NUL_ESCAPE = b"\\u0000"
#: ``\u0000`` as an escape, not as text: preceded by an even number of backslashes.
_NUL_ESCAPED = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class UnacceptableEventError(ValueError):
    """An event that decodes but must not be projected (wrong subject, unstorable text)."""


@dataclass(slots=True)
class Projected:
    """One event that folded: its stream position and the row changes it makes."""

    seq: int
    subject: str
    data: bytes
    changes: list[RowChange]


@dataclass(slots=True)
class DeadLetter:
    """One message the projector cannot apply, and why."""

    seq: int
    subject: str
    data: bytes
    reason: str


@dataclass(slots=True)
class Batch:
    """The messages of one fetch past the checkpoint, folded, in stream order.

    ``last_seq`` is the highest stream sequence seen (skipped redeliveries
    included), so the checkpoint moves past them; ``last_msg`` is what to ack.
    """

    projected: list[Projected] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    first_seq: int = 0
    last_seq: int = 0
    last_msg: Msg | None = None
    skipped: int = 0

    @property
    def size(self) -> int:
        return len(self.projected) + len(self.dead)


def fold_batch(msgs: list[Msg], after_seq: int, into: Batch | None = None) -> Batch:
    """Decode and fold every message with a stream sequence above ``after_seq``.

    A message that can't be decoded or folded, arrived on a subject other
    than its event's own (see :func:`check_subject`), or holds text Postgres
    cannot store (see :func:`check_storable`) becomes a DeadLetter with the
    reason; the rest of the batch is unaffected. Messages at or below
    ``after_seq`` or ``into.last_seq`` (redeliveries of committed work) are
    skipped. With ``into``, the messages are added to that batch.
    """
    batch = into if into is not None else Batch(last_seq=after_seq)
    high = max(after_seq, batch.last_seq)
    decode, subject_of = cairn_events.decode, cairn_events.subject_of  # once, not per event
    for msg in msgs:
        seq = stream_seq(msg)
        batch.last_msg = msg
        if seq <= high:
            batch.skipped += 1
            continue
        high = seq
        if not batch.first_seq:
            batch.first_seq = seq
        try:
            event = decode(msg.data)
            if subject_of(event) != msg.subject:  # the check inline; the reason only when it fails
                check_subject(event, msg.subject)
            if _NUL_ESCAPE in msg.data:  # rare: confirm before refusing
                check_storable(msg.data)
            changes = fold(event)
        except (cairn_events.EventDecodeError, UnacceptableEventError, FoldError) as exc:
            batch.dead.append(DeadLetter(seq, msg.subject, msg.data, str(exc)))
            continue
        except Exception as exc:  # a bug in a fold must not stop the projector
            log.exception("projector.fold_crashed", seq=seq, subject=msg.subject)
            reason = f"fold raised {type(exc).__name__}: {exc}"
            batch.dead.append(DeadLetter(seq, msg.subject, msg.data, reason))
            continue
        batch.projected.append(Projected(seq, msg.subject, msg.data, changes))
    batch.last_seq = high
    return batch


def check_subject(event: Any, subject: str) -> None:
    """Raise UnacceptableEventError unless ``subject`` is ``event``'s own subject.

    Any subject under ``cairn.>`` reaches the stream, so the subject proves
    nothing by itself: an artifact version is only taken from its name's claim
    subject, where the compare-and-set that numbered it ran.
    """
    try:
        expected = cairn_events.subject_of(event)
    except TypeError as exc:  # a catalogue type with no subject can't be accepted anywhere
        raise UnacceptableEventError(f"{event.tag} {event.event_id}: {exc}") from None
    if subject != expected:
        raise UnacceptableEventError(
            f"misrouted {event.tag} {event.event_id}: arrived on subject {subject!r}, "
            f"but it belongs on {expected!r} (an event is accepted only on its own subject)"
        )


def check_storable(data: bytes) -> None:
    """Raise UnacceptableEventError if the JSON in ``data`` holds a NUL character.

    Postgres text and jsonb cannot hold NUL; refusing it here costs one byte
    search, where Postgres would reject the whole batch and make it be bisected.
    """
    if _NUL_ESCAPED.search(data):
        raise UnacceptableEventError(
            "event text contains \\u0000 (NUL), which Postgres text and jsonb cannot hold "
            "(Postgres refuses it with SQLSTATE 22021 or 22P05); dead-lettered before writing"
        )
