"""ZenML step code moves over unchanged: definitions, after=, parameters and inputs, end to end.

Runs against the real stack (nats-server, Postgres, projector, query API) and reads back
through the Client. No ``from __future__ import annotations``: steps annotate with locals.
"""

import dataclasses
import enum
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Optional

import pydantic
import pytest
from cairn import (
    Client,
    ParameterError,
    StepDefinitionError,
    StepTypeError,
    get_step_context,
    pipeline,
    step,
)

pytestmark = pytest.mark.usefixtures("cairn_stack")


class Optimizer(pydantic.BaseModel):
    name: str
    lr: float = 0.1


class Stage(enum.Enum):
    TRAIN = "train"
    EVAL = "eval"


@dataclasses.dataclass
class Window:
    start: int
    end: int


def recorded_runs(pipeline_name: str) -> list[Any]:
    return Client().list_pipeline_runs(pipeline_name=pipeline_name)


# --- parameters ------------------------------------------------------------------------------


def test_coerced_parameters_are_what_the_step_gets_and_the_run_records(uid: str) -> None:
    seen: dict[str, Any] = {}

    @step
    def train(epochs: int, lr: float, note: Optional[str] = None) -> int:
        seen.update(epochs=epochs, lr=lr, note=note)
        return epochs

    @pipeline(name=f"coerce_{uid}")
    def p() -> None:
        train("42", lr=3)

    run = p()
    assert seen == {"epochs": 42, "lr": 3.0, "note": None}
    assert type(seen["epochs"]) is int and type(seen["lr"]) is float
    # the default left out (note) is recorded too, as ZenML records it
    assert run.steps["train"].config.parameters == {"epochs": 42, "lr": 3.0, "note": None}
    stored = Client().get_pipeline_run(run.id)
    assert stored.steps["train"].config.parameters == {"epochs": 42, "lr": 3.0, "note": None}
    assert stored.steps["train"].output.load() == 42


def test_a_parameter_that_cannot_be_coerced_fails_before_anything_is_recorded(uid: str) -> None:
    @step
    def train(epochs: int) -> int:
        return epochs

    @pipeline(name=f"badparam_{uid}")
    def p() -> None:
        train(1)
        train("abc")

    with pytest.raises(StepTypeError) as info:
        p()
    assert str(info.value).startswith("Step 'train_2' parameter 'epochs': expected int, got str")
    assert recorded_runs(f"badparam_{uid}") == []


def test_rich_parameters_arrive_as_objects_and_are_recorded_as_json(uid: str) -> None:
    run_id = uuid.UUID("0c4a3c2e-6f1b-4c43-9a57-3f1e8f7f0b11")
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    seen: dict[str, Any] = {}

    @step
    def configure(
        optimizer: Optimizer,
        stage: Stage,
        run: uuid.UUID,
        when: datetime,
        data: Path,
        window: Window,
    ) -> str:
        seen.update(optimizer=optimizer, stage=stage, run=run, when=when, data=data, window=window)
        return optimizer.name

    @pipeline(name=f"rich_{uid}")
    def p() -> None:
        configure(
            Optimizer(name="adam", lr=0.01),
            Stage.EVAL,
            run_id,
            when,
            Path("/data/train.csv"),
            Window(start=1, end=9),
        )

    run = p()
    assert seen == {
        "optimizer": Optimizer(name="adam", lr=0.01),
        "stage": Stage.EVAL,
        "run": run_id,
        "when": when,
        "data": Path("/data/train.csv"),
        "window": Window(start=1, end=9),
    }
    expected = {
        "optimizer": {"name": "adam", "lr": 0.01},
        "stage": "eval",
        "run": str(run_id),
        "when": "2025-01-02T03:04:05Z",
        "data": "/data/train.csv",
        "window": {"start": 1, "end": 9},
    }
    assert run.steps["configure"].config.parameters == expected
    assert Client().get_pipeline_run(run.id).steps["configure"].config.parameters == expected


def test_a_client_artifact_version_given_to_a_step_is_its_input_not_a_parameter(
    uid: str,
) -> None:
    @step
    def produce() -> list[int]:
        return [1, 2, 3]

    @step
    def consume(data: list[int]) -> int:
        return len(data)

    @pipeline(name=f"produce_{uid}")
    def first() -> None:
        produce()

    version = Client().get_pipeline_run(first().id).steps["produce"].output

    @pipeline(name=f"consume_{uid}")
    def second() -> None:
        consume(version)

    run = Client().get_pipeline_run(second().id)
    consumed = run.steps["consume"]
    assert consumed.inputs["data"].id == version.id
    assert consumed.parameters == {}
    assert consumed.output.load() == 3


def test_pipeline_parameters_are_coerced_as_zenml_does(uid: str) -> None:
    seen: list[Any] = []

    @step
    def count(n: int) -> int:
        return n

    @pipeline(name=f"pparams_{uid}")
    def p(n: int, stage: Stage = Stage.TRAIN) -> None:
        seen.append((n, stage))
        count(n)

    run = p(n="7", stage="eval")
    assert seen == [(7, Stage.EVAL)]
    assert Client().get_pipeline_run(run.id).config.parameters == {"n": 7, "stage": "eval"}
    assert run.config.parameters == {"n": 7, "stage": "eval"}
    with pytest.raises(ParameterError, match="Parameter 'n' of pipeline 'pparams_"):
        p(n="seven")
    assert len(recorded_runs(f"pparams_{uid}")) == 1


# --- inputs ----------------------------------------------------------------------------------


