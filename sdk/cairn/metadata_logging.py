"""``log_metadata`` and the seed's three functions on it: each call is one ``metadata.logged``.

What a call attaches to is found in this order (ZenML's keywords; naming targets of two
kinds in one call is an error):

- a step run: ``step_id``, or ``step_name`` of the run ``run_id_name_or_prefix`` (of the
  running step's run, inside a step);
- a pipeline run: ``run_id_name_or_prefix`` alone;
- an artifact version: ``artifact_version_id``, or ``artifact_name`` (+ ``artifact_version``,
  latest when None), or inside a step ``infer_artifact`` (the step's output);
- a model version: ``model_version_id``, ``model_name`` (+ ``model_version``, latest when
  None), or ``infer_model`` (the model of the running step);
- nothing named: the running step's step run (outside a step, an error).

The calling thread never waits for the bus per call: the event is handed to the publisher;
a name is resolved from the log once and then kept current (:mod:`cairn.version_lookup`).
Metadata for an output of the running step is kept until the output is stored, then sent
for its version (a step that fails sends none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from cairn_events import EntityKind, MetadataLogged, TypedValue

from .context import running_step
from .errors import CairnError, NotFoundError
from .metadata.values import encode_metadata

if TYPE_CHECKING:
    from .context import RunningStep
    from .tracking import Tracker

__all__ = ["log_artifact_metadata", "log_metadata", "log_model_metadata", "log_step_metadata"]


def log_metadata(
    metadata: dict[str, Any],
    step_id: str | UUID | None = None,
    step_name: str | None = None,
    run_id_name_or_prefix: str | UUID | None = None,
    artifact_version_id: str | UUID | None = None,
    artifact_name: str | None = None,
    artifact_version: str | int | None = None,
    infer_artifact: bool = False,
    model_name: str | None = None,
    model_version: str | int | None = None,
    model_version_id: str | UUID | None = None,
    infer_model: bool = False,
) -> None:
    """Log ``metadata`` for one step run, pipeline run, artifact version or model version."""
    values = encode_metadata(metadata)
    named = {
        "a step run": step_id is not None or step_name is not None,
        "an artifact version": artifact_version_id is not None
        or artifact_name is not None
        or artifact_version is not None
        or infer_artifact,
        "a model version": model_version_id is not None
        or model_name is not None
        or model_version is not None
        or infer_model,
    }
    kinds = [kind for kind, given in named.items() if given]
    if len(kinds) > 1:
        raise CairnError(
            f"log_metadata was given targets of {' and '.join(kinds)}; metadata goes to one "
            "of them per call: call log_metadata once for each"
        )
    running = running_step()
    if named["an artifact version"]:
        if artifact_version_id is not None:
            _send(values, EntityKind.ARTIFACT_VERSION, _checked_version_id(artifact_version_id))
        else:
            _log_for_artifact(values, artifact_name, artifact_version, running)
    elif named["a model version"]:
        _send(
            values,
            EntityKind.MODEL_VERSION,
            _model_version_id(model_name, model_version, model_version_id),
        )
    elif named["a step run"] or run_id_name_or_prefix is not None:
        if step_id is not None:
            _send(values, EntityKind.STEP_RUN, _checked_step_run_id(step_id))
        elif step_name is not None:
            run = run_id_name_or_prefix or (running.run.run_id if running else None)
            if run is None:
                raise CairnError(
                    f"log_metadata(step_name={step_name!r}) outside a step needs the run: "
                    "run_id_name_or_prefix=..."
                )
            _send(values, EntityKind.STEP_RUN, _step_run_of(str(run), step_name))
        else:
            _send(values, EntityKind.RUN, _client().get_pipeline_run(str(run_id_name_or_prefix)).id)
    elif running is not None:
        _send(values, EntityKind.STEP_RUN, running.step_run_id)
    else:
        raise CairnError(
            "log_metadata was called outside a step and names nothing to attach to; give "
            "step_id, step_name with run_id_name_or_prefix, run_id_name_or_prefix, "
            "artifact_version_id, artifact_name, model_name or model_version_id"
        )


def log_artifact_metadata(
    metadata: dict[str, Any],
    artifact_name: str | None = None,
    artifact_version: str | int | None = None,
) -> None:
    """Log ``metadata`` for an artifact version (the seed's form).

    Inside a step with one output, that output; with several, ``artifact_name`` picks one
    (an output of the step, or an artifact of that name saved earlier). Outside a step
    ``artifact_name`` is needed; its latest version unless ``artifact_version`` is given.
    """
    values = encode_metadata(metadata)
    _log_for_artifact(values, artifact_name, artifact_version, running_step())


def log_step_metadata(
    metadata: dict[str, Any],
    step_name: str | None = None,
    pipeline_name_id_or_prefix: str | UUID | None = None,
    run_id: str | UUID | None = None,
) -> None:
    """Log ``metadata`` for a step run (the seed's form).

    Inside a step with no arguments, the running step. Otherwise the step run
    ``step_name`` of the run ``run_id`` (a run's id, name or prefix, or a step run's id),
    or of the latest run of ``pipeline_name_id_or_prefix``.
    """
    values = encode_metadata(metadata)
    running = running_step()
    if (
        running is not None
        and step_name is None
        and run_id is None
        and pipeline_name_id_or_prefix is None
    ):
        _send(values, EntityKind.STEP_RUN, running.step_run_id)
        return
    client = _client()
    if run_id is not None:
        try:
            run = client.get_pipeline_run(str(run_id))
        except NotFoundError:
            if step_name is None:
                _send(values, EntityKind.STEP_RUN, _checked_step_run_id(run_id))
                return
            raise
    elif pipeline_name_id_or_prefix is not None:
        latest = client.get_pipeline(str(pipeline_name_id_or_prefix)).latest_run
        if latest is None:
            raise NotFoundError(f"Pipeline '{pipeline_name_id_or_prefix}' has no runs yet")
        run = latest
    elif running is not None:
        run = client.get_pipeline_run(running.run.run_id)
    else:
        raise CairnError(
            "log_step_metadata outside a step needs step_name and the run: run_id=... (a run's "
            "id or name) or pipeline_name_id_or_prefix=... (its latest run)"
        )
    if step_name is None:
        raise CairnError(
            f"log_step_metadata: which step of run '{run.name}'? Give step_name= one of "
            f"{', '.join(run.steps) or '(it has no steps)'}"
        )
    step = run.steps.get(step_name)
    if step is None:
        raise NotFoundError(
            f"Run '{run.name}' has no step '{step_name}'; its steps are "
            f"{', '.join(run.steps) or '(none)'}"
        )
    _send(values, EntityKind.STEP_RUN, step.id)


def log_model_metadata(
    metadata: dict[str, Any],
    model_name: str | None = None,
    model_version: str | int | None = None,
) -> None:
    """Log ``metadata`` for a model version: the one in the running step's context, or
    ``model_name``'s ``model_version`` (its latest when None)."""
    log_metadata(
        metadata,
        model_name=model_name,
        model_version=model_version,
        infer_model=model_name is None,
    )


# -- targets ----------------------------------------------------------------------------


def _log_for_artifact(
    values: dict[str, TypedValue],
    name: str | None,
    version: str | int | None,
    running: RunningStep | None,
) -> None:
    if running is not None and version is None:
        key = running.output_for_metadata(name)
        if key is not None:
            running.keep_output_metadata(key, _event(values, EntityKind.ARTIFACT_VERSION, ""))
            return
        saved = [p for p in running.saved if p.template.name == name]
        if saved:
            _send(values, EntityKind.ARTIFACT_VERSION, saved[-1].artifact_version_id)
            return
    if name is None:
        raise CairnError(
            "log_artifact_metadata outside a step needs artifact_name= (and artifact_version=, "
            "or its latest version)"
        )
    _send(values, EntityKind.ARTIFACT_VERSION, _artifact_version_id(name, version))


def _artifact_version_id(name: str, version: str | int | None) -> str:
    lookup = _tracker().artifact_lookup
    if version is None:
        found = lookup.latest(name)
        if found is None:
            raise NotFoundError(
                f"No artifact named '{name}' has been stored, so no metadata can be logged for "
                "it; check the name (Client().list_artifacts() lists them)"
            )
    else:
        found = lookup.exact(name, str(version))
        if found is None:
            raise NotFoundError(
                f"Artifact '{name}' has no version '{version}'; leave artifact_version out for "
                "its latest (Client().list_artifact_versions(name) lists them)"
            )
    return str(found.artifact_version_id)  # type: ignore[attr-defined]


def _model_version_id(
    name: str | None, version: str | int | None, model_version_id: str | UUID | None
) -> str:
    if model_version_id is not None:
        return str(model_version_id)
    if name is None:
        from .context import get_step_context

        try:
            model: Any = get_step_context().model  # type: ignore[attr-defined,unused-ignore]
        except CairnError as error:
            raise CairnError(
                f"log_model_metadata without model_name needs a running step with a model: {error}"
            ) from None
        return str(model.id)
    found = _client().get_model_version(name, version)
    return str(found.id)


def _checked_version_id(artifact_version_id: str | UUID) -> str:
    return str(_client().get_artifact_version(str(artifact_version_id)).id)


def _checked_step_run_id(step_run_id: str | UUID) -> str:
    return str(_client().get_run_step(str(step_run_id)).id)


def _step_run_of(run: str, step_name: str) -> str:
    found = _client().get_pipeline_run(run)
    step = found.steps.get(step_name)
    if step is None:
        raise NotFoundError(
            f"Run '{found.name}' has no step '{step_name}'; its steps are "
            f"{', '.join(found.steps) or '(none)'}"
        )
    return str(step.id)


# -- sending ----------------------------------------------------------------------------


def _event(values: dict[str, TypedValue], kind: EntityKind, entity_id: str) -> MetadataLogged:
    running = running_step()
    return MetadataLogged(
        entity_kind=kind,
        entity_id=entity_id,
        values=values,
        step_run_id=running.step_run_id if running else None,
    )


def _send(values: dict[str, TypedValue], kind: EntityKind, entity_id: str) -> None:
    running = running_step()
    tracker: Any = running.tracker if running is not None else _tracker()
    tracker.publish(_event(values, kind, entity_id))


def _tracker() -> Tracker:
    from .tracking import get_tracker

    return get_tracker()


def _client() -> Any:
    return _tracker().client()
