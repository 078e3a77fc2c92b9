"""The durable spool: append, read back in order, keep what arrived later, adopt orphans."""

from __future__ import annotations

from pathlib import Path

import msgspec
from cairn.spool import Spool, SpoolEntry, Unreadable, spool_files, write_orphan


def entry(n: int, claim: bool = False) -> SpoolEntry:
    return SpoolEntry(subject=f"cairn.run.{n}", event=msgspec.Raw(b'{"n":%d}' % n), claim=claim)


def subjects(spool: Spool) -> list[str]:
    return [e.subject for e, _ in spool.read()[0] if isinstance(e, SpoolEntry)]


def test_entries_read_back_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([entry(1), entry(2, claim=True)])
    spool.append([entry(3)])
    entries = subjects(spool)
    assert entries == ["cairn.run.1", "cairn.run.2", "cairn.run.3"]
    second = spool.read()[0][1][0]
    assert isinstance(second, SpoolEntry)
    assert second.claim and bytes(second.event) == b'{"n":2}'


def test_discard_keeps_entries_added_after_the_read(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([entry(1), entry(2)])
    _, end = spool.read()
    spool.append([entry(3)])  # arrived while the first two were being sent
    spool.discard_through(end)
    assert subjects(spool) == ["cairn.run.3"]


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
    assert subjects(adopter) == ["cairn.run.1"]
    assert not dead_path.exists() and alive.path.exists()


def test_an_empty_spool_file_is_removed_on_close(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([entry(1)])
    spool.discard_through(spool.read()[1])
    spool.close()
    assert list(tmp_path.glob("*.spool")) == []


def test_reading_from_an_offset_gives_each_entry_with_the_offset_past_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([entry(1), entry(2), entry(3)])
    found, end = spool.read()
    offsets = [offset for _, offset in found]
    assert offsets == sorted(offsets) and offsets[-1] == end
    rest, _ = spool.read(offsets[0])
    assert [e.subject for e, _ in rest if isinstance(e, SpoolEntry)] == [
        "cairn.run.2",
        "cairn.run.3",
    ]


def test_a_torn_line_is_reported_unreadable_and_the_rest_still_reads(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([entry(1)])
    spool._append_bytes(b'{"subject": "cairn.run.2", "ev\n')  # a write cut short by a crash
    spool.append([entry(3)])
    found = [e for e, _ in spool.read()[0]]
    assert isinstance(found[1], Unreadable) and b"cairn.run.2" in found[1].line
    assert [e.subject for e in found if isinstance(e, SpoolEntry)] == ["cairn.run.1", "cairn.run.3"]


def test_orphans_with_torn_lines_are_still_adopted_line_for_line(tmp_path: Path) -> None:
    orphan = tmp_path / "dead.spool"
    orphan.write_bytes(b'{"subject":"cairn.run.1","event":{"n":1}}\n{"subj')
    adopter = Spool(tmp_path)
    assert adopter.adopt_orphans() == 2
    found = [e for e, _ in adopter.read()[0]]
    assert isinstance(found[0], SpoolEntry) and isinstance(found[1], Unreadable)


def test_spool_files_tell_live_spools_from_orphans(tmp_path: Path) -> None:
    alive = Spool(tmp_path)
    alive.append([entry(1), entry(2)])
    orphan = write_orphan(tmp_path, [entry(3)])
    listed = {f.path: f for f in spool_files(tmp_path)}
    assert listed[alive.path].entries == 2 and not listed[alive.path].orphaned
    assert listed[orphan].entries == 1 and listed[orphan].orphaned
