"""Parameters and inputs validated as ZenML validates them: pydantic, lax mode.

No ``from __future__ import annotations`` here: steps below annotate with local classes.
"""

import dataclasses
import enum
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Optional

import pydantic
import pytest
from cairn import (
    CallError,
    ParameterError,
    StepDefinitionError,
    StepTypeError,
    pipeline,
    step,
    validation,
)
from cairn.composition import Composition, composing, end_composing
from cairn.validation import ArgumentType, json_parameter


class Optimizer(pydantic.BaseModel):
    name: str
    lr: float = 0.1


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Window:
    start: int
    labels: list[str]


WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


@step
def train(epochs: int, lr: float = 0.1, note: Optional[str] = None) -> int:
    return epochs


@step
def configure(
    optimizer: Optimizer, color: Color, run: uuid.UUID, when: datetime, where: Path, window: Window
) -> str:
    return "ok"


@step
def anything(value: Any, untyped) -> int:  # type: ignore[no-untyped-def]
    return 1


def compose(body: Any) -> Composition:
    composition = Composition("p")
    token = composing(composition)
    try:
        body()
    finally:
        end_composing(token)
    return composition


# --- coercion ------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [("42", 42), (3.0, 3), (True, 1), (7, 7)])
def test_lax_coercion_to_int(given: Any, expected: int) -> None:
    coerced = ArgumentType(int).coerce(given, step="s", what="parameter 'n'")
    assert coerced == expected and type(coerced) is int


def test_a_value_that_cannot_be_coerced_names_step_argument_and_types() -> None:
    with pytest.raises(StepTypeError) as info:
        ArgumentType(int).coerce("abc", step="train", what="parameter 'epochs'")
    error = info.value
    assert isinstance(error, TypeError)
    assert (error.step, error.what, error.expected, error.actual) == (
        "train",
        "parameter 'epochs'",
        "int",
        "str",
    )
    assert str(error).startswith("Step 'train' parameter 'epochs': expected int, got str")
    assert "given 'abc'" in str(error)


def test_none_is_refused_unless_the_annotation_is_optional() -> None:
    with pytest.raises(StepTypeError, match="expected int, got NoneType"):
        ArgumentType(int).coerce(None, step="s", what="parameter 'n'")
    assert ArgumentType(Optional[int]).coerce(None, step="s", what="parameter 'n'") is None


def test_parameters_are_coerced_and_recorded_at_composition() -> None:
    composition = compose(lambda: train("42", lr=3, note=None))
    invocation = composition.invocations["train"]
    assert invocation.arguments == {"epochs": 42, "lr": 3.0, "note": None}
    assert type(invocation.arguments["lr"]) is float
    assert invocation.parameters == {"epochs": 42, "lr": 3.0, "note": None}


def test_a_wrong_parameter_fails_composition_naming_step_and_argument() -> None:
    with pytest.raises(StepTypeError, match="Step 'train_2' parameter 'epochs': expected int"):
        compose(lambda: (train(1), train("abc")))


def test_rich_parameters_reach_the_step_as_objects_and_are_recorded_as_json() -> None:
    def body() -> None:
        configure(
            {"name": "adam", "lr": "0.5"},  # a dict validates into the model
            "blue",
            str(ID),
            WHEN.isoformat(),
            "/data/train",
            Window(start=3, labels=["a"]),
        )

    invocation = compose(body).invocations["configure"]
    given = invocation.arguments
    assert given["optimizer"] == Optimizer(name="adam", lr=0.5)
    assert given["color"] is Color.BLUE
    assert given["run"] == ID and given["when"] == WHEN
    assert given["where"] == Path("/data/train")
    assert given["window"] == Window(start=3, labels=["a"])
    assert invocation.parameters == {
        "optimizer": {"name": "adam", "lr": 0.5},
        "color": "blue",
        "run": str(ID),
        "when": "2024-05-06T07:08:09Z",
        "where": "/data/train",
        "window": {"start": 3, "labels": ["a"]},
    }


def test_unannotated_parameters_are_not_validated_but_rich_values_are_recorded() -> None:
    composition = compose(lambda: anything(Color.RED, Optimizer(name="sgd")))
    invocation = composition.invocations["anything"]
    assert invocation.arguments == {"value": Color.RED, "untyped": Optimizer(name="sgd")}
    assert invocation.parameters == {"value": "red", "untyped": {"name": "sgd", "lr": 0.1}}


@pytest.mark.parametrize(
    ("value", "recorded"),
    [
        (Color.RED, "red"),
        (ID, str(ID)),
        (WHEN, "2024-05-06T07:08:09Z"),
        (Path("a/b"), "a/b"),
        (Window(1, ["x"]), {"start": 1, "labels": ["x"]}),
        (Optimizer(name="n"), {"name": "n", "lr": 0.1}),
        ([Color.BLUE, (1, 2)], ["blue", [1, 2]]),
    ],
)
def test_json_form_of_rich_values(value: Any, recorded: Any) -> None:
    assert json_parameter(value, name="x", owner="step 's'") == recorded


def test_a_non_json_object_says_to_pass_it_as_an_artifact() -> None:
    with pytest.raises(ParameterError) as info:
        compose(lambda: anything(object(), 1))
    message = str(info.value)
    assert "Parameter 'value' of step 'anything' is an object" in message
    assert "return them from a step and hand that output on" in message


