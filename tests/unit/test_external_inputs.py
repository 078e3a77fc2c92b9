"""Artifacts from outside a pipeline as step inputs, and save/load arguments (no stack needed).

No ``from __future__ import annotations``: steps below annotate with local names.
"""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import pytest
from cairn import (
    ArtifactNameError,
    ArtifactVersion,
    ArtifactVersionError,
    ExternalArtifact,
    ParameterError,
    load_artifact,
    save_artifact,
    step,
)
from cairn.composition import Composition, ExternalInput, composing, end_composing
from cairn.context import RunningStep
from cairn.executor import RunContext
from cairn.external_artifact import artifact_id
from cairn.materializers import MaterializerTypeError, NumpyMaterializer
from cairn.tracking import reset_tracker
from cairn.validation import json_parameter

WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
ID = "0190f3c2-6f1b-7c43-9a57-3f1e8f7f0b11"


def version(name: str = "training_data", number: str = "3") -> ArtifactVersion:
    return ArtifactVersion(
        id=ID,
        name=name,
        version=number,
        uri="/store/x",
        type="data",
        data_type="builtins.list",
        materializer="m",
        content_hash="h",
        size=1,
        created_at=WHEN,
    )


@step
def fit(data: list[int], text: str, anything: Any, run: uuid.UUID, untyped) -> int:  # type: ignore[no-untyped-def]
    return 1


@step
def two(threshold: int) -> tuple[Annotated[int, "model_{stage}"], int]:
    return 1, 2


def compose(body: Any) -> Composition:
    composition = Composition("p")
    token = composing(composition)
    try:
        body()
    finally:
        end_composing(token)
    return composition


@pytest.fixture(autouse=True)
def no_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[None]:
    """Servers nobody runs: anything here that reached for the stack would fail, not start one."""
    monkeypatch.setenv("CAIRN_NATS_URL", "nats://127.0.0.1:9")
    monkeypatch.setenv("CAIRN_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CAIRN_HOME", str(tmp_path))
    yield
    reset_tracker()


def test_artifacts_become_inputs_and_uuid_text_stays_a_parameter_where_it_fits() -> None:
    numbers = ExternalArtifact(value=[1, 2])
    invocation = compose(lambda: fit(version(), ID, ID, ID, uuid.UUID(ID))).invocations["fit"]
    assert invocation.arguments["data"] == ExternalInput(version=version())
    # str, Any, UUID and unannotated arguments take a UUID: they keep it as a parameter
    assert invocation.parameters == {"text": ID, "anything": ID, "run": ID, "untyped": ID}
    assert invocation.upstream == []  # an outside artifact waits for no step

    external = compose(lambda: fit(numbers, "a", 1, ID, 2)).invocations["fit"]
    assert external.arguments["data"] == ExternalInput(artifact=numbers)
    assert "data" not in external.parameters


def test_an_artifact_inside_a_list_or_as_a_pipeline_parameter_is_refused_with_what_to_do() -> None:
    with pytest.raises(ParameterError) as info:
        compose(lambda: fit([1], "a", [version()], ID, 2))
    message = str(info.value)
    assert "Parameter 'anything' of step 'fit' holds the artifact version 'training_data'" in (
        message
    )
    assert "values inside lists or dicts cannot hold one" in message
    with pytest.raises(ParameterError, match="holds an ExternalArtifact"):
        json_parameter(ExternalArtifact(value=1), name="data", owner="pipeline 'p'")


def test_artifact_ids_are_whole_uuids() -> None:
    assert artifact_id(uuid.UUID(ID)) == ID
    assert artifact_id(ID.upper()) == ID  # stored ids are lower case
    assert artifact_id(ID.replace("-", "")) is None  # only the 8-4-4-4-12 form
    assert artifact_id(ID[:8]) is None and artifact_id("x" * 36) is None
    assert artifact_id(7) is None


def test_an_external_artifact_needs_a_value_and_a_materializer_that_can_save_it() -> None:
    with pytest.raises(ValueError, match=r"ExternalArtifact needs a value to save"):
        ExternalArtifact()
    with pytest.raises(ValueError, match=r"ExternalArtifact\(value=...\)"):
        ExternalArtifact(value=None)
    with pytest.raises(MaterializerTypeError, match="NumpyMaterializer cannot save"):
        ExternalArtifact(value="text", materializer=NumpyMaterializer)
    with pytest.raises(TypeError, match="'no_such_module.Materializer', which does not import"):
        ExternalArtifact(value=1, materializer="no_such_module.Materializer")
    with pytest.raises(TypeError, match="give a subclass of cairn.materializers"):
        ExternalArtifact(value=1, materializer=int)
    numbers = ExternalArtifact(value=[1])
    assert numbers.version is None and numbers.id is None
    assert "not saved yet" in repr(numbers)


def test_save_artifact_checks_its_arguments_before_storing_anything() -> None:
    with pytest.raises(TypeError, match="takes the artifact's name as a str"):
        save_artifact(1, 5)  # type: ignore[arg-type]
    with pytest.raises(ArtifactNameError, match="Artifact name '' is empty or blank"):
        save_artifact(1, "")
    with pytest.raises(ArtifactNameError, match="control character"):
        save_artifact(1, "a\nb")
    with pytest.raises(ArtifactVersionError, match="'044', which reads as the number 44"):
        save_artifact(1, "n", version="044")
    with pytest.raises(ArtifactVersionError, match="neither a number nor a label"):
        save_artifact(1, "n", version=True)
    with pytest.raises(TypeError, match=r"takes tags as a list of str, e\.g\. tags=\['prod'\]"):
        save_artifact(1, "n", tags="prod")  # type: ignore[arg-type]
    with pytest.raises(ArtifactNameError, match="Tag 'a\\\\tb' of artifact 'n' contains"):
        save_artifact(1, "n", tags=["ok", "a\tb"])
    with pytest.raises(MaterializerTypeError, match=r"save_artifact\(name='n'\)"):
        save_artifact("text", "n", materializer=NumpyMaterializer)
    with pytest.raises(TypeError, match="takes an artifact name, a version id"):
        load_artifact(5)  # type: ignore[arg-type]


def test_a_running_step_keys_what_it_loads_and_saves_apart_from_its_arguments_and_outputs() -> None:
    invocation = compose(lambda: two(1)).invocations["two"]
    run = RunContext(pipeline_name="p", run_id="r", run_name="n", substitutions={})
    running = RunningStep(object(), run, invocation, "s", {"stage": "train"})  # type: ignore[arg-type]
    assert running.record_loaded(version("threshold")) == "threshold_2"  # the argument has it
    assert running.record_loaded(version("threshold")) == "threshold_2"  # one key per version
    assert running.loaded == {"threshold_2": ID}
    # declared outputs: "model_{stage}" (its key), "model_train" (its name), "output_1"
    assert running.output_key("model_train") == "model_train_2"
    assert running.output_key("output_1") == "output_1_2"
    assert running.output_key("model_{stage}") == "model_{stage}_2"
    assert running.output_key("curve") == "curve"
