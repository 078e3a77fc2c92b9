"""Materializers: how step outputs are saved to and loaded from an artifact store.

`materializer_for(type(value))` picks the class; built-ins cover Python's own
types, numpy, pandas and pydantic, and anything else is pickled (with a
PickleFallbackWarning). Define a BaseMaterializer subclass to take over a type,
or give one to a step with @step(output_materializers=...) (see selection.py).

Importing this package does not import numpy, pandas, pyarrow, pydantic or
cloudpickle; each materializer imports its library when it first needs it.
"""

from cairn.materializers.base import ARTIFACT_TYPES, BaseMaterializer
from cairn.materializers.builtin import (
    BuiltInContainerMaterializer,
    BuiltInMaterializer,
    BytesMaterializer,
)
from cairn.materializers.cloudpickle_materializer import (
    CloudpickleMaterializer,
    PickleFallbackWarning,
)
from cairn.materializers.errors import (
    MaterializerError,
    MaterializerNotFoundError,
    MaterializerTypeError,
)
from cairn.materializers.numpy_materializer import NumpyMaterializer
from cairn.materializers.pandas_materializer import PandasMaterializer
from cairn.materializers.portability import MainModuleMaterializerWarning
from cairn.materializers.pydantic_materializer import PydanticMaterializer
from cairn.materializers.registry import materializer_by_name, materializer_for, qualified_name

__all__ = [
    "ARTIFACT_TYPES",
    "BaseMaterializer",
    "BuiltInContainerMaterializer",
    "BuiltInMaterializer",
    "BytesMaterializer",
    "CloudpickleMaterializer",
    "MainModuleMaterializerWarning",
    "MaterializerError",
    "MaterializerNotFoundError",
    "MaterializerTypeError",
    "NumpyMaterializer",
    "PandasMaterializer",
    "PickleFallbackWarning",
    "PydanticMaterializer",
    "materializer_by_name",
    "materializer_for",
    "qualified_name",
]
