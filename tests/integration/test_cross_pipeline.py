"""Artifacts across pipelines and outside them, end to end against the real stack.

A step input may be a version from the Client (or its id), or an ExternalArtifact; inside
a step load_artifact / save_artifact are recorded with the step run; outside, they work
from any script. No ``from __future__ import annotations``: steps annotate with locals.
"""

import os
import uuid
from typing import Annotated, Any

import pytest
from cairn import (
    ArtifactVersion,
    ArtifactVersionError,
    Client,
    ExternalArtifact,
    NotFoundError,
    ParameterError,
    get_step_context,
    load_artifact,
    pipeline,
    save_artifact,
    step,
)
from cairn.materializers import BaseMaterializer

pytestmark = pytest.mark.usefixtures("cairn_stack")


@step
def add_one(x: int) -> int:
    return x + 1


@step
def total(xs: list[int]) -> int:
    return sum(xs)


@step
def echo(text: str) -> str:
    return text


def produce(name: str, value: int) -> ArtifactVersion:
    """Pipeline A: store ``value`` as artifact ``name``; the version it made."""

    @step
    def make(v: int) -> Annotated[int, name]:
        return v

    @pipeline(name=f"producer_{name}", enable_cache=False)
    def producer(v: int) -> None:
        make(v)

    return producer(v=value).steps["make"].output


def test_a_version_from_another_pipeline_is_an_input_as_itself_by_id_and_by_uuid(
    uid: str,
) -> None:
    made = produce(f"shared_{uid}", 41)

    @pipeline(name=f"consumer_{uid}", enable_cache=False)
    def consumer() -> None:
        add_one(Client().get_artifact_version(f"shared_{uid}"), id="by_version")
        add_one(made.id, id="by_id")  # a str: int cannot take it, so it is an id
        add_one(uuid.UUID(made.id), id="by_uuid")

    run = consumer()
    stored = Client().get_pipeline_run(run.id)
    for name in ("by_version", "by_id", "by_uuid"):
        for seen in (run.steps[name], stored.steps[name]):  # the run returned and recorded
            assert seen.inputs["x"].id == made.id
            assert seen.inputs["x"].name == f"shared_{uid}"
            assert seen.parameters == {}  # an input, never a parameter
            assert seen.output.load() == 42
    downstream = Client().get_artifact_version(f"shared_{uid}")
    assert (downstream.id, downstream.version) == (made.id, "1")  # nothing new stored


def test_a_str_id_for_a_str_argument_stays_a_parameter(uid: str) -> None:
    made = produce(f"text_{uid}", 1)

    @pipeline(name=f"echo_{uid}", enable_cache=False)
    def echoing() -> None:
        echo(made.id)

    run = echoing()
    stored = Client().get_pipeline_run(run.id).steps["echo"]
    assert stored.parameters == {"text": made.id} and stored.inputs == {}
    assert stored.output.load() == made.id


def test_an_unknown_uuid_for_an_int_argument_fails_before_the_run(uid: str) -> None:
    missing = str(uuid.uuid4())

    @pipeline(name=f"unknown_id_{uid}")
    def unknown() -> None:
        add_one(missing)

    with pytest.raises(NotFoundError) as info:
        unknown()
    message = str(info.value)
    assert "Step 'add_one' parameter 'x': expected int, got str" in message
    assert f"read as the id of an artifact version: No artifact version has id '{missing}'" in (
        message
    )
    assert Client().list_pipeline_runs(pipeline_name=f"unknown_id_{uid}") == []


def test_an_external_artifact_is_saved_once_and_read_by_every_step_given_it(uid: str) -> None:
    numbers = ExternalArtifact(value=[1, 2, 3])
    assert numbers.id is None

    @pipeline(name=f"external_{uid}", enable_cache=False)
    def external() -> None:
        total(numbers)
        total(numbers, id="total_again")

    first = external()
    saved = numbers.version
    assert saved is not None and numbers.id == saved.id
    assert saved.name.startswith("external_") and saved.version == "1"
    stored = Client().get_pipeline_run(first.id)
    for name in ("total", "total_again"):
        assert stored.steps[name].inputs["xs"].id == saved.id
        assert stored.steps[name].parameters == {}
        assert stored.steps[name].output.load() == 6
    recorded = Client().get_artifact_version(saved.id)
    assert recorded.producer_step_run_id is None and recorded.load() == [1, 2, 3]

    second = external()  # the same object in a later run: the same version again
    assert Client().get_pipeline_run(second.id).steps["total"].inputs["xs"].id == saved.id
    assert [v.id for v in Client().list_artifact_versions(saved.name)] == [saved.id]


class Unsaveable:
    pass


class BrokenMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES = (Unsaveable,)

    def save(self, data: Any) -> None:
        raise OSError("the disk is full")

    def load(self, data_type: type) -> Any:
        raise NotImplementedError


