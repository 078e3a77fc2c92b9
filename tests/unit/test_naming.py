"""Output declarations and artifact name templates (artifact-naming rules)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import pytest
from cairn import ArtifactConfig, ArtifactNameError, StepDefinitionError
from cairn.naming import parse_outputs, resolve_name, standard_substitutions


def keys(func: Any) -> list[tuple[str, str | None]]:
    return [(spec.key, spec.name_template) for spec in parse_outputs(func)]


def test_unannotated_output_is_output() -> None:
    def f():  # type: ignore[no-untyped-def]
        return 1

    assert keys(f) == [("output", None)]


def test_none_annotation_means_no_outputs() -> None:
    def f() -> None:
        pass

    assert keys(f) == []


def test_returning_a_tuple_literal_gives_numbered_outputs() -> None:
    def f() -> tuple[int, str]:
        return 1, "a"

    def g() -> tuple[int, str]:
        return (1, "a")

    assert keys(f) == keys(g) == [("output_0", None), ("output_1", None)]


def test_returning_a_tuple_value_is_one_tuple_output() -> None:
    def f() -> tuple[int, str]:
        some_tuple = (1, "a")
        return some_tuple

    assert keys(f) == [("output", None)]
    assert parse_outputs(f)[0].annotation == tuple[int, str]


def test_static_names_from_str_or_artifact_config() -> None:
    def f() -> Annotated[str, "static_output_name"]:
        return "x"

    def g() -> Annotated[str, ArtifactConfig(name="cfg_name", version="v1")]:
        return "x"

    assert keys(f) == [("static_output_name", "static_output_name")]
    assert keys(g) == [("cfg_name", "cfg_name")]
    assert parse_outputs(g)[0].config == ArtifactConfig(name="cfg_name", version="v1")


def test_mixed_static_and_dynamic_names_in_one_tuple() -> None:
    def f() -> tuple[
        Annotated[str, "static_output_name"], Annotated[str, "name_{date}_{time}"], int
    ]:
        return "a", "b", 3

    assert keys(f) == [
        ("static_output_name", "static_output_name"),
        ("name_{date}_{time}", "name_{date}_{time}"),
        ("output_2", None),
    ]


def test_variable_length_tuple_literal_is_a_definition_error() -> None:
    def f() -> tuple[int, ...]:
        return 1, 2

    with pytest.raises(StepDefinitionError, match="does not say how many outputs"):
        parse_outputs(f)


def test_date_and_time_placeholders_use_utc_run_start() -> None:
    moment = datetime(2024, 11, 18, 11, 7, 9, 326492, tzinfo=UTC)
    subs = standard_substitutions(moment)
    assert subs == {"date": "2024_11_18", "time": "11_07_09_326492"}
    assert (
        resolve_name("name_{date}_{time}", subs, step="s", output="o")
        == "name_2024_11_18_11_07_09_326492"
    )


def test_custom_placeholders_resolve_from_substitutions() -> None:
    assert (
        resolve_name("{stage}_dataset", {"stage": "train"}, step="s", output="o") == "train_dataset"
    )


def test_missing_placeholder_names_template_and_key() -> None:
    with pytest.raises(ArtifactNameError) as info:
        resolve_name("{stage}_dataset", {"date": "d"}, step="extract", output="{stage}_dataset")
    message = str(info.value)
    assert "'{stage}_dataset'" in message and "'stage'" in message and "extract" in message


def test_malformed_template_is_an_error() -> None:
    with pytest.raises(ArtifactNameError, match="malformed"):
        resolve_name("name_{date", {"date": "d"}, step="s", output="o")
    with pytest.raises(ArtifactNameError, match="placeholders must be names"):
        resolve_name("name_{0}", {}, step="s", output="o")
