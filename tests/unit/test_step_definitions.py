"""Step definitions as ZenML takes them: refused signatures and annotations, after=, metadata.

No ``from __future__ import annotations`` here: steps below annotate with local classes.
"""

import inspect
import pickle
import pydoc
import re
from typing import Annotated, Any

import pytest
from cairn import ArtifactConfig, Step, StepDefinitionError, StepTypeError, step
from cairn.composition import Composition, OutputHandle, composing, end_composing


def compose(body: Any, name: str = "p") -> Composition:
    composition = Composition(name)
    token = composing(composition)
    try:
        body()
    finally:
        end_composing(token)
    return composition


@step
def documented(x: int, label: str = "a") -> int:
    """Doubles ``x``."""
    return 2 * x


@step
def later_typed() -> "DefinedLater":
    return DefinedLater()


class DefinedLater:
    pass


@step
def emit() -> int:
    return 1


@step
def take(x: int) -> int:
    return x


@step
def pair() -> tuple[int, int]:
    return 1, 2


# --- refused at definition ----------------------------------------------------------------


def test_var_positional_is_refused_naming_the_step() -> None:
    def spread(*values: int) -> int:
        return sum(values)

    with pytest.raises(StepDefinitionError, match=r"Step 'spread' takes \*values.*named"):
        step(spread)


def test_var_keyword_is_refused_naming_the_step() -> None:
    def options(**extra: Any) -> int:
        return len(extra)

    with pytest.raises(StepDefinitionError, match=r"Step 'renamed' takes \*\*extra"):
        step(name="renamed")(options)


