"""Runners and the step executor without NATS: a pipeline runs on the runner it is given,
and the executor runs one step with whatever tracker it is handed."""

from concurrent.futures import Future
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest
from cairn import (
    ArtifactConfig,
    CairnError,
    Pipeline,
    PipelineRun,
    StepDefinitionError,
    get_step_context,
    pipeline,
    step,
)
from cairn.artifact_stores import LocalArtifactStore
from cairn.executor import RunContext, StepExecutor, StepInput
from cairn.failures import StepFailure
from cairn.models import RunConfig
from cairn.orchestrator import InProcessRunner, compose
from cairn.runner import PipelineDefinition
from cairn_events import (
    ArtifactMaterialized,
    Event,
    RunFinished,
    RunStarted,
    RunStatus,
    StepFailed,
    StepFinished,
    StepStarted,
)


class RecordingTracker:
    """A tracker that keeps events in a list and claims every version as the next number."""

    def __init__(self, root: Path) -> None:
        self.store = LocalArtifactStore(root)
        self.flush_timeout = 1.0
        self.events: list[Event] = []
        self.flushes = 0

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def claim_version(
        self, template: ArtifactMaterialized, requested: str | None
    ) -> Future[ArtifactMaterialized]:
        claimed: Future[ArtifactMaterialized] = Future()
        claimed.set_result(msgspec.structs.replace(template, version=requested or "1"))
        self.events.append(claimed.result())
        return claimed

    def cache_backend(self) -> None:
        return None  # no cache: every step computes, none is recorded

    def hold_sending(self) -> None:
        pass

    def release_sending(self) -> None:
        pass

    def flush(self) -> int:
        self.flushes += 1
        return len(self.events)

    def types(self) -> list[type]:
        return [type(event) for event in self.events]


@pytest.fixture
def tracker(tmp_path: Path) -> RecordingTracker:
    return RecordingTracker(tmp_path / "store")


@step
def make() -> int:
    return 41


@step
def add_one(x: int) -> Annotated[int, ArtifactConfig(name="answer", version="golden")]:
    assert get_step_context().step_name == "add_one"
    return x + 1


@step
def explode(x: int) -> int:
    raise KeyError(f"no {x}")


RUN = RunContext(pipeline_name="p", run_id="run-1", run_name="p-run", substitutions={})


def test_the_executor_runs_one_step_on_given_inputs_with_the_tracker_it_is_handed(
    tracker: RecordingTracker,
) -> None:
    @pipeline(name="p")
    def p() -> None:
        add_one(make())

    invocation = compose(p, {}).invocations["add_one"]
    upstream = StepInput(
        "0190c6a2-0000-7000-8000-000000000001", "hash", value="7"
    )  # as a worker gets it
    executed = StepExecutor(tracker, RUN).execute(invocation, {"x": upstream})

    [output] = executed.outputs
    assert output.value == 8  # "7" was coerced to 7 as the annotation says
    assert output.key == "answer" and output.stored().version == "golden"
    assert executed.inputs == {"x": upstream.artifact_version_id}
    assert executed.step_run.status == "completed" and executed.step_run.name == "add_one"
    assert tracker.types() == [StepStarted, ArtifactMaterialized, StepFinished]
    assert tracker.store.listdir(tracker.store.root) == ["answer"]


def test_a_failing_step_publishes_step_failed_and_hands_its_own_error_on(
    tracker: RecordingTracker,
) -> None:
    @pipeline(name="p")
    def p() -> None:
        explode(make())

    invocation = compose(p, {}).invocations["explode"]
    with pytest.raises(StepFailure) as failed:
        StepExecutor(tracker, RUN).execute(invocation, {"x": StepInput("id", "hash", value=3)})
    assert failed.value.step_name == "explode"
    assert isinstance(failed.value.error, KeyError)
    assert tracker.types() == [StepStarted, StepFailed]
    failure = tracker.events[-1]
    assert isinstance(failure, StepFailed) and failure.error_type == "KeyError"


def test_the_in_process_runner_runs_a_pipeline_on_the_tracker_it_is_given(
    tracker: RecordingTracker,
) -> None:
    @pipeline(name="p", runner=InProcessRunner(tracker))
    def p() -> None:
        add_one(make())

    run = p()
    assert run.status == "completed"
    assert run.steps["add_one"].inputs["x"].id == run.steps["make"].output.id
    assert run.steps["add_one"].output.load() == 42
    assert tracker.types()[0] is RunStarted and tracker.types()[-1] is RunFinished
    assert tracker.flushes == 1


