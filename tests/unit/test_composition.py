"""Composing pipelines: step ids, repeated calls, after=, plain calls outside pipelines."""

from __future__ import annotations

import pytest
from cairn import CallError, StepDefinitionError, step
from cairn.composition import Composition, OutputHandle, composing, end_composing


@step
def make() -> int:
    return 1


@step
def use(x: int) -> int:
    return x


def compose(body) -> Composition:  # type: ignore[no-untyped-def]
    composition = Composition("p")
    token = composing(composition)
    try:
        body()
    finally:
        end_composing(token)
    return composition


def test_a_step_outside_a_pipeline_is_the_plain_function() -> None:
    assert use(5) == 5


def test_repeated_calls_get_numbered_ids_or_the_given_id() -> None:
    def body() -> None:
        a = make()
        use(a)
        use(a)
        use(a, id="third")
        use(a)

    composition = compose(body)
    assert list(composition.invocations) == ["make", "use", "use_2", "third", "use_3"]


def test_data_and_after_dependencies() -> None:
    def body() -> None:
        first = make()
        make(after="make")
        use(first, after=["make_2"])

    composition = compose(body)
    assert composition.invocations["use"].upstream == ["make", "make_2"]
    assert composition.invocations["use"].arguments["x"] == OutputHandle("make", "output")


def test_after_an_unknown_step_is_named() -> None:
    composition = compose(lambda: make(after="nope"))  # it may be a step called later
    with pytest.raises(StepDefinitionError, match="after='nope' names no step"):
        composition.order()


def test_duplicate_explicit_id_is_an_error() -> None:
    with pytest.raises(StepDefinitionError, match="already has a step with id 'x'"):
        compose(lambda: (make(id="x"), make(id="x")))


def test_wrong_arguments_name_the_step() -> None:
    with pytest.raises(StepDefinitionError, match="Step 'use' was called wrongly"):
        compose(lambda: use(1, 2))
    with pytest.raises(TypeError, match="Step 'use' was called wrongly"):  # as Python would
        compose(lambda: use(1, 2))


def test_a_mistyped_keyword_is_named_with_the_arguments_the_step_takes() -> None:
    with pytest.raises(CallError) as wrong:
        compose(lambda: use(xx=1))  # type: ignore[call-arg]
    assert str(wrong.value) == (
        "Step 'use' was called with 'xx', which it does not take; its arguments are 'x'"
    )
