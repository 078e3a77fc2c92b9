"""ZenML's import path for the materializer base class.

``from cairn.materializers.base_materializer import BaseMaterializer`` gives the
same class as ``cairn.materializers.BaseMaterializer`` (defined in base.py).
"""

from cairn.materializers.base import BaseMaterializer

__all__ = ["BaseMaterializer"]
