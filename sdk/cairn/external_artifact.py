"""Artifacts from outside a pipeline as step inputs: ``ExternalArtifact`` and artifact ids.

A step argument is an *input* (a lineage link in step.started), not a parameter, when it
is an artifact version read from the Client, an ``ExternalArtifact`` (a value saved once,
the first time a run needs it), or the id of an artifact version: a ``uuid.UUID``, or a
str that is a whole UUID, when the argument's annotation cannot take it as a parameter
(an ``int``, a DataFrame, a model). An argument annotated ``str``, ``UUID`` or ``Any``
(or not at all) keeps such a value as a parameter, as before.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .models import ArtifactVersion

if TYPE_CHECKING:
    from .materializers.base import BaseMaterializer

#: The length of a UUID written out whole (8-4-4-4-12 hex digits), as artifact ids are.
_UUID_TEXT_LENGTH = 36


class ExternalArtifact:
    """A value handed to a step as an input artifact (ZenML's ``ExternalArtifact``).

    ``ExternalArtifact(value=df)`` in a pipeline function: the first run that needs it
    saves the value (as a new artifact ``external_<id>``, with ``materializer`` if given,
    else the one registered for its type), and every step reading this object, in that
    run or a later one, reads that one version. ``id`` is the version's id once saved.
    A value is required: an artifact that is stored already is passed as
    ``Client().get_artifact_version(name)`` (or its id) instead.
    """

    def __init__(self, value: Any = None, materializer: Any = None) -> None:
        if value is None:
            raise ValueError(
                "ExternalArtifact needs a value to save: ExternalArtifact(value=...). To hand "
                "a step an artifact that is stored already, pass "
                "Client().get_artifact_version(name) (or its id) as the argument; to hand it "
                "None, pass None itself."
            )
        from .outputs import materializer_for_value

        self.value = value
        #: The materializer as given (a class, a "module.Class" source, or None).
        self.materializer = materializer
        self.materializer_class: type[BaseMaterializer] = materializer_for_value(
            value, materializer, what="ExternalArtifact(value=...)"
        )
        self._saved: ArtifactVersion | None = None
        self._lock = threading.Lock()

    @property
    def version(self) -> ArtifactVersion | None:
        """The artifact version holding the value; None until a run saved it."""
        return self._saved

    @property
    def id(self) -> str | None:
        """The id of the version holding the value (ZenML's ``id``); None until saved."""
        return None if self._saved is None else self._saved.id

    def save_once(self, save: Callable[[ExternalArtifact], ArtifactVersion]) -> ArtifactVersion:
        """The saved version: ``save(self)`` the first time (once, even across threads)."""
        with self._lock:
            if self._saved is None:
                self._saved = save(self)
            return self._saved

    def __repr__(self) -> str:
        state = f"saved as {self._saved.name!r}" if self._saved else "not saved yet"
        return f"<ExternalArtifact {type(self.value).__qualname__} ({state})>"


def artifact_id(value: Any) -> str | None:
    """The artifact version id ``value`` spells (a UUID, or a str that is a whole UUID), in
    the form ids are stored in; None if it spells none."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str) and len(value) == _UUID_TEXT_LENGTH:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            return None
    return None


def version_by_id(artifact_version_id: str, refused: Exception) -> ArtifactVersion:
    """The artifact version an argument names by its id, read from the Client.

    ``refused`` is why the argument is not a parameter (its annotation cannot take the
    value); a NotFoundError saying both when no version has the id.
    """
    from .client import Client
    from .errors import NotFoundError

    with Client() as client:
        try:
            return client.get_artifact_version(artifact_version_id)
        except NotFoundError as missing:
            raise NotFoundError(
                f"{refused}. As it is a whole UUID it was read as the id of an artifact "
                f"version: {str(missing).rstrip('.')}. Pass the id of a stored version "
                "(Client().get_artifact_version(name).id), the version itself, or a value "
                "the annotation takes."
            ) from None
