"""Turning fetched messages into what one transaction writes: row changes and dead letters."""

from __future__ import annotations

from dataclasses import dataclass, field

import cairn_events
import structlog
from cairn_projections import FoldError, RowChange, fold
from nats.aio.msg import Msg

from .consumer import stream_seq

log = structlog.get_logger(__name__)


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

    A message that can't be decoded or folded becomes a DeadLetter with the
    reason; the rest of the batch is unaffected. Messages at or below
    ``after_seq`` or ``into.last_seq`` (redeliveries of committed work) are
    skipped. With ``into``, the messages are added to that batch.
    """
    batch = into if into is not None else Batch(last_seq=after_seq)
    high = max(after_seq, batch.last_seq)
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
            changes = fold(cairn_events.decode(msg.data))
        except (cairn_events.EventDecodeError, FoldError) as exc:
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
