"""numpy arrays and scalars as .npy files; numpy is imported only when one is saved or loaded."""

from __future__ import annotations

from typing import Any

from cairn.artifact_stores.errors import ArtifactNotFoundError
from cairn.materializers.base import BaseMaterializer
from cairn.materializers.cloudpickle_materializer import dump_pickle, load_pickle

__all__ = ["NumpyMaterializer"]

NPY_FILENAME = "array.npy"
PICKLE_FILENAME = "array.pkl"


class NumpyMaterializer(BaseMaterializer):
    """numpy.ndarray (and numpy scalars such as numpy.float64) in array.npy.

    Written with numpy.save(allow_pickle=False), so loading never runs pickle
    code. Arrays of dtype object, ndarray subclasses (masked arrays, matrix)
    and anything numpy refuses to write without pickle go to array.pkl instead,
    so load returns exactly what was saved. Records shape and dtype.
    """

    ASSOCIATED_TYPES = ("numpy.ndarray", "numpy.generic")

    def save(self, data: Any) -> None:
        import numpy as np

        exact = type(data) is np.ndarray or isinstance(data, np.generic)
        if exact and not data.dtype.hasobject:
            with self.artifact_store.open(self.path(NPY_FILENAME), "wb") as file:
                np.save(file, data, allow_pickle=False)
            return
        dump_pickle(self.artifact_store, self.path(PICKLE_FILENAME), data)

    def load(self, data_type: type) -> Any:
        import numpy as np

        try:
            file = self.artifact_store.open(self.path(NPY_FILENAME), "rb")
        except ArtifactNotFoundError:
            return load_pickle(self.artifact_store, self.path(PICKLE_FILENAME))
        with file:
            array = np.load(file, allow_pickle=False)
        if isinstance(data_type, type) and issubclass(data_type, np.generic):
            return array[()]  # a scalar was saved as a 0-d array
        return array

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        from cairn.metadata import DType

        return {"shape": tuple(int(n) for n in data.shape), "dtype": DType(data.dtype)}