def test_a_dataclass_holding_a_non_json_value_is_refused() -> None:
    with pytest.raises(ParameterError, match="Parameter 'value' of step 'anything' is an object"):
        compose(lambda: anything(Window(start=1, labels=[object()]), 1))  # type: ignore[list-item]


def test_limits_still_hold_at_composition() -> None:
    with pytest.raises(ParameterError, match="NUL character"):
        compose(lambda: anything("a\x00b", 1))
    with pytest.raises(ParameterError, match="the limit is 262,144"):
        compose(lambda: anything("x" * 300_000, 1))


def test_pipeline_parameters_are_coerced_for_the_pipeline_function() -> None:
    @pipeline(name="coerced")
    def p(n: int, color: Color = Color.RED) -> None:
        pass

    assert p.parameters(("5",), {"color": "blue"}) == {"n": 5, "color": Color.BLUE}
    with pytest.raises(ParameterError) as info:
        p.parameters(("five",), {})
    assert str(info.value).startswith("Parameter 'n' of pipeline 'coerced': expected int, got str")


# --- cost ----------------------------------------------------------------------------------


def test_adapters_are_built_once_not_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []
    original = validation._build_validator

    def counting(annotation: Any) -> Any:
        built.append(annotation)
        return original(annotation)

    monkeypatch.setattr(validation, "_build_validator", counting)
    monkeypatch.setattr(validation, "_validators", {})

    @step
    def takes(n: int, xs: list[int]) -> int:
        return n

    for i in range(20):
        assert takes(str(i), (1, 2)) == i
        assert takes(i, [1]) == i  # exactly an int: no pydantic at all for n
    assert built == [int, list[int]]


def test_import_cairn_and_exact_values_do_not_import_pydantic() -> None:
    script = (
        "import sys, cairn\n"
        "@cairn.step\n"
        "def s(n: int, name: str) -> int:\n"
        "    return n\n"
        "assert s(1, 'a') == 1\n"
        "print('pydantic' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@step
def takes_float(x: float) -> float:
    return x


@pytest.mark.parametrize("given", ["nan", float("nan"), float("inf"), "-inf"])
def test_nan_and_infinities_are_refused_not_recorded_as_null(given: Any) -> None:
    """JSON has no NaN: recording one as null would differ from what the step receives."""
    with pytest.raises(ParameterError) as refused:
        compose(lambda: takes_float(given))  # "nan" becomes float("nan") first
    assert "Parameter 'x' of step 'takes_float' is" in str(refused.value)
    assert "which JSON cannot hold" in str(refused.value)
    assert "pass it as a string" in str(refused.value)
    if isinstance(given, float):  # unannotated: no coercion, the float itself is refused
        with pytest.raises(ParameterError, match="which JSON cannot hold"):
            compose(lambda: anything(given, 1))
    else:  # a string stays a string where nothing asks for a float
        compose(lambda: anything(given, 1))


# --- with_options(parameters=...) ---------------------------------------------------------------


def test_configured_parameters_fill_what_the_call_leaves_out() -> None:
    configured = train.with_options(parameters={"epochs": "3"})
    composition = compose(lambda: configured())
    (invocation,) = composition.order()
    # coerced and recorded like a call's own; the defaults left out are recorded as ZenML does
    assert invocation.parameters == {"epochs": 3, "lr": 0.1, "note": None}
    assert configured(lr=0.5) == 3  # outside a pipeline too
    assert configured.with_options(parameters={"lr": 0.2}).configured_parameters == {
        "epochs": "3",
        "lr": 0.2,
    }


def test_a_parameter_given_in_the_call_and_the_configuration_must_agree() -> None:
    configured = train.with_options(parameters={"epochs": 3})
    compose(lambda: configured(epochs=3))  # the same value: fine
    with pytest.raises(CallError) as conflict:
        compose(lambda: configured(epochs=4))
    assert str(conflict.value) == (
        "Step 'train' is called with epochs=4 but configured with parameters={'epochs': 3}; "
        "set it in one place (the call, or with_options(parameters=...))"
    )


def test_configuring_a_parameter_the_function_does_not_take_is_refused() -> None:
    with pytest.raises(StepDefinitionError) as unknown:
        train.with_options(parameters={"epoch": 3})
    assert str(unknown.value) == (
        "Step 'train' is configured with parameters 'epoch', which its function does not take; "
        "its arguments are 'epochs', 'lr', 'note'"
    )


def test_pipelines_take_configured_parameters_too() -> None:
    @pipeline(name="configured_p")
    def p(n: int, m: int = 1) -> None:
        pass

    configured = p.with_options(parameters={"n": "2"})
    assert configured.parameters((), {}) == {"n": 2, "m": 1}
    with pytest.raises(CallError, match=r"called with n=5 but configured with parameters=\{'n'"):
        configured.parameters((), {"n": 5})
    with pytest.raises(CallError, match="missing a required argument: 'n'"):
        p.parameters((), {})
    with pytest.raises(StepDefinitionError, match="Pipeline 'configured_p' is configured with"):
        p.with_options(parameters={"k": 1})
