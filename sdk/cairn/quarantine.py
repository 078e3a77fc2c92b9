"""Events NATS refused, kept beside the spool with the reason, until retried or discarded.

A refused event is never retried by itself (it would fail the same way and
stall everything behind it). Each process appends to its own file under
``$CAIRN_HOME/spool/quarantine``; ``cairn spool status|retry|discard`` reads
them all.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from datetime import datetime
from pathlib import Path

import msgspec
import structlog
from cairn_events import new_id, utcnow

from .spool import SpoolEntry

log = structlog.get_logger(__name__)

QUARANTINE_SUFFIX = ".quarantine"
#: Refused events told on stderr one by one; after that, once, how to list them.
_REPORTED = 3


class QuarantinedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One refused event: what it was, where it was going, why it was refused, and when."""

    event_id: str
    event_type: str
    entry: SpoolEntry
    reason: str
    quarantined_at: datetime
    pid: int


class _Head(msgspec.Struct):
    event_id: str = ""
    type: str = "?"


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(QuarantinedEvent)
_head = msgspec.json.Decoder(_Head)


def quarantined(entry: SpoolEntry, reason: str) -> QuarantinedEvent:
    """``entry`` as a quarantine record, with the id and type read from its event if it has them."""
    try:
        head = _head.decode(entry.event)
    except (msgspec.DecodeError, msgspec.ValidationError):
        head = _Head()
    return QuarantinedEvent(
        event_id=head.event_id or f"unreadable-{new_id()}",
        event_type=head.type,
        entry=entry,
        reason=reason,
        quarantined_at=utcnow(),
        pid=os.getpid(),
    )


class Quarantine:
    """The quarantine folder: this process appends to its own file; anyone may list or remove."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = (
            directory / f"{socket.gethostname()}-{os.getpid()}-{new_id()}{QUARANTINE_SUFFIX}"
        )
        #: How many events this process quarantined.
        self.kept = 0

    def keep(self, entry: SpoolEntry, reason: str) -> QuarantinedEvent:
        """Quarantine a refused ``entry`` and report it: in the log, and the first few on stderr."""
        record = quarantined(entry, reason)
        self.add(record)
        self.kept += 1
        log.error(
            "quarantine.event_kept",
            event_id=record.event_id,
            event_type=record.event_type,
            subject=entry.subject[:200],
            reason=reason,
            file=str(self.path),
        )
        if self.kept <= _REPORTED:
            sys.stderr.write(
                f"cairn: NATS refused {record.event_type} event {record.event_id}: {reason}. "
                f"It is kept in {self.path}; `cairn spool status` lists it, "
                "`cairn spool retry` or `cairn spool discard` handles it.\n"
            )
        elif self.kept == _REPORTED + 1:
            sys.stderr.write("cairn: NATS refused more events; `cairn spool status` lists them\n")
        return record

    def add(self, record: QuarantinedEvent) -> None:
        """Keep ``record`` durably (fsync)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # against a `cairn spool discard` rewriting it
            os.write(fd, _encoder.encode(record) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[QuarantinedEvent]:
        """Every quarantined event, oldest first, once per event id."""
        found: dict[str, QuarantinedEvent] = {}
        for path in self._files():
            for record in _read(path):
                found.setdefault(record.event_id, record)
        return sorted(found.values(), key=lambda r: r.quarantined_at)

    def remove(self, event_ids: set[str] | None) -> list[QuarantinedEvent]:
        """Take the events with these ids (all when None) out of quarantine; returns them."""
        taken: dict[str, QuarantinedEvent] = {}
        for path in self._files():
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                records = _read(path)
                keep = [r for r in records if event_ids is not None and r.event_id not in event_ids]
                for record in records:
                    if event_ids is None or record.event_id in event_ids:
                        taken.setdefault(record.event_id, record)
                if len(keep) == len(records):
                    continue
                if keep:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, b"".join(_encoder.encode(r) + b"\n" for r in keep), 0)
                    os.fsync(fd)
                else:
                    path.unlink()
            finally:
                os.close(fd)
        return sorted(taken.values(), key=lambda r: r.quarantined_at)

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"*{QUARANTINE_SUFFIX}"))


def _read(path: Path) -> list[QuarantinedEvent]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for line in data.splitlines():
        if line.strip():
            try:
                records.append(_decoder.decode(line))
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # a torn last line of a process killed mid-write: nothing to keep
    return records
