"""One codec for every event: JSON on the wire, upgraded on read.

Decoding reads the ``type`` and ``schema`` fields first; an event at its
current schema goes straight through the typed decoder, an older one is
upgraded by the registered upcasters before conversion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import msgspec

from ._envelope import Event

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
E = TypeVar("E", bound=Event)


class EventDecodeError(ValueError):
    """Bytes that are not a valid event of a known type and schema; carries the reason."""


class _Head(msgspec.Struct):
    type: str
    schema: int = 1


class EventCodec(Generic[E]):
    """Encodes events to JSON bytes and decodes them back (as ``E``), upgrading old shapes.

    ``upcasters`` maps ``(tag, schema)`` to a function turning a raw event of
    that schema into the raw shape of ``schema + 1``.
    """

    def __init__(
        self,
        event_types: Iterable[type[Event]],
        upcasters: dict[tuple[str, int], Upcaster] | None = None,
    ) -> None:
        types = tuple(event_types)
        self._current = {t.__struct_config__.tag: _current_schema(t) for t in types}
        self._current_by_type = {t: _current_schema(t) for t in types}
        self._union: Any = types[0] if len(types) == 1 else _union_of(types)
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(self._union)
        self._head = msgspec.json.Decoder(_Head)
        self._encoder = msgspec.json.Encoder()
        self._upcasters: dict[tuple[str, int], Upcaster] = dict(upcasters or {})

    def register_upcaster(self, tag: str, from_schema: int, upcaster: Upcaster) -> None:
        """Teach the codec to lift ``tag`` events from ``from_schema`` to the next."""
        self._upcasters[(tag, from_schema)] = upcaster

    def encode(self, event: Event) -> bytes:
        return self._encoder.encode(event)

    def decode(self, data: bytes) -> E:
        """The event in ``data`` at its current shape; raises EventDecodeError otherwise."""
        try:  # fast path: one typed pass for an event at its current schema
            event = self._decoder.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return self._decode_carefully(data)
        if event.schema == self._current_by_type[type(event)]:
            return event  # type: ignore[no-any-return]
        return self._decode_carefully(data)

    def _decode_carefully(self, data: bytes) -> E:
        """Read type and schema first: upgrade old shapes, explain what cannot be read."""
        try:
            head = self._head.decode(data)
        except msgspec.DecodeError as exc:
            raise EventDecodeError(f"not an event envelope: {exc}") from None
        current = self._current.get(head.type)
        if current is None:
            raise EventDecodeError(f"unknown event type {head.type!r}")
        try:
            if head.schema == current:
                return self._decoder.decode(data)  # type: ignore[no-any-return]
            if head.schema > current:
                raise EventDecodeError(
                    f"{head.type} schema {head.schema} is newer than this reader's "
                    f"({current}); upgrade cairn to read it"
                )
            raw = msgspec.json.decode(data)
            for schema in range(head.schema, current):
                step = self._upcasters.get((head.type, schema))
                if step is None:
                    raise EventDecodeError(
                        f"no upcaster for {head.type} from schema {schema} to {schema + 1}"
                    )
                raw = step(raw)
                raw["schema"] = schema + 1
            return msgspec.convert(raw, self._union)  # type: ignore[no-any-return]
        except msgspec.ValidationError as exc:
            raise EventDecodeError(f"invalid {head.type} event: {exc}") from None
        except msgspec.DecodeError as exc:
            raise EventDecodeError(f"malformed {head.type} event: {exc}") from None


def _current_schema(event_type: type[Event]) -> int:
    default = event_type.__struct_defaults__[event_type.__struct_fields__.index("schema")]
    return int(default)


def _union_of(types: tuple[type[Event], ...]) -> Any:
    union: Any = types[0]
    for t in types[1:]:
        union = union | t
    return union
