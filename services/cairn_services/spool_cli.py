"""``cairn spool``: events waiting for NATS, and events NATS refused.

``status`` lists both; ``retry`` sends orphaned spools and quarantined events
again; ``discard`` drops quarantined events (and, asked, orphaned spools).
Spools held by running processes are theirs to send and are only listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import msgspec
import typer

from .terminal import console

if TYPE_CHECKING:
    from pathlib import Path

    from cairn.quarantine import Quarantine
    from cairn.spool import SpoolEntry

spool_app = typer.Typer(
    help="Events waiting for NATS, and events NATS refused.", no_args_is_help=True
)


class _Name(msgspec.Struct):
    name: str = "?"


def _where(entry: SpoolEntry) -> str:
    """What a quarantined entry was: the artifact a claim was for, else its subject."""
    if entry.claim:
        try:
            name = msgspec.json.decode(entry.event, type=_Name).name
        except (msgspec.DecodeError, msgspec.ValidationError):
            name = "?"
        shown = name if len(name) <= 60 else f"{name[:60]}... ({len(name)} chars)"
        return f"version claim of {shown!r}"
    return entry.subject if len(entry.subject) <= 60 else f"{entry.subject[:60]}..."


def _dirs() -> tuple[Path, Quarantine]:
    from cairn.quarantine import Quarantine
    from cairn.settings import cairn_home

    spool_dir = cairn_home() / "spool"
    return spool_dir, Quarantine(spool_dir / "quarantine")


@spool_app.command("status")
def status() -> None:
    """Spool files (of running processes and orphaned) and quarantined events."""
    from cairn.spool import spool_files
    from rich.table import Table

    spool_dir, quarantine = _dirs()
    files = spool_files(spool_dir)
    records = quarantine.records()
    if not files and not records:
        console().print(f"Nothing waits under {spool_dir}: every event was sent.")
        return
    if files:
        table = Table("spool file", "events", "state", title=f"Spooled under {spool_dir}")
        for f in files:
            state = (
                "orphaned: the next Cairn process sends it (or `cairn spool retry`)"
                if f.orphaned
                else "held by a running process, which sends it when NATS is back"
            )
            table.add_row(f.path.name, str(f.entries), state)
        console().print(table)
    if records:
        table = Table("event id", "type", "for", "refused because", "when", title="Quarantined")
        for r in records:
            when = r.quarantined_at.strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(r.event_id, r.event_type, _where(r.entry), r.reason, when)
        console().print(table)
        console().print(
            "Retry them with `cairn spool retry [EVENT_ID...]` once the cause is fixed, "
            "or drop them with `cairn spool discard EVENT_ID... | --all`."
        )


@spool_app.command("retry")
def retry(
    event_ids: Annotated[
        list[str] | None, typer.Argument(help="Quarantined events to retry (default all).")
    ] = None,
) -> None:
    """Send orphaned spools and quarantined events (all, or those named) to NATS again."""
    from cairn.spool import spool_files, write_orphan
    from cairn.tracking import get_tracker

    spool_dir, quarantine = _dirs()
    wanted = set(event_ids) if event_ids else None
    records = [r for r in quarantine.records() if wanted is None or r.event_id in wanted]
    if wanted and (unknown := wanted - {r.event_id for r in records}):
        console().print(f"[red]error:[/] not quarantined: {', '.join(sorted(unknown))}")
        raise typer.Exit(2)
    orphaned = sum(f.entries for f in spool_files(spool_dir) if f.orphaned)
    if not records and not orphaned:
        console().print("Nothing to retry: no quarantined events and no orphaned spools.")
        return
    if records:  # into a spool first, out of quarantine after: a crash between leaves a copy
        write_orphan(spool_dir, [r.entry for r in records])
        quarantine.remove({r.event_id for r in records})
    tracker = get_tracker()  # connecting adopts the orphaned spools and sends them
    tracker.flush()
    publisher = tracker.publisher
    again = publisher.refused
    waiting = publisher.spooled
    sent = len(records) + orphaned - again - waiting
    console().print(f"Sent {sent} of {len(records) + orphaned} events.")
    if again:
        console().print(f"[yellow]{again} were refused again[/]; `cairn spool status` says why.")
    if waiting:
        console().print(f"{waiting} still wait for NATS in {publisher.spool.path}.")
    if again or waiting:
        raise typer.Exit(1)


@spool_app.command("discard")
def discard(
    event_ids: Annotated[
        list[str] | None, typer.Argument(help="Quarantined events to drop.")
    ] = None,
    all_: bool = typer.Option(False, "--all", help="Drop every quarantined event."),
    orphans: bool = typer.Option(
        False, "--orphans", help="Also drop orphaned spools (events never sent)."
    ),
    yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask."),
) -> None:
    """Drop quarantined events for good (they are not on the log, so nothing records them)."""
    from cairn.spool import discard_orphans, spool_files

    spool_dir, quarantine = _dirs()
    if not event_ids and not all_ and not orphans:
        console().print(
            "[red]error:[/] name the events to drop (`cairn spool status` lists them), "
            "or give --all (every quarantined event) or --orphans (orphaned spools)."
        )
        raise typer.Exit(2)
    if event_ids and all_:
        console().print("[red]error:[/] give event ids or --all, not both.")
        raise typer.Exit(2)
    records = quarantine.records()
    chosen = [r for r in records if all_ or r.event_id in set(event_ids or ())]
    if event_ids and (unknown := set(event_ids) - {r.event_id for r in chosen}):
        console().print(f"[red]error:[/] not quarantined: {', '.join(sorted(unknown))}")
        raise typer.Exit(2)
    orphaned = sum(f.entries for f in spool_files(spool_dir) if f.orphaned) if orphans else 0
    if not chosen and not orphaned:
        console().print("Nothing to discard.")
        return
    what = f"{len(chosen)} quarantined event(s)" + (
        f" and {orphaned} orphaned spooled event(s)" if orphaned else ""
    )
    if not yes and not typer.confirm(f"Drop {what} for good?", default=False):
        raise typer.Exit(1)
    removed = quarantine.remove({r.event_id for r in chosen}) if chosen else []
    dropped = discard_orphans(spool_dir) if orphans else 0
    console().print(f"Dropped {len(removed)} quarantined and {dropped} orphaned spooled event(s).")
