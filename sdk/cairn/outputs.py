"""Storing a step's outputs: materialize each value, hash it, and prepare its version claim."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cairn_events import ArtifactMaterialized, new_id

from .naming import requested_version

if TYPE_CHECKING:
    from .artifact_stores import ArtifactStore
    from .naming import OutputSpec
    from .steps import Step


def save_outputs(
    store: ArtifactStore,
    step: Step,
    step_run_id: str,
    run_id: str,
    specs: list[OutputSpec],
    values: list[Any],
    names: dict[str, str],
) -> list[tuple[ArtifactMaterialized, str | None]]:
    """Store each output; all or none (files of a failed save are removed)."""
    from .materializers import materializer_for, qualified_name

    saved: list[tuple[ArtifactMaterialized, str | None]] = []
    try:
        for spec, value in zip(specs, values, strict=True):
            config = spec.config
            requested = requested_version(config.version if config else None, names[spec.key])
            materializer_cls = step.materializer_for_output(spec.key) or materializer_for(
                type(value)
            )
            artifact_version_id = new_id()
            uri = store.artifact_uri(names[spec.key], artifact_version_id)
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
            saved.append((template, requested))
    except BaseException:
        for template, _ in saved:
            store.rmtree(template.uri)
        raise
    return saved
