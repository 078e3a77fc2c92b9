"""``save_artifact`` and ``load_artifact``: artifacts stored and read by hand (ZenML's).

Both work in any script. Inside a running step they are recorded with it: a loaded
version is an input of the step run (step.finished ``loaded``, keyed by its artifact
name), a saved one an output (its producer is the step run; step.finished ``outputs``,
keyed by its artifact name). A key an argument, a declared output or an earlier call
already has gets ``_2``, ``_3``...

A saved version is claimed exactly as a step's outputs are: through the tracker's
compare-and-set claim (a step's through the tracker its executor was given), its name,
explicit version and tags checked by the same rules. The call waits for the claim (at
most ``CAIRN_FLUSH_TIMEOUT``), so the returned version has its number, and a version
that is taken raises now; while NATS is away it reads "pending".
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from .naming import check_artifact_name, check_tags, requested_version, shown

if TYPE_CHECKING:
    from .context import RunningStep
    from .executor import ProducedOutput, StepTracker
    from .external_artifact import ExternalArtifact
    from .materializers.base import BaseMaterializer
    from .models import ArtifactVersion


def save_artifact(
    data: Any,
    name: str,
    version: int | str | None = None,
    tags: list[str] | None = None,
    materializer: Any = None,
    *,
    artifact_type: str | None = None,
) -> ArtifactVersion:
    """Store ``data`` as a new version of artifact ``name`` and return that version.

    ``version``: a number (``44`` or ``"44"``) or a label, once per name; left out, one
    more than the name's highest number. ``materializer``: a materializer class or its
    ``"module.Class"`` source (else the one registered for the value's type).
    ``artifact_type``: the version's type (else the materializer's, e.g. "data").
    Inside a step the version is an output of that step run.
    """
    from .context import running_step
    from .outputs import materializer_for_value

    if not isinstance(name, str):
        raise TypeError(
            f"save_artifact() takes the artifact's name as a str, e.g. save_artifact(data, "
            f"'features'); got {type(name).__name__} {name!r:.60}"
        )
    check_artifact_name(name)
    requested = requested_version(version, name)
    checked_tags = _checked_tags(tags, name)
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise TypeError(
            f"save_artifact(name={shown(name)}) takes artifact_type as a str such as 'data' or "
            f"'model'; got {type(artifact_type).__name__}"
        )
    what = f"save_artifact(name={shown(name)})"
    materializer_cls = materializer_for_value(data, materializer, what=what)
    running = running_step()
    if running is None:
        from .tracking import get_tracker

        tracker: StepTracker = get_tracker()
    else:
        tracker = running.tracker
    stored = store_version(
        tracker,
        data,
        name,
        materializer_cls,
        requested=requested,
        tags=checked_tags,
        artifact_type=artifact_type,
        running=running,
        given=materializer is not None,
    )
    return stored.version()


def load_artifact(name_or_id: str | uuid.UUID, version: int | str | None = None) -> Any:
    """The value of an artifact version: by id, or by name (``version``, else the latest).

    Inside a step the version is recorded as an input of that step run.
    """
    from .client import Client
    from .context import running_step

    if not isinstance(name_or_id, (str, uuid.UUID)):
        raise TypeError(
            "load_artifact() takes an artifact name, a version id (str or uuid.UUID) or an id "
            f"prefix; got {type(name_or_id).__name__} {name_or_id!r:.60}"
        )
    with Client() as client:
        found = client.get_artifact_version(name_or_id, version)
    value = found.load()
    running = running_step()
    if running is not None:
        running.record_loaded(found)
    return value


def save_external(artifact: ExternalArtifact, tracker: StepTracker) -> ArtifactVersion:
    """The version holding ``artifact``'s value: saved through ``tracker`` the first time
    (as ``external_<id>``, as ZenML names them), the same version after."""
    from cairn_events import new_id

    def save(external: ExternalArtifact) -> ArtifactVersion:
        stored = store_version(
            tracker,
            external.value,
            f"external_{new_id()}",
            external.materializer_class,
            requested=None,
            tags=[],
            artifact_type=None,
            running=None,
            given=external.materializer is not None,
        )
        return stored.version()

    return artifact.save_once(save)


def store_version(
    tracker: StepTracker,
    data: Any,
    name: str,
    materializer_cls: type[BaseMaterializer],
    *,
    requested: str | None,
    tags: list[str],
    artifact_type: str | None,
    running: RunningStep | None,
    given: bool,
) -> ProducedOutput:
    """Materialize ``data`` as a version of ``name`` and claim it; wait for the claim.

    ``running``: the step run it is an output of (None outside a step). A version that is
    taken raises ArtifactVersionError and its files are removed (nothing refers to them).
    """
    from .errors import ArtifactVersionError
    from .executor import ProducedOutput
    from .outputs import discard, materialize, unportable

    key = name if running is None else running.output_key(name)
    if running is not None and unportable(materializer_cls):
        from .materializers.portability import warn_if_unportable

        warn_if_unportable(materializer_cls, type(data), running.invocation.step, key, given)
    template = materialize(
        tracker.store,
        data,
        materializer_cls,
        name=name,
        artifact_type=artifact_type,
        tags=tags,
        run_id=None if running is None else running.run.run_id,
        step_run_id=None if running is None else running.step_run_id,
        output_name=None if running is None else key,
    )
    claim = tracker.claim_version(template, requested)
    try:
        claim.result(timeout=tracker.flush_timeout)
    except TimeoutError:
        pass  # NATS is away: the claim waits in the spool, the version reads "pending"
    except ArtifactVersionError:
        discard(tracker.store, [template])
        raise
    stored = ProducedOutput(data, key, claim, template)
    if running is not None:
        running.record_saved(stored)
    return stored


def _checked_tags(tags: Any, name: str) -> list[str]:
    """``tags`` as a list, each following the rules of artifact names (as a step's tags do)."""
    if tags is None:
        return []
    if isinstance(tags, str) or not isinstance(tags, (list, tuple, set, frozenset)):
        raise TypeError(
            f"save_artifact(name={shown(name)}) takes tags as a list of str, e.g. "
            f"tags=['prod']; got {type(tags).__name__} {tags!r:.60}"
        )
    check_tags(tags, of=f"artifact {shown(name)}")
    return list(tags)
