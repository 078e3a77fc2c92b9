"""Pipelines end to end: run with the SDK, read back through the query API."""

from typing import Annotated, Any

import pytest
from cairn import (
    ArtifactConfig,
    Client,
    NotFoundError,
    ParameterError,
    StepTypeError,
    get_step_context,
    pipeline,
    step,
)

pytestmark = pytest.mark.usefixtures("cairn_stack")


@step
def make_numbers(n: int) -> list[int]:
    return list(range(n))


@step
def total_and_mean(xs: list[int]) -> tuple[int, float]:
    return sum(xs), sum(xs) / len(xs)


@step
def as_pair(xs: list[int]) -> tuple[int, int]:
    pair = (xs[0], xs[-1])
    return pair


def test_run_is_recorded_and_read_back(uid: str) -> None:
    @pipeline(name=f"numbers_{uid}", enable_cache=False)
    def numbers(n: int = 4) -> None:
        xs = make_numbers(n)
        total_and_mean(xs)
        as_pair(xs)

    run = numbers(n=5)
    assert run.status == "completed"
    assert run.config.parameters == {"n": 5}
    assert list(run.steps) == ["make_numbers", "total_and_mean", "as_pair"]

    stored = Client().get_pipeline_run(run.id)
    assert stored.status == "completed"
    assert stored.name == run.name == Client().get_pipeline_run(run.name).name
    assert stored.config.parameters == {"n": 5}
    many = stored.steps["total_and_mean"]
    assert set(many.outputs) == {"output_0", "output_1"}  # return a, b: two outputs
    assert many.outputs["output_0"].name == f"numbers_{uid}::total_and_mean::output_0"
    assert many.outputs["output_0"].load() == 10 and many.outputs["output_1"].load() == 2.0
    assert many.inputs["xs"].id == stored.steps["make_numbers"].output.id
    single = stored.steps["as_pair"]
    assert list(single.outputs) == ["output"]  # return some_tuple: one tuple output
    assert single.output.load() == (0, 4)
    assert stored.steps["make_numbers"].output.version == "1"
    assert stored.steps["make_numbers"].config.parameters == {"n": 5}


def test_versions_increase_per_name_and_latest_is_default(uid: str) -> None:
    @step
    def emit(value: int) -> Annotated[int, f"counter_{uid}"]:
        return value

    @pipeline(name=f"versions_{uid}", enable_cache=False)
    def versions(value: int) -> None:
        emit(value)

    runs = [versions(value=v) for v in (10, 20, 30)]
    assert [r.steps["emit"].output.version for r in runs] == ["1", "2", "3"]
    client = Client()
    assert client.get_artifact_version(f"counter_{uid}").load() == 30
    assert client.get_artifact_version(f"counter_{uid}", 2).load() == 20
    assert [v.version for v in client.list_artifact_versions(f"counter_{uid}")] == ["1", "2", "3"]
    by_id = client.get_artifact_version(runs[0].steps["emit"].output.id)
    assert (by_id.name, by_id.version) == (f"counter_{uid}", "1")


def test_unknown_names_and_versions_say_what_exists(uid: str) -> None:
    @step
    def emit() -> Annotated[str, f"known_{uid}"]:
        return "x"

    @pipeline(name=f"unknown_{uid}", enable_cache=False)
    def p() -> None:
        emit()

    p()
    client = Client()
    with pytest.raises(NotFoundError, match=r"versions: 1"):
        client.get_artifact_version(f"known_{uid}", 7)
    with pytest.raises(NotFoundError, match=f"known_{uid}"):
        client.get_artifact_version(f"knwon_{uid}")
    with pytest.raises(NotFoundError, match="No pipeline run"):
        client.get_pipeline_run(f"no-such-run-{uid}")


def test_explicit_version_is_allowed_once_per_name(uid: str) -> None:
    from cairn import ArtifactVersionError

    @step
    def emit() -> Annotated[str, ArtifactConfig(name=f"labelled_{uid}", version="golden")]:
        return "x"

    @pipeline(name=f"labelled_{uid}", enable_cache=False)
    def p() -> None:
        emit()

    assert p().steps["emit"].output.version == "golden"
    with pytest.raises(ArtifactVersionError, match="already has version 'golden'"):
        p()
    assert Client().get_artifact_version(f"labelled_{uid}", "golden").load() == "x"


def test_a_number_written_otherwise_is_refused(uid: str) -> None:
    from cairn import ArtifactVersionError

    @step
    def emit() -> Annotated[str, ArtifactConfig(name=f"num_{uid}", version="03")]:
        return "x"

    @pipeline(name=f"num_{uid}", enable_cache=False)
    def p() -> None:
        emit()

    with pytest.raises(ArtifactVersionError, match="'03', which reads as the number 3"):
        p()


class CustomFailure(RuntimeError):
    pass


