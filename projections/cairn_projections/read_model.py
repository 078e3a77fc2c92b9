"""The small framework every read model module is written in: rows, folds, migration pieces.

A read model is one module. It declares

- its **row Structs**: one :class:`Row` subclass per kind of write. The fields are the
  columns the write fills and their annotations give the SQL types (see
  :func:`column_types`); the ClassVars say which table it writes, its conflict key, the
  columns it sets only when it inserts the row, and whether rows never change once
  written. Staging tables, COPY columns and upserts are derived from them
  (:mod:`.writes`); nothing lists the columns again;
- one :class:`ReadModel` value naming those rows and its :class:`Migration` pieces;
- its **folds**, registered by event type with ``@MODEL.folds(EventType)``: pure
  functions from one event to the rows it writes, typed so mypy checks each against its
  event class. A fold raises :class:`FoldError` for an event it cannot turn into rows;
- its queries, returning Structs.

:class:`Folds` combines the folds of several read models: what one projector applies.
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from enum import Enum
from typing import (
    Annotated,
    Any,
    ClassVar,
    NamedTuple,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

import msgspec
from cairn_events import AnyEvent, Event


class FoldError(ValueError):
    """An event that decodes but cannot be projected; the message says why."""


class SqlType(NamedTuple):
    """A column's SQL type where the annotation's default does not fit:
    ``position: Annotated[int, SqlType("integer")]``."""

    name: str


class Row(msgspec.Struct, kw_only=True):
    """One write to one table: its fields are the columns it fills (see the module docstring).

    Subclasses set ``TABLE``; ``KEY`` is the conflict key (``("id",)`` unless told),
    ``INSERT_ONLY`` the columns set only when the write inserts the row (a later write
    owns them), ``IMMUTABLE`` that a row, once written, never changes (the first write
    wins). Every write fills only its own columns, so the rows of different writes may be
    applied in any order (a step.finished before its step.started) and a log's rows
    applied again change nothing; rows of one write with one key are applied in log
    order, the last one (the first, for IMMUTABLE) winning.
    """

    TABLE: ClassVar[str]
    KEY: ClassVar[tuple[str, ...]] = ("id",)
    INSERT_ONLY: ClassVar[frozenset[str]] = frozenset()
    IMMUTABLE: ClassVar[bool] = False


_DEFAULT_SQL_TYPES: dict[Any, str] = {
    str: "text",
    int: "bigint",
    float: "double precision",
    bool: "boolean",
    datetime: "timestamptz",
    dict: "jsonb",
    list: "jsonb",
    Any: "jsonb",
}


@functools.cache
def column_types(row_type: type[Row]) -> dict[str, str]:
    """``{column: SQL type}`` of ``row_type``, in field order, from its annotations.

    ``str`` and string enums are text, ``int`` bigint, ``float`` double precision,
    ``bool`` boolean, ``datetime`` timestamptz, dicts, lists and ``Any`` jsonb; ``X | None``
    is the type of ``X``; an ``Annotated[..., SqlType(name)]`` says it outright.
    """
    hints = get_type_hints(row_type, include_extras=True)
    return {name: _sql_type(row_type, name, hints[name]) for name in row_type.__struct_fields__}


def _sql_type(row_type: type[Row], column: str, annotation: Any) -> str:
    if get_origin(annotation) is Annotated:
        base, *extras = get_args(annotation)
        for extra in extras:
            if isinstance(extra, SqlType):
                return extra.name
        annotation = base
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _sql_type(row_type, column, members[0])
    plain = get_origin(annotation) or annotation
    if isinstance(plain, type) and issubclass(plain, Enum) and issubclass(plain, str):
        return "text"
    if plain in _DEFAULT_SQL_TYPES:
        return _DEFAULT_SQL_TYPES[plain]
    raise TypeError(
        f"{row_type.__name__}.{column}: no SQL type for {annotation!r}; "
        "annotate it as Annotated[..., SqlType('...')]"
    )


def staging_table(row_type: type[Row]) -> str:
    """The session's temporary table that ``row_type``'s rows are copied into."""
    return "cairn_stage_" + re.sub(r"(?<!^)(?=[A-Z])", "_", row_type.__name__).lower()


class Migration(NamedTuple):
    """One schema migration, or a read model's piece of one.

    Pieces with the same ``version`` from several read models are applied together as
    that version (see :mod:`.migrations`); they share its ``name``.
    """

    version: int
    name: str
    sql: str


E = TypeVar("E", bound=Event)
#: A fold: one event in, the rows it writes out (empty when it writes nothing).
Fold = Callable[[E], list[Row]]


class ReadModel:
    """One read model: its row types, its migration pieces and its folds by event type."""

    def __init__(
        self, name: str, *, rows: Sequence[type[Row]] = (), migrations: Sequence[Migration] = ()
    ) -> None:
        self.name = name
        self.rows: tuple[type[Row], ...] = tuple(rows)
        self.migrations: tuple[Migration, ...] = tuple(migrations)
        self._folds: dict[type[Event], Callable[[Any], list[Row]]] = {}
        for row_type in self.rows:
            _check_row_type(row_type)

    def folds(self, event_type: type[E]) -> Callable[[Fold[E]], Fold[E]]:
        """Register the decorated function as this read model's fold of ``event_type``."""

        def register(fold: Fold[E]) -> Fold[E]:
            if event_type in self._folds:
                raise ValueError(f"read model {self.name!r} folds {event_type.__name__} twice")
            self._folds[event_type] = fold
            return fold

        return register

    @property
    def event_types(self) -> tuple[type[Event], ...]:
        """The event types this read model folds, in the order their folds were registered."""
        return tuple(self._folds)

    def fold_of(self, event_type: type[Event]) -> Callable[[Any], list[Row]] | None:
        return self._folds.get(event_type)

    def __repr__(self) -> str:
        return f"ReadModel({self.name!r})"


