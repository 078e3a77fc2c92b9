"""Parameters must be JSON; inputs and outputs must fit their annotations."""

from __future__ import annotations

from typing import Optional

import pytest
from cairn import ParameterError, StepTypeError
from cairn.validation import check_type, json_parameter


def test_json_parameters_pass_and_tuples_become_lists() -> None:
    assert json_parameter(
        {"a": [1, 2.5, None, True, "x"], "b": (1, 2)}, name="p", owner="step 's'"
    ) == {"a": [1, 2.5, None, True, "x"], "b": [1, 2]}


@pytest.mark.parametrize("value", [object(), {1: "int key"}, [1, {2, 3}], b"bytes"])
def test_non_json_parameter_is_named(value: object) -> None:
    with pytest.raises(ParameterError, match="Parameter 'lr' of step 'train'"):
        json_parameter(value, name="lr", owner="step 'train'")


def test_type_errors_name_step_argument_expected_and_actual() -> None:
    with pytest.raises(StepTypeError) as info:
        check_type("3", int, step="train", what="input 'epochs'")
    assert str(info.value) == "Step 'train' input 'epochs': expected int, got str"


def test_generic_annotations_are_checked_strictly() -> None:
    check_type([1, 2], list[int], step="s", what="output 'output'")
    check_type(None, Optional[int], step="s", what="output 'output'")
    with pytest.raises(StepTypeError, match=r"expected list\[int\], got list"):
        check_type([1, "2"], list[int], step="s", what="output 'output'")


def test_int_is_accepted_where_float_is_expected() -> None:
    check_type(3, float, step="s", what="input 'x'")
