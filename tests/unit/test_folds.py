"""Folds: each event type turns into the row changes a user's queries are built from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cairn_events import (
    ArtifactMaterialized,
    RunFinished,
    RunStarted,
    StepFailed,
    StepFinished,
    StepStarted,
)
from cairn_projections import (
    WRITE_COLUMNS,
    FoldError,
    RowChange,
    Write,
    fold,
    fold_all,
    fold_artifact_materialized,
    fold_run_finished,
    fold_run_started,
    fold_step_failed,
    fold_step_finished,
    fold_step_started,
    stage_rows,
)

T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def columns(change: RowChange) -> dict[str, Any]:
    """A change's row as {column: value}."""
    return dict(zip(WRITE_COLUMNS[change.write], change.row, strict=True))


def artifact(**overrides: Any) -> ArtifactMaterialized:
    fields: dict[str, Any] = {
        "artifact_version_id": "av-1",
        "name": "training::trainer::output",
        "version": "2",
        "numeric_count": 2,
        "uri": "/store/av-1",
        "artifact_type": "model",
        "data_type": "sklearn.linear_model.LogisticRegression",
        "materializer": "cairn.materializers.CloudpickleMaterializer",
        "content_hash": "abc",
        "size": 1234,
        "producer_run_id": "run-1",
        "producer_step_run_id": "step-1",
        "output_name": "output",
        "tags": ["prod"],
        "occurred_at": T0,
    }
    return ArtifactMaterialized(**{**fields, **overrides})


def test_run_started_fills_identity_and_config() -> None:
    event = RunStarted(
        run_id="run-1",
        run_name="training-1",
        pipeline_name="training",
        started_at=T0,
        parameters={"lr": 0.1},
        substitutions={"date": "2026_11_24"},
        enable_cache=False,
        step_names=["loader", "trainer"],
    )
    [change] = fold_run_started(event)
    assert change.write is Write.RUN_STARTED
    assert columns(change) == {
        "id": "run-1",
        "name": "training-1",
        "pipeline_name": "training",
        "parameters": {"lr": 0.1},
        "substitutions": {"date": "2026_11_24"},
        "enable_cache": False,
        "step_names": ["loader", "trainer"],
        "started_at": T0,
    }


def test_run_finished_fills_outcome_only() -> None:
    event = RunFinished(
        run_id="run-1",
        status="failed",
        duration_s=2.5,
        error="ValueError: bad",
        failed_step="trainer",
        occurred_at=T0,
    )
    [change] = fold_run_finished(event)
    assert change.write is Write.RUN_FINISHED
    assert columns(change) == {
        "id": "run-1",
        "outcome": "failed",
        "finished_at": T0,
        "duration_s": 2.5,
        "error": "ValueError: bad",
        "failed_step": "trainer",
    }


def test_step_started_writes_the_step_and_one_input_edge_per_argument() -> None:
    event = StepStarted(
        run_id="run-1",
        step_run_id="step-2",
        step_name="trainer",
        function="pipelines.train.trainer",
        parameters={"epochs": 3},
        inputs={"data": "av-0", "labels": "av-9"},
        occurred_at=T0,
    )
    step, *edges = fold_step_started(event)
    assert step.write is Write.STEP_STARTED
    assert columns(step)["function"] == "pipelines.train.trainer"
    assert columns(step)["started_at"] == T0
    assert edges == [
        RowChange(Write.STEP_INPUT, ("step-2", "data", "av-0", 0)),
        RowChange(Write.STEP_INPUT, ("step-2", "labels", "av-9", 1)),
    ]


def test_step_finished_completes_the_step_and_records_outputs() -> None:
    event = StepFinished(
        run_id="run-1",
        step_run_id="step-2",
        step_name="trainer",
        duration_s=1.5,
        outputs={"output": "av-1"},
        occurred_at=T0,
    )
    step, edge = fold_step_finished(event)
    assert columns(step) == {
        "id": "step-2",
        "run_id": "run-1",
        "name": "trainer",
        "outcome": "completed",
        "finished_at": T0,
        "duration_s": 1.5,
    }
    assert edge == RowChange(Write.STEP_OUTPUT, ("step-2", "output", "av-1", 0))