def test_failing_step_fails_the_run_and_raises_its_own_exception(uid: str) -> None:
    @step
    def ok() -> int:
        return 1

    @step
    def boom(x: int) -> int:
        raise CustomFailure(f"broken {x}")

    @step
    def never(x: int) -> int:
        return x

    @pipeline(name=f"failing_{uid}", enable_cache=False)
    def p() -> None:
        never(boom(ok()))

    with pytest.raises(CustomFailure, match="broken 1"):
        p()
    runs = Client().list_pipeline_runs(pipeline_name=f"failing_{uid}")
    assert len(runs) == 1
    stored = Client().get_pipeline_run(runs[0].id)
    assert stored.status == "failed"
    assert "CustomFailure: broken 1" in (stored.error or "")
    assert stored.steps["ok"].status == "completed"
    assert stored.steps["boom"].status == "failed"
    assert "never" not in stored.steps


def test_type_errors_name_step_argument_and_types(uid: str) -> None:
    @step
    def text() -> str:
        return "three"  # "3" would be coerced to 3, as ZenML (pydantic, lax) does

    @step
    def needs_int(x: int) -> int:
        return x

    @step
    def lies() -> int:
        return "not an int"  # type: ignore[return-value]

    @pipeline(name=f"types_{uid}", enable_cache=False)
    def wrong_input() -> None:
        needs_int(text())

    @pipeline(name=f"types2_{uid}", enable_cache=False)
    def wrong_output() -> None:
        lies()

    with pytest.raises(StepTypeError, match="Step 'needs_int' input 'x': expected int, got str"):
        wrong_input()
    with pytest.raises(StepTypeError, match="Step 'lies' output 'output': expected int, got str"):
        wrong_output()


def test_non_json_parameter_is_refused_before_anything_is_recorded(uid: str) -> None:
    @step
    def takes(x: Any) -> int:
        return 1

    @pipeline(name=f"params_{uid}", enable_cache=False)
    def p() -> None:
        takes(object())

    with pytest.raises(ParameterError, match="Parameter 'x' of step 'takes'"):
        p()
    assert Client().list_pipeline_runs(pipeline_name=f"params_{uid}") == []


def test_repeated_steps_after_and_control_flow(uid: str) -> None:
    order: list[str] = []

    @step
    def record(tag: str) -> str:
        order.append(tag)
        return get_step_context().step_name

    @pipeline(name=f"flow_{uid}", enable_cache=False)
    def p(branches: int) -> None:
        first = record("a")
        for i in range(branches):
            record(f"b{i}", after=first)
        record("last", id="final", after=["record_2", "record_3"])

    run = p(branches=2)
    assert list(run.steps) == ["record", "record_2", "record_3", "final"]
    assert order == ["a", "b0", "b1", "last"]
    assert run.steps["record_2"].output.load() == "record_2"
    stored = Client().get_pipeline_run(run.id)
    assert set(stored.steps) == {"record", "record_2", "record_3", "final"}


def test_step_defined_inside_a_function_with_custom_materializer(uid: str, tmp_path: Any) -> None:
    from cairn.materializers import BaseMaterializer

    class Point:
        def __init__(self, x: int, y: int) -> None:
            self.x, self.y = x, y

    class PointMaterializer(BaseMaterializer):
        ASSOCIATED_TYPES = (Point,)

        def save(self, data: Point) -> None:
            with self.artifact_store.open(f"{self.uri}/point.txt", "w") as f:
                f.write(f"{data.x},{data.y}")

        def load(self, data_type: type) -> Point:
            with self.artifact_store.open(f"{self.uri}/point.txt", "r") as f:
                return Point(*map(int, f.read().split(",")))

    @step(output_materializers=PointMaterializer)
    def make_point() -> Point:
        return Point(2, 3)

    @pipeline(name=f"points_{uid}", enable_cache=False)
    def p() -> None:
        make_point()

    output = p().steps["make_point"].output
    assert output.materializer.endswith("PointMaterializer")
    loaded = output.load()
    assert (loaded.x, loaded.y) == (2, 3)


NO_SOURCE_SCRIPT = """
from typing import Annotated, Tuple
from cairn import pipeline, step

@step
def split_pair() -> Tuple[int, int]:
    return 1, 2

@step
def named() -> Annotated[str, "no_source_{uid}"]:
    return "from stdin"

@pipeline(name="no_source_{uid}", enable_cache=False)
def p() -> None:
    split_pair()
    named()

run = p()
print(sorted(run.steps["split_pair"].outputs), run.steps["named"].output.load())
"""


def test_steps_defined_without_a_source_file_run(uid: str) -> None:
    """Code fed on stdin (like an exec'd notebook cell) has no source for inspect to read."""
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-"],
        input=NO_SOURCE_SCRIPT.replace("{uid}", uid),
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "['output_0', 'output_1'] from stdin" in done.stdout