@pytest.mark.parametrize("reserved", ["id", "after"])
def test_arguments_named_like_call_options_are_refused(reserved: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def clash({reserved}: str) -> int:\n    return 1", namespace)
    with pytest.raises(
        StepDefinitionError, match=f"Step 'clash' has an argument named '{reserved}'"
    ):
        step(namespace["clash"])


@pytest.mark.parametrize(
    ("annotation", "problem"),
    [
        (Annotated[int, "a", "b"], r"gives two names \('a', 'b'\)"),
        (Annotated[int, 1], "holds 1, which is neither a name nor an ArtifactConfig"),
        (
            Annotated[int, ArtifactConfig(name="a"), ArtifactConfig(name="b")],
            "holds two ArtifactConfigs",
        ),
        (
            Annotated[int, "a", ArtifactConfig(name="b")],
            r"gives two names \('a' and ArtifactConfig\(name='b'\)\)",
        ),
    ],
)
def test_bad_output_annotations_are_refused_at_definition(annotation: Any, problem: str) -> None:
    def make() -> int:
        return 1

    make.__annotations__["return"] = annotation
    with pytest.raises(StepDefinitionError) as info:
        step(make)
    message = str(info.value)
    assert "of step 'make'" in message
    assert re.search(problem, message), message
    assert "Annotated[int, 'name'] or Annotated[int, ArtifactConfig(name='name', ...)]" in message


def test_bad_annotation_inside_a_tuple_output_is_refused() -> None:
    def two() -> tuple[Annotated[int, "a"], Annotated[int, 2]]:
        return 1, 2

    with pytest.raises(StepDefinitionError, match="step 'two' holds 2"):
        step(two)


def test_two_outputs_with_the_same_static_name_are_refused() -> None:
    def twins() -> tuple[Annotated[int, "same"], Annotated[str, ArtifactConfig(name="same")]]:
        return 1, "x"

    with pytest.raises(StepDefinitionError, match="Step 'twins' gives more than one output"):
        step(twins)


def test_a_name_with_an_unnamed_artifact_config_is_one_name() -> None:
    """ZenML's legacy form: the string names the output, the config carries the rest."""

    @step
    def tagged() -> Annotated[int, "scores", ArtifactConfig(tags=["eval"])]:
        return 1

    (spec,) = tagged.outputs
    assert (spec.key, spec.name_template) == ("scores", "scores")
    assert spec.config == ArtifactConfig(name="scores", tags=["eval"])


def test_a_forward_reference_resolves_when_used() -> None:
    """``-> "DefinedLater"`` names a class defined after the step: parsed on first use."""
    (spec,) = later_typed.outputs
    assert spec.annotation is DefinedLater


def test_a_name_that_never_resolves_keeps_the_helpful_error() -> None:
    @step
    def lost() -> "Nowhere":  # type: ignore[name-defined]  # noqa: F821
        return 1

    with pytest.raises(StepDefinitionError, match="annotations of step 'lost' cannot be resolved"):
        compose(lambda: lost())
    with pytest.raises(StepDefinitionError, match="module-level names"):
        lost()


# --- outputs of steps that return nothing ---------------------------------------------------


def test_an_unannotated_step_without_a_returned_value_has_no_outputs() -> None:
    @step
    def side_effect(x: int):  # type: ignore[no-untyped-def]
        if x:
            return
        print(x)

    @step
    def returns_none_explicitly():  # type: ignore[no-untyped-def]
        return None

    @step
    def returns_a_value(x: int):  # type: ignore[no-untyped-def]
        return x

    assert side_effect.outputs == returns_none_explicitly.outputs == []
    assert [spec.key for spec in returns_a_value.outputs] == ["output"]
    handles: dict[str, Any] = {}
    compose(lambda: handles.update(a=side_effect(1), b=returns_a_value(2)))
    assert handles == {"a": None, "b": OutputHandle("returns_a_value", "output")}


# --- after= -------------------------------------------------------------------------------


def test_after_may_name_a_step_called_later() -> None:
    def body() -> None:
        take(emit(), after="last")
        emit(id="last")

    composition = compose(body)
    assert [inv.id for inv in composition.order()] == ["emit", "last", "take"]
    assert composition.invocations["take"].upstream == ["emit", "last"]


def test_order_is_stable_call_order_among_independent_steps() -> None:
    def body() -> None:
        for i in range(5):
            emit(id=f"s{i}")
        take(emit(id="late"), id="needs_late")
        emit(id="first_wait", after="s4")

    composition = compose(body)
    assert [inv.id for inv in composition.order()] == [
        "s0",
        "s1",
        "s2",
        "s3",
        "s4",
        "late",
        "needs_late",
        "first_wait",
    ]


def test_after_takes_step_outputs_lists_and_many_output_returns() -> None:
    def body() -> None:
        one = emit(id="one")
        both = pair()
        emit(id="three")
        emit(id="waits", after=[one, both, "three"])
        emit(id="waits_tuple", after=both)

    composition = compose(body)
    assert composition.invocations["waits"].upstream == ["one", "pair", "three"]
    assert composition.invocations["waits_tuple"].upstream == ["pair"]


def test_after_naming_no_step_names_the_names() -> None:
    composition = compose(lambda: (emit(after=["nope", "emit"]), take(1)))
    with pytest.raises(StepDefinitionError) as info:
        composition.order()
    message = str(info.value)
    assert "after='nope' names no step in pipeline 'p'" in message
    assert "step 'emit' waits for it" in message and "emit, take" in message


def test_an_after_cycle_is_named() -> None:
    def body() -> None:
        emit(id="a", after="c")
        emit(id="b", after="a")
        emit(id="c", after="b")
        emit(id="free")

    with pytest.raises(StepDefinitionError) as info:
        compose(body).order()
    message = str(info.value)
    assert "Pipeline 'p' cannot run" in message
    assert "a -> c -> b -> a" in message, message


def test_a_step_waiting_for_itself_is_a_cycle() -> None:
    with pytest.raises(StepDefinitionError, match="x -> x"):
        compose(lambda: emit(id="x", after="x")).order()


@pytest.mark.parametrize(
    ("after", "described"),
    [([None], "holds None"), (documented, "the step 'documented' itself"), (3, "a int")],
)
def test_after_with_something_else_says_what_it_takes(after: Any, described: str) -> None:
    with pytest.raises(StepDefinitionError, match=described) as info:
        compose(lambda: emit(after=after))
    assert "after='train'" in str(info.value)


# --- a step called outside a pipeline -----------------------------------------------------


def test_outside_a_pipeline_arguments_are_validated_and_coerced() -> None:
    assert documented("21") == 42
    assert documented(x=3.0) == 6
    with pytest.raises(StepTypeError) as info:
        documented("abc")
    assert str(info.value).startswith("Step 'documented' argument 'x': expected int, got str")
    with pytest.raises(StepDefinitionError, match="missing a required argument: 'x'"):
        documented()
    with pytest.raises(StepTypeError, match="argument 'x': expected int, got NoneType"):
        documented(None)


def test_outside_a_pipeline_the_return_value_is_untouched() -> None:
    @step
    def lies() -> int:
        return "not checked outside a run"  # type: ignore[return-value]

    assert lies() == "not checked outside a run"


# --- a Step looks like its function ---------------------------------------------------------


def test_a_step_carries_its_functions_identity() -> None:
    assert documented.__name__ == "documented"
    assert documented.__qualname__ == "documented"
    assert documented.__module__ == __name__
    assert documented.__doc__ == "Doubles ``x``."
    assert documented.__wrapped__ is documented.func
    assert str(inspect.signature(documented)) == "(x: int, label: str = 'a') -> int"
    assert "Doubles ``x``." in pydoc.render_doc(documented)


def test_a_module_level_step_pickles_by_reference() -> None:
    data = pickle.dumps(documented)
    assert b"documented" in data and len(data) < 200  # a reference, not the function
    assert pickle.loads(data) is documented


def test_a_step_that_is_not_importable_does_not_pickle() -> None:
    @step
    def local() -> int:
        return 1

    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(local)


def test_with_options_keeps_identity_and_checks() -> None:
    renamed = documented.with_options(name="doubled")
    assert isinstance(renamed, Step)
    assert (renamed.name, renamed.__name__) == ("doubled", "documented")
    assert renamed("2") == 4
