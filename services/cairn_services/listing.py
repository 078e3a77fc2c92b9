"""The CLI's lists: tables that never cut the names a user copies into the next command.

A column marked ``whole`` (run and artifact names, versions, ids) is as wide as its
longest value and never wraps; the other columns share what is left of the
terminal, wrapping between words inside their cells. When that does not fit (a
200-character artifact name at 80 columns), each row becomes a block instead: its
whole values on lines of their own, unbroken, then the rest beneath.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from rich.console import Console, OverflowMethod
from rich.table import Table
from rich.text import Text

#: Per column, a table spends one border and two padding characters; plus the last border.
_COLUMN_CHROME = 3


class Column(msgspec.Struct, frozen=True):
    header: str
    whole: bool = False  # a name, version or id: shown unbroken, never shortened


def print_listing(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]], *, empty: str
) -> None:
    """Print ``rows`` under ``columns`` as a table if the whole columns fit, else as blocks."""
    if not rows:
        console.print(empty, soft_wrap=True, markup=False, emoji=False)
        return
    widths = _fitted_widths(columns, rows, console.width)
    if widths is None:
        _print_blocks(console, columns, rows)
        return
    table = Table()
    for column, width in zip(columns, widths, strict=True):
        overflow: OverflowMethod = "ignore" if column.whole else "fold"
        table.add_column(column.header, width=width, no_wrap=column.whole, overflow=overflow)
    for row in rows:
        table.add_row(*(Text(value) for value in row))  # Text: a "[b]" in a name is no markup
    console.print(table)


def _fitted_widths(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], available: int
) -> list[int] | None:
    """Each column's width in a table ``available`` wide; None if the whole columns can't fit.

    Wrapping columns give up width widest first, down to their longest word (cells wrap
    between words, never inside one); if that is not enough, None too.
    """
    natural = [
        max(len(column.header), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)
    ]
    wrapping = [i for i, column in enumerate(columns) if not column.whole]
    room = available - _COLUMN_CHROME * len(columns) - 1
    room -= sum(natural[i] for i, column in enumerate(columns) if column.whole)
    longest_word = {
        i: max(
            len(word)
            for text in [columns[i].header, *(row[i] for row in rows)]
            for word in text.split() or [""]
        )
        for i in wrapping
    }
    if sum(longest_word.values()) > room:
        return None
    widths = list(natural)
    while sum(widths[i] for i in wrapping) > room:
        widest = max((i for i in wrapping if widths[i] > longest_word[i]), key=widths.__getitem__)
        widths[widest] -= 1
    return widths


def _print_blocks(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]]
) -> None:
    """One block per row: its whole values first, each on its own line, then the others.

    The first line starts at the margin and the rest of the block is indented under it.
    """
    for row in rows:
        whole = [
            f"{column.header}: {value}"
            for column, value in zip(columns, row, strict=True)
            if column.whole
        ]
        for i, line in enumerate(whole):
            console.print(
                line if i == 0 else "  " + line,
                soft_wrap=True,
                markup=False,
                emoji=False,
                highlight=False,
            )
        rest = [
            f"{column.header}: {value}"
            for column, value in zip(columns, row, strict=True)
            if not column.whole
        ]
        console.print("  " + "  ".join(rest), markup=False, emoji=False)
        console.print()