def _check_row_type(row_type: type[Row]) -> None:
    fields = set(row_type.__struct_fields__)
    if not getattr(row_type, "TABLE", None):
        raise TypeError(f"{row_type.__name__} names no TABLE")
    if missing := (set(row_type.KEY) | row_type.INSERT_ONLY) - fields:
        raise TypeError(f"{row_type.__name__}: KEY or INSERT_ONLY name no field {sorted(missing)}")
    column_types(row_type)  # every annotation must have an SQL type: fail at import, not COPY


class Folds:
    """The folds of several read models by event type: what one projector applies.

    Calling it folds one event into the rows of every read model that folds its type;
    :meth:`get` tells whether any does (a projector skips the events none folds).
    """

    def __init__(self, read_models: Iterable[ReadModel]) -> None:
        self.read_models = tuple(read_models)
        by_type: dict[type[Event], list[Callable[[Any], list[Row]]]] = {}
        for model in self.read_models:
            for event_type in model.event_types:
                fold = model.fold_of(event_type)
                assert fold is not None
                by_type.setdefault(event_type, []).append(fold)
        self._table = {t: _combined(folds) for t, folds in by_type.items()}
        self.row_types: tuple[type[Row], ...] = tuple(
            row_type for model in self.read_models for row_type in model.rows
        )

    @property
    def event_types(self) -> tuple[type[Event], ...]:
        return tuple(self._table)

    def get(self, event_type: type[Any]) -> Callable[[Any], list[Row]] | None:
        """The fold of ``event_type`` (of every read model folding it); None if none folds it."""
        return self._table.get(event_type)

    def __call__(self, event: AnyEvent) -> list[Row]:
        """The rows ``event`` writes; FoldError if no read model here folds its type."""
        fold = self._table.get(type(event))
        if fold is None:
            raise FoldError(f"no fold for event type {type(event).__name__}")
        return fold(event)


def _combined(folds: list[Callable[[Any], list[Row]]]) -> Callable[[Any], list[Row]]:
    if len(folds) == 1:
        return folds[0]

    def fold_each(event: Any) -> list[Row]:
        return [row for fold in folds for row in fold(event)]

    return fold_each


def require(event: Event, fields: tuple[str, ...]) -> None:
    """FoldError unless each of ``fields`` of ``event`` is non-empty (ids and names)."""
    for name in fields:
        if not getattr(event, name):
            raise FoldError(f"{event.tag} {event.event_id}: empty {name}")


R = TypeVar("R", bound=msgspec.Struct)


def record_to(type_: type[R], record: Any) -> R:
    """A query's row (an asyncpg Record) as ``type_``: columns by field name, others ignored."""
    return msgspec.convert(dict(record), type_)