def test_a_failed_run_is_recorded_and_raises_the_steps_exception(
    tracker: RecordingTracker,
) -> None:
    @pipeline(name="p", runner=InProcessRunner(tracker))
    def p() -> None:
        explode(make())

    with pytest.raises(KeyError, match="no 41"):
        p()
    finished = tracker.events[-1]
    assert isinstance(finished, RunFinished)
    assert finished.status == "failed" and finished.failed_step == "explode"


class Recorded:
    """A runner that runs nothing and says what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def run(self, pipeline: PipelineDefinition, parameters: dict[str, Any]) -> PipelineRun:
        self.asked.append((pipeline.name, parameters))
        return PipelineRun(
            id="r",
            name="r",
            pipeline_name=pipeline.name,
            status=RunStatus.COMPLETED,
            config=RunConfig(),
        )


def test_a_pipeline_runs_on_the_runner_it_is_given() -> None:
    first, second = Recorded(), Recorded()

    @pipeline(runner=first)
    def train(epochs: int = 1) -> None:
        make()

    train(epochs="3")  # type: ignore[arg-type]
    assert first.asked == [("train", {"epochs": 3})]  # parameters arrive coerced
    train.with_options(name="again")()
    assert first.asked[-1] == ("again", {"epochs": 1})  # with_options keeps the runner
    train.with_options(runner=second)()
    assert second.asked == [("train", {"epochs": 1})]


def test_by_default_a_pipeline_runs_in_process() -> None:
    assert isinstance(Pipeline(lambda: None).runner, InProcessRunner)


def test_an_executor_refuses_a_step_whose_upstream_value_it_was_not_given(
    tracker: RecordingTracker,
) -> None:
    @pipeline(name="p")
    def p() -> None:
        add_one(make())

    invocation = compose(p, {}).invocations["add_one"]
    with pytest.raises(CairnError, match="handed it no value for it"):
        StepExecutor(tracker, RUN).execute(invocation, {})
    assert tracker.events == []  # refused before anything is recorded


class NoRun:
    """Not a runner: it has no run()."""


class RunTakesNothing:
    """Not a runner: its run() takes no pipeline and no parameters."""

    def run(self) -> PipelineRun:
        raise AssertionError("never called")


class ReturnsNothing:
    """A runner that forgets to return the run."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, pipeline: PipelineDefinition, parameters: dict[str, Any]) -> None:
        self.calls += 1


@pytest.mark.parametrize(
    ("runner", "why"),
    [
        (NoRun(), r"a NoRun instance, which has no run\(\) method"),
        (
            InProcessRunner,
            r"the class InProcessRunner itself; pass an instance, InProcessRunner\(\)",
        ),
        ("in-process", r"'in-process' \(str\), which has no run\(\) method"),
        (RunTakesNothing(), r"whose run\(\) cannot be called as run\(pipeline, parameters\)"),
    ],
    ids=["no-run", "a-class", "a-string", "run-without-arguments"],
)
def test_a_runner_that_cannot_run_is_refused_where_it_is_given(runner: object, why: str) -> None:
    what = r"an instance with a run\(pipeline, parameters\) method .*InProcessRunner\(\)"
    with pytest.raises(
        StepDefinitionError, match=rf"^Pipeline 'train': runner= got .*{why}.*{what}"
    ):

        @pipeline(name="train", runner=runner)  # type: ignore[arg-type]
        def train() -> None:
            make()

    @pipeline(name="train")
    def fine() -> None:
        make()

    with pytest.raises(StepDefinitionError, match=rf"^Pipeline 'again': runner= got .*{why}"):
        fine.with_options(name="again", runner=runner)  # type: ignore[arg-type]
    with pytest.raises(StepDefinitionError, match=rf"^Pipeline 'train': runner= got .*{why}"):
        Pipeline(fine.func, name="train", runner=runner)  # type: ignore[arg-type]


def test_a_runner_that_returns_no_run_is_an_error_naming_it() -> None:
    runner = ReturnsNothing()

    @pipeline(name="train", runner=runner)  # type: ignore[arg-type]
    def train() -> None:
        make()

    with pytest.raises(StepDefinitionError) as refused:
        train()
    assert runner.calls == 1  # it ran; what it returned is wrong
    message = str(refused.value)
    assert message.startswith(
        "Pipeline 'train': its runner ReturnsNothing returned None (NoneType)"
    )
    assert (
        "instead of a PipelineRun; ReturnsNothing.run(pipeline, parameters) must return" in message
    )
