"""The fallback for types no materializer claims: cloudpickle into artifact.pkl.

Also the pickle helpers other materializers use when a value cannot be stored
in their portable format. cloudpickle is imported only when something is pickled.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, ClassVar

from cairn.materializers.base import BaseMaterializer
from cairn.materializers.errors import MaterializerError

if TYPE_CHECKING:
    from cairn.artifact_stores.base import ArtifactStore

__all__ = ["CloudpickleMaterializer", "PickleFallbackWarning", "dump_pickle", "load_pickle"]


class PickleFallbackWarning(UserWarning):
    """A step output was pickled because no materializer is registered for its type."""


def dump_pickle(artifact_store: ArtifactStore, uri: str, data: Any) -> None:
    """Write data with cloudpickle (highest protocol) to the file uri."""
    import pickle

    import cloudpickle  # only values that need pickling pay for importing it

    try:
        blob = cloudpickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        raise MaterializerError(
            f"cannot pickle a {type(data).__qualname__} ({type(error).__name__}: {error}); "
            "write a materializer for this type (subclass cairn.materializers.BaseMaterializer) "
            "and pass it with @step(output_materializers=MyMaterializer)."
        ) from error
    with artifact_store.open(uri, "wb") as file:
        file.write(blob)


def load_pickle(artifact_store: ArtifactStore, uri: str) -> Any:
    """Read a value written by dump_pickle. Only load artifacts from stores you trust."""
    import pickle

    with artifact_store.open(uri, "rb") as file:
        blob = file.read()
    try:
        return pickle.loads(blob)
    except Exception as error:
        raise MaterializerError(
            f"cannot unpickle {uri!r} ({type(error).__name__}: {error}); pickles break when the "
            "Python or library versions differ from those that saved them. Load it with the "
            "versions that saved it, or re-run the step with a dedicated materializer."
        ) from error


class CloudpickleMaterializer(BaseMaterializer):
    """Pickles any value into artifact.pkl; chosen when no other materializer matches.

    Warns (PickleFallbackWarning) once per type per process, because a pickle
    can only be loaded with compatible Python and library versions. A step's
    save warns once per step output instead, naming them (see portability.py).
    """

    ASSOCIATED_TYPES = (object,)  # everything; lookup prefers any other match
    FILENAME: ClassVar[str] = "artifact.pkl"
    _warned: ClassVar[set[type]] = set()

    @staticmethod
    def fallback_advice(data_type: type) -> str:
        """Why pickling data_type is fragile and how to store it portably instead."""
        return (
            "Pickles may fail to load under other Python or library versions. To store it "
            "portably, subclass cairn.materializers.BaseMaterializer with "
            f"ASSOCIATED_TYPES = ({data_type.__qualname__},) and load/save methods, and pass "
            "it with @step(output_materializers=MyMaterializer) (or just define it: it "
            "registers itself for those types)."
        )

    def save(self, data: Any) -> None:
        data_type = type(data)
        if data_type not in self._warned:
            self._warned.add(data_type)
            warnings.warn(
                f"No materializer is registered for {data_type.__module__}."
                f"{data_type.__qualname__}, so this artifact is stored with cloudpickle. "
                + self.fallback_advice(data_type),
                PickleFallbackWarning,
                stacklevel=3,  # past the type check wrapped around save
            )
        dump_pickle(self.artifact_store, self.path(self.FILENAME), data)

    def load(self, data_type: type) -> Any:
        return load_pickle(self.artifact_store, self.path(self.FILENAME))