@step
def take(value: Any) -> None:
    pass


def test_an_external_artifact_that_cannot_be_saved_fails_its_step_and_the_run(uid: str) -> None:
    @pipeline(name=f"unsaved_{uid}")
    def unsaved() -> None:
        take(ExternalArtifact(value=Unsaveable(), materializer=BrokenMaterializer))

    with pytest.raises(OSError, match="the disk is full"):
        unsaved()
    [run] = Client().list_pipeline_runs(pipeline_name=f"unsaved_{uid}")
    assert run.status == "failed" and run.failed_step == "take"


def test_load_artifact_inside_a_step_is_an_input_of_its_step_run(uid: str) -> None:
    config = save_artifact({"rate": 0.5}, f"config_{uid}")
    # an artifact named like the step's argument: its key gets a suffix
    older = save_artifact(10, "cross_pipeline_threshold")
    newer = save_artifact(20, "cross_pipeline_threshold")

    @step
    def tune(cross_pipeline_threshold: int) -> float:
        rate = load_artifact(f"config_{uid}")["rate"]
        again = load_artifact(config.id)  # the same version twice: one input
        assert again == {"rate": 0.5}
        low = load_artifact("cross_pipeline_threshold", older.version)
        high = load_artifact("cross_pipeline_threshold")
        return float(rate * (low + high + cross_pipeline_threshold))

    @pipeline(name=f"tune_{uid}", enable_cache=False)
    def tuning() -> None:
        tune(1)

    run = tuning()
    expected = {
        f"config_{uid}": config.id,
        "cross_pipeline_threshold_2": older.id,
        "cross_pipeline_threshold_3": newer.id,
    }
    stored = Client().get_pipeline_run(run.id).steps["tune"]
    for seen in (run.steps["tune"], stored):
        assert {key: version.id for key, version in seen.inputs.items()} == expected
        assert seen.parameters == {"cross_pipeline_threshold": 1}
        assert seen.output.load() == 15.5


def test_save_artifact_inside_a_step_is_an_output_with_the_step_as_producer(uid: str) -> None:
    returned: list[ArtifactVersion] = []

    @step
    def train() -> Annotated[int, f"model_{uid}"]:
        returned.append(save_artifact([0.1, 0.2], f"curve_{uid}", tags=["plot"]))
        returned.append(save_artifact(7, f"model_{uid}"))  # named like the declared output
        return 8

    @pipeline(name=f"train_{uid}", enable_cache=False)
    def training() -> None:
        train()

    run = training()
    curve, early = returned
    assert (curve.version, early.version) == ("1", "1")
    stored = Client().get_pipeline_run(run.id).steps["train"]
    for seen in (run.steps["train"], stored):
        assert list(seen.outputs) == [f"model_{uid}", f"curve_{uid}", f"model_{uid}_2"]
        assert seen.outputs[f"model_{uid}"].version == "2"  # the declared one came after
        assert seen.outputs[f"curve_{uid}"].id == curve.id
        assert seen.outputs[f"model_{uid}_2"].id == early.id
    extra = stored.outputs[f"curve_{uid}"]
    assert (extra.producer_run_id, extra.producer_step_run_id) == (run.id, stored.id)
    assert extra.output_name == f"curve_{uid}" and extra.tags == ["plot"]
    assert extra.load() == [0.1, 0.2]
    assert Client().get_artifact_version(f"model_{uid}", 1).load() == 7


def test_save_and_load_outside_a_step_claim_versions_as_steps_do(uid: str) -> None:
    name = f"by_hand_{uid}"
    first = save_artifact([1], name)
    assert (first.version, first.producer_run_id, first.producer_step_run_id) == ("1", None, None)
    assert save_artifact([2], name, version=10).version == "10"
    assert save_artifact([3], name).version == "11"  # one more than the highest number
    golden = save_artifact([4], name, version="golden", tags=["best"])
    assert golden.version == "golden" and golden.tags == ["best"]
    with pytest.raises(ArtifactVersionError, match=f"Artifact '{name}' already has version '10'"):
        save_artifact([5], name, version="10")
    # the refused version left no files behind: one folder per stored version
    assert len(os.listdir(os.path.dirname(first.uri))) == 4

    assert load_artifact(name) == [4]  # latest is the newest claim, as in ZenML
    assert load_artifact(name, 10) == [2]
    assert load_artifact(first.id) == [1]
    assert load_artifact(uuid.UUID(first.id)) == [1]
    assert Client().get_artifact_version(name, "11").load() == [3]
    assert [v.version for v in Client().list_artifact_versions(name)] == [
        "1",
        "10",
        "11",
        "golden",
    ]


