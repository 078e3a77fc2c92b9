"""Storing artifacts: materialize a value, hash it, and prepare its version claim.

A step's outputs (:func:`save_outputs`) and artifacts saved by hand (``save_artifact``,
an ``ExternalArtifact``) are each stored by :func:`materialize`. The claim itself (with
the version asked for) is the caller's.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from cairn_events import ArtifactMaterialized, new_id

if TYPE_CHECKING:
    from .artifact_stores import ArtifactStore
    from .materializers.base import BaseMaterializer
    from .naming import OutputSpec
    from .steps import Step

MAIN = "__main__"  # materializers defined there cannot be imported by other processes
BUILTIN = "cairn.materializers."  # their files are all opened through the store


def save_outputs(
    store: ArtifactStore,
    step: Step,
    step_run_id: str,
    run_id: str,
    specs: list[OutputSpec],
    values: list[Any],
    names: dict[str, str],
) -> list[ArtifactMaterialized]:
    """Store each output under its artifact name in ``names``; all or none (files of a
    failed save are removed). Returns each output's version, still to be claimed.

    Materializers are chosen for all outputs before anything is written, so an
    output no materializer given for it can handle fails the step untouched.
    Each value is stored by :func:`materialize`.
    """
    from .materializers.portability import warn_if_unportable
    from .materializers.selection import materializers_for_outputs

    chosen = materializers_for_outputs(step, specs, values)
    saved: list[ArtifactMaterialized] = []
    try:
        for spec, value, (materializer_cls, given) in zip(specs, values, chosen, strict=True):
            if unportable(materializer_cls):
                warn_if_unportable(materializer_cls, type(value), step, spec.key, given)
            config = spec.config
            saved.append(
                materialize(
                    store,
                    value,
                    materializer_cls,
                    name=names[spec.key],
                    artifact_type=(config.artifact_type if config else None)
                    or ("model" if config and config.is_model_artifact else None),
                    tags=list(config.tags) if config else [],
                    run_id=run_id,
                    step_run_id=step_run_id,
                    output_name=spec.key,
                )
            )
    except BaseException:
        discard(store, saved)
        raise
    return saved


def materialize(
    store: ArtifactStore,
    value: Any,
    materializer_cls: type[BaseMaterializer],
    *,
    name: str,
    artifact_type: str | None = None,
    tags: list[str] | None = None,
    run_id: str | None = None,
    step_run_id: str | None = None,
    output_name: str | None = None,
) -> ArtifactMaterialized:
    """Store ``value`` as a new version of artifact ``name`` with ``materializer_cls``.

    Returns the version, still to be claimed; if storing fails its files are removed.
    The version's folder exists before the materializer's save() runs: on a local
    store, save() may write under self.uri with plain open(), as in ZenML. (Built-in
    materializers open every file through the store, which creates the folder with
    the first file; they skip that step.) ``artifact_type`` defaults to the
    materializer's; ``run_id`` and ``step_run_id`` name the producer (None for an
    artifact saved outside a step).
    """
    from .materializers import qualified_name

    artifact_version_id = new_id()
    uri = store.artifact_uri(name, artifact_version_id)
    try:
        if not materializer_cls.__module__.startswith(BUILTIN):  # built-ins: store.open does
            store.makedirs(uri)
        materializer = materializer_cls(uri, store)
        materializer.save(value)
        visualizations = materializer.save_visualizations(value)
        content_hash, size = store.digest(uri)
    except BaseException:
        with contextlib.suppress(Exception):  # the save's own error is the one to report
            store.rmtree(uri)
        raise
    return ArtifactMaterialized(
        artifact_version_id=artifact_version_id,
        name=name,
        version="",
        numeric_count=0,
        uri=uri,
        artifact_type=artifact_type or materializer_cls.ASSOCIATED_ARTIFACT_TYPE,
        data_type=qualified_name(type(value)),
        materializer=qualified_name(materializer_cls),
        content_hash=content_hash,
        size=size,
        producer_run_id=run_id,
        producer_step_run_id=step_run_id,
        output_name=output_name,
        tags=list(tags or ()),
        visualizations=visualizations,
        run_metadata=extracted_metadata(materializer, value, size),
    )


def extracted_metadata(materializer: BaseMaterializer, value: Any, size: int) -> dict[str, Any]:
    """What the materializer extracts from ``value``, and its storage size, as typed values.

    Extracting is a courtesy, not the save: a key it cannot record is left out with a
    warning naming the materializer and the key, and the version is stored all the same.
    """
    import warnings

    from .metadata import StorageSize
    from .metadata.values import MetadataValueError, encode_metadata

    try:
        extracted = dict(materializer.extract_metadata(value) or {})
    except Exception as error:
        warnings.warn(
            f"{type(materializer).__qualname__}.extract_metadata failed ({type(error).__name__}: "
            f"{error}); the version is stored without its metadata",
            stacklevel=2,
        )
        extracted = {}
    extracted.setdefault("storage_size", StorageSize(size))
    try:
        return encode_metadata(extracted)  # the usual case: all of it at once
    except MetadataValueError:
        pass
    encoded = {}
    for key, item in extracted.items():
        try:
            encoded.update(encode_metadata({key: item}))
        except MetadataValueError as error:
            warnings.warn(
                f"{type(materializer).__qualname__}.extract_metadata: {error}; left out",
                stacklevel=2,
            )
    return encoded


def unportable(materializer_cls: type[BaseMaterializer]) -> bool:
    """Whether values saved with ``materializer_cls`` may not load in another process (it
    pickles, or it is defined in ``__main__``): the step is warned about them."""
    from .materializers import CloudpickleMaterializer

    return materializer_cls is CloudpickleMaterializer or materializer_cls.__module__ == MAIN


def discard(store: ArtifactStore, versions: list[ArtifactMaterialized]) -> None:
    """Remove the files of stored versions nothing will refer to (their save failed)."""
    for version in versions:
        with contextlib.suppress(Exception):  # the failure that led here is the one to report
            store.rmtree(version.uri)


def materializer_for_value(value: Any, given: Any, *, what: str) -> type[BaseMaterializer]:
    """The materializer ``value`` is saved with by hand (``save_artifact``, ExternalArtifact).

    ``given`` is None (the registry's choice for the value's type, as for step outputs), a
    materializer class or its ``"module.Class"`` source. ``what`` names the call in errors
    ("save_artifact(name='x')"): a TypeError for something that is not a materializer, a
    MaterializerTypeError when its ASSOCIATED_TYPES do not cover the value's type.
    """
    from .materializers.base import BaseMaterializer, associated_label, type_label
    from .materializers.errors import MaterializerError, MaterializerTypeError
    from .materializers.registry import import_qualified, materializer_for
    from .materializers.selection import select_materializer

    if given is None:
        return materializer_for(type(value))
    found = given
    if isinstance(given, str):
        try:
            found = import_qualified(given)
        except MaterializerError as error:
            raise TypeError(
                f"{what} was given the materializer source {given!r}, which does not import: "
                f"{error}"
            ) from None
    if not (isinstance(found, type) and issubclass(found, BaseMaterializer)):
        source = f"the source {given!r}, which is " if isinstance(given, str) else ""
        raise TypeError(
            f"{what} was given {source}{found!r} as materializer; give a subclass of "
            "cairn.materializers.BaseMaterializer (the class, or its 'module.Class' source)."
        )
    if select_materializer(type(value), (found,)) is None:
        raise MaterializerTypeError(
            f"{what}: the value is of type {type_label(type(value))}, which {found.__qualname__} "
            f"cannot save (ASSOCIATED_TYPES {associated_label(found)}). Give a materializer for "
            "that type, or leave materializer out to use the one registered for it. Nothing "
            "was stored."
        )
    return found
