"""Every artifact-naming rule, on real runs read back through the query API."""

from typing import Annotated

import pytest
from cairn import ArtifactConfig, ArtifactNameError, Client, pipeline, step

pytestmark = pytest.mark.usefixtures("cairn_stack")


def test_default_names_are_pipeline_step_output(uid: str) -> None:
    @step
    def one() -> int:
        return 1

    @step
    def two() -> tuple[int, int]:
        return 1, 2

    @pipeline(name=f"defaults_{uid}", enable_cache=False)
    def p() -> None:
        one()
        two()

    run = Client().get_pipeline_run(p().id)
    assert run.steps["one"].outputs["output"].name == f"defaults_{uid}::one::output"
    assert {k: v.name for k, v in run.steps["two"].outputs.items()} == {
        "output_0": f"defaults_{uid}::two::output_0",
        "output_1": f"defaults_{uid}::two::output_1",
    }


def test_static_names_from_str_and_artifact_config(uid: str) -> None:
    @step
    def static_single() -> Annotated[str, f"static_{uid}"]:
        return "null"

    @step
    def configured() -> Annotated[str, ArtifactConfig(name=f"configured_{uid}")]:
        return "null"

    @pipeline(name=f"static_{uid}", enable_cache=False)
    def p() -> None:
        static_single()
        configured()

    run = Client().get_pipeline_run(p().id)
    assert list(run.steps["static_single"].outputs) == [f"static_{uid}"]
    assert run.steps["configured"].outputs[f"configured_{uid}"].name == f"configured_{uid}"


def test_date_and_time_are_the_runs_start_and_identical_in_every_step(uid: str) -> None:
    @step
    def first() -> Annotated[str, uid + "_a_{date}_{time}"]:
        return "a"

    @step
    def second(x: str) -> Annotated[str, uid + "_b_{date}_{time}"]:
        return x

    @pipeline(name=f"datetime_{uid}", enable_cache=False)
    def p() -> None:
        second(first())

    run = p()
    subs = run.config.substitutions
    assert set(subs) >= {"date", "time"}
    assert run.started_at is not None and subs["date"] == run.started_at.strftime("%Y_%m_%d")
    assert subs["time"] == run.started_at.strftime("%H_%M_%S_%f")
    stored = Client().get_pipeline_run(run.id)
    assert list(stored.steps["first"].outputs) == [f"{uid}_a_{subs['date']}_{subs['time']}"]
    assert list(stored.steps["second"].outputs) == [f"{uid}_b_{subs['date']}_{subs['time']}"]
    assert stored.config.substitutions == subs
    for step_run in stored.steps.values():
        assert step_run.config.substitutions["date"] == subs["date"]
        assert step_run.config.substitutions["time"] == subs["time"]


def test_custom_placeholder_precedence(uid: str) -> None:
    @step
    def plain() -> Annotated[str, uid + "_{stage}_plain"]:
        return "x"

    @step(substitutions={"stage": "step_decorator"})
    def decorated() -> Annotated[str, uid + "_{stage}_decorated"]:
        return "x"

    @pipeline(name=f"prec_{uid}", substitutions={"stage": "pipeline_decorator"}, enable_cache=False)
    def p() -> None:
        plain()
        decorated()
        decorated.with_options(substitutions={"stage": "step_options"})()

    run = p()  # @pipeline < @step < step.with_options
    assert list(run.steps["plain"].outputs) == [f"{uid}_pipeline_decorator_plain"]
    assert list(run.steps["decorated"].outputs) == [f"{uid}_step_decorator_decorated"]
    assert list(run.steps["decorated_2"].outputs) == [f"{uid}_step_options_decorated"]

    run = p.with_options(substitutions={"stage": "pipeline_options"})()  # @pipeline < with_options
    assert list(run.steps["plain"].outputs) == [f"{uid}_pipeline_options_plain"]
    assert list(run.steps["decorated"].outputs) == [f"{uid}_step_decorator_decorated"]
    stored = Client().get_pipeline_run(run.id)
    assert stored.config.substitutions["stage"] == "pipeline_options"
    assert stored.steps["decorated"].config.substitutions["stage"] == "step_decorator"
    assert stored.steps["decorated_2"].config.substitutions["stage"] == "step_options"


def test_with_options_per_call_as_in_the_guide(uid: str) -> None:
    @step
    def extract_data(source: str) -> Annotated[str, uid + "_{stage}_dataset"]:
        return f"data from {source}"

    @pipeline(name=f"extraction_{uid}", enable_cache=False)
    def extraction_pipeline() -> None:
        extract_data.with_options(substitutions={"stage": "train"})(source="s3://train")
        extract_data.with_options(substitutions={"stage": "test"})(source="s3://test")

    extraction_pipeline()
    client = Client()
    assert client.get_artifact_version(f"{uid}_train_dataset").load() == "data from s3://train"
    assert client.get_artifact_version(f"{uid}_test_dataset").load() == "data from s3://test"


def test_missing_placeholder_fails_the_step_and_the_run(uid: str) -> None:
    @step
    def unnamed_stage() -> Annotated[str, uid + "_{stage}_dataset"]:
        return "x"

    @pipeline(name=f"missing_{uid}", enable_cache=False)
    def p() -> None:
        unnamed_stage()

    with pytest.raises(ArtifactNameError) as info:
        p()
    assert "{stage}_dataset" in str(info.value) and "'stage'" in str(info.value)
    run = Client().list_pipeline_runs(pipeline_name=f"missing_{uid}")[0]
    stored = Client().get_pipeline_run(run.id)
    assert stored.status == "failed"
    assert stored.steps["unnamed_stage"].status == "failed"
    assert stored.steps["unnamed_stage"].outputs == {}


def test_mixed_static_and_dynamic_names_in_one_tuple(uid: str) -> None:
    @step(substitutions={"custom_placeholder": "resolution"})
    def mixed_tuple() -> tuple[
        Annotated[str, f"static_{uid}"],
        Annotated[str, uid + "_name_{date}_{time}"],
        Annotated[int, uid + "_name_{custom_placeholder}"],
        int,
    ]:
        return "static_namer", "str_namer", 43, 44

    @pipeline(name=f"mixed_{uid}", enable_cache=False)
    def p() -> None:
        mixed_tuple()

    run = p()
    subs = run.config.substitutions
    expected = [
        f"static_{uid}",
        f"{uid}_name_{subs['date']}_{subs['time']}",
        f"{uid}_name_resolution",
        "output_3",
    ]
    assert list(run.steps["mixed_tuple"].outputs) == expected
    assert list(Client().get_pipeline_run(run.id).steps["mixed_tuple"].outputs) == expected


def test_two_outputs_resolving_to_one_name_is_an_error(uid: str) -> None:
    @step(substitutions={"a": "same", "b": "same"})
    def clash() -> tuple[Annotated[int, uid + "_{a}"], Annotated[int, uid + "_{b}"]]:
        return 1, 2

    @pipeline(name=f"clash_{uid}", enable_cache=False)
    def p() -> None:
        clash()

    with pytest.raises(ArtifactNameError, match="two outputs the artifact name"):
        p()
