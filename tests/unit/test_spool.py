"""The durable spool: append, read back in order, keep what arrived later, adopt orphans."""

from __future__ import annotations

from pathlib import Path

import msgspec
from cairn.spool import Spool, SpoolEntry


def entry(n: int, claim: bool = False) -> SpoolEntry:
    return SpoolEntry(subject=f"cairn.run.{n}", event=msgspec.Raw(b'{"n":%d}' % n), claim=claim)


def test_entries_read_back_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([entry(1), entry(2, claim=True)])
    spool.append([entry(3)])
    entries, _ = spool.read()
    assert [e.subject for e in entries] == ["cairn.run.1", "cairn.run.2", "cairn.run.3"]
    assert entries[1].claim and bytes(entries[1].event) == b'{"n":2}'


def test_discard_keeps_entries_added_after_the_read(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([entry(1), entry(2)])
    _, end = spool.read()
    spool.append([entry(3)])  # arrived while the first two were being sent
    spool.discard_through(end)
    assert [e.subject for e in spool.read()[0]] == ["cairn.run.3"]


def test_orphans_are_adopted_but_live_spools_are_left_alone(tmp_path: Path) -> None:
    dead = Spool(tmp_path)
    dead.append([entry(1)])
    dead_path = dead.path
    alive = Spool(tmp_path)
    alive.append([entry(2)])
    # the dead process's lock goes with its file descriptor
    import os

    assert dead._fd is not None
    os.close(dead._fd)
    dead._fd = None

    adopter = Spool(tmp_path)
    assert adopter.adopt_orphans() == 1
    assert [e.subject for e in adopter.read()[0]] == ["cairn.run.1"]
    assert not dead_path.exists() and alive.path.exists()


def test_an_empty_spool_file_is_removed_on_close(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([entry(1)])
    spool.discard_through(spool.read()[1])
    spool.close()
    assert list(tmp_path.glob("*.spool")) == []
