"""Metadata as the terminal shows it: one table per card (``cairn artifact describe``)."""

from __future__ import annotations

from typing import Any

from cairn.metadata.values import decode_value
from cairn.models import MetadataEntry, metadata_cards

from .terminal import console


def shown_value(typed: dict[str, Any]) -> str:
    """A typed value as a table cell: its Python repr, with the type where it is special."""
    value = decode_value(typed["type"], typed["value"])
    kind = typed["type"]
    if kind in ("Uri", "Path", "DType"):
        return f"{value} ({kind})"
    if kind == "StorageSize":
        return f"{_bytes(int(value))} ({kind})"
    return repr(value) if not isinstance(value, str) else value


def print_cards(run_metadata: dict[str, MetadataEntry]) -> None:
    """Print ``run_metadata`` as cards: a table per dict-valued key, then Uncategorized."""
    from rich.markup import escape
    from rich.table import Table

    if not run_metadata:
        console().print("No metadata.")
        return
    for card in metadata_cards(run_metadata):
        table = Table(title=escape(card.title), title_justify="left", show_header=True)
        table.add_column("key")
        table.add_column("value", overflow="fold")
        for key, typed in card.entries.items():
            table.add_row(escape(key), escape(shown_value(typed)))
        console().print(table)


def _bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)