def test_step_failed_keeps_the_error() -> None:
    event = StepFailed(
        run_id="run-1",
        step_run_id="step-2",
        step_name="trainer",
        duration_s=0.1,
        error_type="KeyError",
        error_message="'x'",
        traceback="Traceback ...",
    )
    [change] = fold_step_failed(event)
    row = columns(change)
    assert (row["outcome"], row["error_type"], row["error_message"]) == (
        "failed",
        "KeyError",
        "'x'",
    )


def test_artifact_materialized_records_the_numbered_version() -> None:
    [change] = fold_artifact_materialized(artifact())
    row = columns(change)
    assert change.write is Write.ARTIFACT_VERSION
    assert (row["name"], row["version"], row["numeric_version"]) == (
        "training::trainer::output",
        "2",
        2,
    )
    assert row["type"] == "model"
    assert row["created_at"] == T0
    assert row["tags"] == ["prod"]


def test_a_custom_version_has_no_number() -> None:
    [change] = fold_artifact_materialized(artifact(version="golden", numeric_count=1))
    assert columns(change)["numeric_version"] is None


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (artifact(version="3", numeric_count=2), "exceeds its numeric_count"),
        (artifact(name=""), "empty name"),
        (artifact(size=-1), "out of range"),
        (artifact(version=str(2**64), numeric_count=2**64), "too large"),
        (
            StepFinished(run_id="r", step_run_id="", step_name="s", duration_s=0.0),
            "empty step_run_id",
        ),
        (
            StepStarted(run_id="r", step_run_id="s", step_name="s", function="f", inputs={"x": ""}),
            "empty key or artifact version id",
        ),
    ],
)
def test_events_that_cannot_be_projected_raise_fold_error(event: Any, reason: str) -> None:
    with pytest.raises(FoldError, match=reason):
        fold(event)


def test_fold_dispatches_on_type_and_rejects_unknown_objects() -> None:
    assert fold(artifact()) == fold_artifact_materialized(artifact())
    with pytest.raises(FoldError, match="no fold for event type str"):
        fold("not an event")


def test_fold_all_keeps_log_order() -> None:
    events = [
        RunStarted(run_id="r", run_name="n", pipeline_name="p", started_at=T0),
        RunFinished(run_id="r", status="completed", duration_s=1.0),
    ]
    assert [c.write for c in fold_all(events)] == [Write.RUN_STARTED, Write.RUN_FINISHED]


def staged(changes: list[RowChange]) -> list[dict[str, Any]]:
    return [
        dict(zip(WRITE_COLUMNS[write], row, strict=True))
        for write, rows in stage_rows(changes).items()
        for row in rows
    ]


def test_staging_merges_repeated_rows_as_applying_them_in_order_would() -> None:
    first = RowChange(Write.STEP_OUTPUT, ("s", "out", "av-1", 0))
    second = RowChange(Write.STEP_OUTPUT, ("s", "out", "av-2", 0))
    other = RowChange(Write.STEP_OUTPUT, ("s", "log", "av-3", 1))
    assert staged([first, other, second]) == [
        {"step_run_id": "s", "key": "out", "artifact_version_id": "av-2", "position": 0},
        {"step_run_id": "s", "key": "log", "artifact_version_id": "av-3", "position": 1},
    ]


def test_staging_keeps_the_first_of_an_immutable_artifact_version() -> None:
    [kept] = staged(fold(artifact(uri="/first")) + fold(artifact(uri="/second")))
    assert kept["uri"] == "/first"


def test_staging_groups_rows_by_write() -> None:
    events = [
        RunStarted(run_id="r", run_name="n", pipeline_name="p", started_at=T0),
        RunFinished(run_id="r", status="completed", duration_s=1.0),
    ]
    assert list(stage_rows(fold_all(events))) == [Write.RUN_STARTED, Write.RUN_FINISHED]
