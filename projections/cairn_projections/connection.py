"""The slice of an asyncpg connection the projections use, as Protocols.

The projections never open connections; callers pass an asyncpg
``Connection`` (or a pool's connection proxy), which satisfies these.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol


class Queryable(Protocol):
    """What the queries need: asyncpg's ``fetch``, ``fetchrow`` and ``fetchval``."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any) -> Any: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


class Migratable(Queryable, Protocol):
    """What migrations need: queries, ``execute`` and ``transaction()``."""

    async def execute(self, query: str, *args: Any) -> str: ...

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...


class Configurable(Protocol):
    """A connection whose type codecs can be set (asyncpg ``set_type_codec``)."""

    async def set_type_codec(
        self,
        typename: str,
        *,
        schema: str = ...,
        encoder: Callable[[Any], Any],
        decoder: Callable[[Any], Any],
        format: str = ...,
    ) -> None: ...


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def server_settings(schema: str) -> dict[str, str]:
    """``server_settings`` for asyncpg.connect / create_pool selecting ``schema``."""
    return {"search_path": quote_ident(schema)}


async def init_connection(
    conn: Configurable,
    *,
    dumps: Callable[[Any], str] = json.dumps,
    loads: Callable[[str], Any] = json.loads,
) -> None:
    """Make jsonb/json columns read and write Python values (pass as a pool's ``init``)."""
    for typename in ("jsonb", "json"):
        await conn.set_type_codec(
            typename, schema="pg_catalog", encoder=dumps, decoder=loads, format="text"
        )
