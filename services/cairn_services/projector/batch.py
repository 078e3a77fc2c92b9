"""Turning fetched messages into what one transaction writes: rows and dead letters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import cairn_events
import structlog
from cairn_events import DEFAULT_STREAM, EventStream
from cairn_projections import ALL_FOLDS, FoldError, Folds, Row
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
    """One event that folded: its stream position and the rows it writes."""

    seq: int
    subject: str
    data: bytes
    rows: list[Row]


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
    ``ignored`` counts the new events of types none of the projector's read models
    folds: they write nothing, but the checkpoint moves past them too.
    """

    projected: list[Projected] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    first_seq: int = 0
    last_seq: int = 0
    last_msg: Msg | None = None
    skipped: int = 0
    ignored: int = 0

    @property
    def size(self) -> int:
        """How many messages past the checkpoint this batch holds (what it commits)."""
        return len(self.projected) + len(self.dead) + self.ignored


def fold_batch(
    msgs: list[Msg],
    after_seq: int,
    into: Batch | None = None,
    *,
    folds: Folds = ALL_FOLDS,
    stream: EventStream = DEFAULT_STREAM,
) -> Batch:
    """Decode and fold with ``folds`` every message with a stream sequence above ``after_seq``.

    A message that can't be decoded or folded, arrived on a subject other
    than its event's own in ``stream`` (see :func:`check_subject`), or holds text
    Postgres cannot store (see :func:`check_storable`) becomes a DeadLetter with the
    reason; the rest of the batch is unaffected. An event of a type ``folds`` has no
    fold for is ignored. Messages at or below ``after_seq`` or ``into.last_seq``
    (redeliveries of committed work) are skipped. With ``into``, the messages are
    added to that batch.
    """
    batch = into if into is not None else Batch(last_seq=after_seq)
    high = max(after_seq, batch.last_seq)
    decode, subject_of, fold_of = cairn_events.decode, stream.subject_of, folds.get  # once
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
            fold = fold_of(type(event))
            if fold is None:  # another projector's business
                batch.ignored += 1
                continue
            if subject_of(event) != msg.subject:  # the check inline; the reason only when it fails
                check_subject(event, msg.subject, stream)
            if _NUL_ESCAPE in msg.data:  # rare: confirm before refusing
                check_storable(msg.data)
            rows = fold(event)
        except (cairn_events.EventDecodeError, UnacceptableEventError, FoldError) as exc:
            batch.dead.append(DeadLetter(seq, msg.subject, msg.data, str(exc)))
            continue
        except Exception as exc:  # a bug in a fold must not stop the projector
            log.exception("projector.fold_crashed", seq=seq, subject=msg.subject)
            reason = f"fold raised {type(exc).__name__}: {exc}"
            batch.dead.append(DeadLetter(seq, msg.subject, msg.data, reason))
            continue
        batch.projected.append(Projected(seq, msg.subject, msg.data, rows))
    batch.last_seq = high
    return batch


def check_subject(event: Any, subject: str, stream: EventStream = DEFAULT_STREAM) -> None:
    """Raise UnacceptableEventError unless ``subject`` is ``event``'s own subject in ``stream``.

    Any subject under ``<root>.>`` reaches the stream, so the subject proves
    nothing by itself: an artifact version is only taken from its name's claim
    subject, where the compare-and-set that numbered it ran.
    """
    try:
        expected = stream.subject_of(event)
    except (
        TypeError,
        NotImplementedError,
    ) as exc:  # a catalogue type with no subject can't be accepted anywhere
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
