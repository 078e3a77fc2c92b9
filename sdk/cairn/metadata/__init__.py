"""Metadata: the special types (``from cairn.metadata import Uri, Path, DType, StorageSize``).

``cairn.metadata.metadata_types`` holds them too, where ZenML keeps them.
"""

from __future__ import annotations

from .metadata_types import DType, MetadataType, MetadataTypeEnum, Path, StorageSize, Uri

__all__ = ["DType", "MetadataType", "MetadataTypeEnum", "Path", "StorageSize", "Uri"]