def test_inputs_are_coerced_as_zenml_does_and_bad_ones_fail_the_step(uid: str) -> None:
    seen: list[Any] = []

    @step
    def as_list() -> list[int]:
        return [3, 1, 2]

    @step
    def as_text() -> str:
        return "three"

    @step
    def wants_tuple(xs: tuple[int, ...]) -> int:
        seen.append(xs)
        return len(xs)

    @step
    def wants_int(x: int) -> int:
        return x

    @pipeline(name=f"inputs_{uid}")
    def good() -> None:
        wants_tuple(as_list())

    @pipeline(name=f"badinput_{uid}")
    def bad() -> None:
        wants_int(as_text())

    good()
    assert seen == [(3, 1, 2)]
    with pytest.raises(StepTypeError, match="Step 'wants_int' input 'x': expected int, got str"):
        bad()
    (failed,) = recorded_runs(f"badinput_{uid}")
    stored = Client().get_pipeline_run(failed.id)
    assert stored.status == "failed" and stored.steps["wants_int"].status == "failed"
    assert stored.steps["as_text"].output.load() == "three"  # what was recorded stays


# --- definitions and ordering ----------------------------------------------------------------


def test_after_may_name_a_step_called_later_in_the_pipeline(uid: str) -> None:
    order: list[str] = []

    @step
    def record(tag: str) -> str:
        order.append(tag)
        return get_step_context().step_name

    @step
    def load() -> int:
        order.append("load")
        return 1

    @step
    def use(x: int) -> int:
        order.append("use")
        return x

    @pipeline(name=f"later_{uid}")
    def p() -> None:
        use(load(), after="setup")  # ZenML resolves after= once the pipeline is composed
        record("independent")
        record("setup", id="setup")

    run = p()
    assert order == ["load", "independent", "setup", "use"]
    assert list(run.steps) == ["load", "record", "setup", "use"]
    stored = Client().get_pipeline_run(run.id)
    assert sorted(stored.steps, key=lambda name: stored.steps[name].started_at) == [
        "load",
        "record",
        "setup",
        "use",
    ]


def test_an_after_cycle_or_unknown_name_fails_before_anything_is_recorded(uid: str) -> None:
    @step
    def noop(tag: str) -> str:
        return tag

    @pipeline(name=f"cycle_{uid}")
    def cyclic() -> None:
        noop("a", id="a", after="b")
        noop("b", id="b", after="a")

    @pipeline(name=f"unknown_{uid}")
    def unknown() -> None:
        noop("a", after="missing")

    with pytest.raises(StepDefinitionError, match="cycle"):
        cyclic()
    with pytest.raises(StepDefinitionError, match="after='missing' names no step"):
        unknown()
    assert recorded_runs(f"cycle_{uid}") == recorded_runs(f"unknown_{uid}") == []


def test_a_side_effect_step_stores_no_artifact(uid: str) -> None:
    calls: list[int] = []

    @step
    def log_it(x: int):  # type: ignore[no-untyped-def]
        calls.append(x)

    @pipeline(name=f"side_{uid}")
    def p() -> None:
        log_it(5)

    run = p()
    assert calls == [5]
    stored = Client().get_pipeline_run(run.id)
    assert stored.status == "completed"
    assert stored.steps["log_it"].outputs == {} == run.steps["log_it"].outputs


def test_a_none_annotated_step_returning_a_value_fails_naming_the_step(uid: str) -> None:
    @step
    def claims_nothing() -> None:
        return 3  # type: ignore[return-value]

    @pipeline(name=f"nonevalue_{uid}")
    def p() -> None:
        claims_nothing()

    with pytest.raises(StepTypeError) as info:
        p()
    message = str(info.value)
    assert message.startswith("Step 'claims_nothing' return value: expected None")
    assert "-> None" in message and "got int" in message
    (run,) = recorded_runs(f"nonevalue_{uid}")
    stored = Client().get_pipeline_run(run.id)
    assert stored.status == "failed"
    assert stored.steps["claims_nothing"].outputs == {}


def test_annotations_that_never_resolve_fail_before_anything_is_recorded(uid: str) -> None:
    @step
    def lost() -> "NotDefinedAnywhere":  # type: ignore[name-defined]  # noqa: F821
        return 1

    @pipeline(name=f"lost_{uid}")
    def p() -> None:
        lost()

    with pytest.raises(StepDefinitionError, match="annotations of step 'lost' cannot be resolved"):
        p()
    assert recorded_runs(f"lost_{uid}") == []


def test_a_broken_stdout_does_not_leave_the_run_running(uid: str, tmp_path: Path) -> None:
    """`python pipeline.py | head -1`: the progress lines fail, the run still finishes."""
    import os
    import subprocess
    import sys

    script = tmp_path / "piped.py"
    script.write_text(
        "from cairn import pipeline, step\n"
        "@step\ndef s() -> int:\n    return 1\n"
        "@step\ndef t(x: int) -> int:\n    return x + 1\n"
        f"@pipeline(name='piped_{uid}')\ndef p():\n    t(s())\n"
        "p()\n"
    )
    child = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.readline()  # as `head -1` does: one line, then the pipe is gone
    child.stdout.close()
    child.wait(timeout=120)
    errors = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    # Another process made the run: this one's reads do not wait for it, so poll (bounded).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        runs = recorded_runs(f"piped_{uid}")
        if runs and runs[0].status != "running":
            break
        time.sleep(0.05)
    assert len(runs) == 1, errors
    run = runs[0]
    assert run.status == "completed", run.status
    assert run.steps["t"].output.load() == 2
