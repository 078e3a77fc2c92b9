"""Storing a step's outputs: materialize each value, hash it, and prepare its version claim.

The claim itself (with the version the output asks for) is the step executor's.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from cairn_events import ArtifactMaterialized, new_id

if TYPE_CHECKING:
    from .artifact_stores import ArtifactStore
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
    Each output's folder exists before its materializer's save() runs: on a
    local store, save() may write under self.uri with plain open(), as in ZenML.
    (Built-in materializers open every file through the store, which creates
    the folder with the first file; they skip that step.)
    """
    from .materializers import CloudpickleMaterializer, qualified_name
    from .materializers.portability import warn_if_unportable
    from .materializers.selection import materializers_for_outputs

    chosen = materializers_for_outputs(step, specs, values)
    saved: list[ArtifactMaterialized] = []
    writing: str | None = None  # the uri being written, removed with the saved ones on failure
    try:
        for spec, value, (materializer_cls, given) in zip(specs, values, chosen, strict=True):
            config = spec.config
            artifact_version_id = new_id()
            writing = uri = store.artifact_uri(names[spec.key], artifact_version_id)
            if not materializer_cls.__module__.startswith(BUILTIN):  # built-ins: store.open does
                store.makedirs(uri)
            if materializer_cls is CloudpickleMaterializer or materializer_cls.__module__ == MAIN:
                warn_if_unportable(materializer_cls, type(value), step, spec.key, given)
            materializer = materializer_cls(uri, store)
            materializer.save(value)
            visualizations = materializer.save_visualizations(value)
            content_hash, size = store.digest(uri)
            artifact_type = (
                (config.artifact_type if config else None)
                or ("model" if config and config.is_model_artifact else None)
                or materializer_cls.ASSOCIATED_ARTIFACT_TYPE
            )
            template = ArtifactMaterialized(
                artifact_version_id=artifact_version_id,
                name=names[spec.key],
                version="",
                numeric_count=0,
                uri=uri,
                artifact_type=artifact_type,
                data_type=qualified_name(type(value)),
                materializer=qualified_name(materializer_cls),
                content_hash=content_hash,
                size=size,
                producer_run_id=run_id,
                producer_step_run_id=step_run_id,
                output_name=spec.key,
                tags=list(config.tags) if config else [],
                visualizations=visualizations,
            )
            saved.append(template)
            writing = None
    except BaseException:
        leftovers = [template.uri for template in saved]
        if writing is not None:
            leftovers.append(writing)
        for leftover in leftovers:
            with contextlib.suppress(Exception):  # the step's own error is the one to report
                store.rmtree(leftover)
        raise
    return saved