def test_load_artifact_of_an_unknown_name_fails_the_step_with_not_found(uid: str) -> None:
    @step
    def reads() -> int:
        return int(load_artifact(f"nowhere_{uid}"))

    @pipeline(name=f"nowhere_{uid}")
    def nowhere() -> None:
        reads()

    with pytest.raises(NotFoundError, match=f"nowhere_{uid}"):
        nowhere()
    with pytest.raises(NotFoundError, match=f"nowhere_{uid}"):
        load_artifact(f"nowhere_{uid}")


def test_get_step_context_gives_the_run_the_step_run_and_the_output_names(uid: str) -> None:
    seen: dict[str, Any] = {}

    @step
    def inspect_me(n: int) -> tuple[Annotated[int, f"count_{uid}"], str]:
        context = get_step_context()
        seen.update(
            run=context.pipeline_run,
            step_run=context.step_run,
            outputs=context.output_names,
        )
        return n, "x"

    @pipeline(name=f"context_{uid}", enable_cache=False)
    def contextual() -> None:
        inspect_me(3)

    run = contextual()
    stored = Client().get_pipeline_run(run.id)
    assert (seen["run"].id, seen["run"].name) == (run.id, run.name)
    assert seen["run"].pipeline_name == f"context_{uid}" and seen["run"].status == "running"
    step_run = seen["step_run"]
    assert (step_run.id, step_run.name) == (stored.steps["inspect_me"].id, "inspect_me")
    assert step_run.run_id == run.id and step_run.status == "running"
    assert step_run.parameters == {"n": 3}
    assert seen["outputs"] == [f"count_{uid}", "output_1"]


def test_an_artifact_version_as_a_pipeline_parameter_says_to_pass_it_to_a_step(uid: str) -> None:
    made = produce(f"param_{uid}", 1)

    @pipeline(name=f"as_param_{uid}")
    def as_param(data: Any) -> None:
        take(data)

    with pytest.raises(ParameterError) as info:
        as_param(made)
    message = str(info.value)
    assert f"Parameter 'data' of pipeline 'as_param_{uid}' holds the artifact version" in message
    assert "Pass it straight to the step call inside the pipeline function" in message


def test_lineage_runs_through_two_pipelines_and_what_a_step_loaded_itself(uid: str) -> None:
    """Pipeline A makes raw; pipeline B's clean step takes it from the Client, and its train
    step loads a second version itself with load_artifact: both links are lineage."""

    @step
    def make_raw() -> Annotated[list[int], f"raw_{uid}"]:
        return [1, 2, 3]

    @step
    def make_labels() -> Annotated[list[int], f"labels_{uid}"]:
        return [0, 1, 0]

    @pipeline(name=f"producer_{uid}", enable_cache=False)
    def producer() -> None:
        make_raw()
        make_labels()

    @step
    def clean(raw: list[int]) -> Annotated[list[int], f"clean_{uid}"]:
        return [x * 2 for x in raw]

    @step
    def train(data: list[int]) -> Annotated[int, f"model_{uid}"]:
        labels = load_artifact(f"labels_{uid}")
        return sum(data) + sum(labels)

    made = producer()
    raw = Client().get_artifact_version(f"raw_{uid}")

    @pipeline(name=f"consumer_{uid}", enable_cache=False)
    def consumer() -> None:
        train(clean(raw))

    used = consumer()
    model = Client().get_artifact_version(f"model_{uid}")
    upstream = Client().get_lineage(model, direction="upstream")
    by_name = Client().get_lineage(f"model_{uid}")  # a name: its latest version's lineage
    assert by_name.nodes == upstream.nodes and by_name.edges == upstream.edges
    assert Client().get_lineage(model.id[:13]).nodes == upstream.nodes  # an id prefix
    with pytest.raises(KeyError, match="No artifact version with id 'nothing_"):
        Client().get_lineage(f"nothing_{uid}")
    with pytest.raises(ValueError, match="from 1 to"):
        Client().get_lineage(model, depth=10**20)
    names = {node.name for node in upstream.nodes if node.kind == "artifact_version"}
    assert names == {f"model_{uid}", f"clean_{uid}", f"raw_{uid}", f"labels_{uid}"}
    steps = {node.id for node in upstream.nodes if node.kind == "step_run"}
    assert used.steps["train"].id in steps and made.steps["make_raw"].id in steps
    loaded = [e for e in upstream.edges if e.kind == "input" and e.target == used.steps["train"].id]
    assert {e.key for e in loaded} == {"data", f"labels_{uid}"}

    downstream = Client().get_lineage(raw.id, direction="downstream")
    reached = {node.name for node in downstream.nodes if node.kind == "artifact_version"}
    assert reached == {f"raw_{uid}", f"clean_{uid}", f"model_{uid}"}
    assert [c.name for c in raw.consumers] == ["clean"]
    assert raw.producer is not None and raw.producer.id == made.steps["make_raw"].id
