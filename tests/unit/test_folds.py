"""Folds: each event type turns into the rows a user's queries are built from."""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from cairn_events import (
    DEFAULT_STREAM,
    Event,
    RunFinished,
    RunOutcome,
    RunStarted,
    StepFailed,
    StepFinished,
    StepStarted,
    artifact_version_path,
    encode,
    run_path,
    step_path,
    subject_of,
)
from cairn_projections import (
    ARTIFACT_VERSIONS,
    RUNS,
    FoldError,
    Folds,
    ReadModel,
    Row,
    fold,
    fold_all,
    stage_rows,
)
from cairn_projections.artifact_versions import ArtifactVersionRow, fold_artifact_materialized
from cairn_projections.runs import (
    RunFinishedRow,
    RunStartedRow,
    fold_run_finished,
    fold_run_started,
)
from cairn_projections.steps import (
    StepInputRow,
    StepOutputRow,
    StepStartedRow,
    fold_step_failed,
    fold_step_finished,
    fold_step_started,
)
from cairn_services.projector.batch import fold_batch
from cairn_services.projector.writer import isolate_rejected
from factories import T0, artifact_version
from msgspec.structs import asdict
from nats.aio.msg import Msg


def columns(row: Row) -> dict[str, Any]:
    """A row as {column: value}."""
    return asdict(row)


def artifact(**overrides: Any) -> Any:
    """A version made by a run's trainer step, tagged ``prod``."""
    made_by = {
        "producer_run_id": "run-1",
        "producer_step_run_id": "step-1",
        "output_name": "output",
    }
    return artifact_version(**{**made_by, "tags": ["prod"], **overrides})


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
    assert type(change) is RunStartedRow
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
    assert type(change) is RunFinishedRow
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
    assert type(step) is StepStartedRow
    assert columns(step)["function"] == "pipelines.train.trainer"
    assert columns(step)["started_at"] == T0
    assert edges == [
        StepInputRow(step_run_id="step-2", key="data", artifact_version_id="av-0", position=0),
        StepInputRow(step_run_id="step-2", key="labels", artifact_version_id="av-9", position=1),
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
    assert edge == StepOutputRow(
        step_run_id="step-2", key="output", artifact_version_id="av-1", position=0
    )


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
    [change] = fold_artifact_materialized(artifact(occurred_at=T0))
    row = columns(change)
    assert type(change) is ArtifactVersionRow
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
    assert [type(row) for row in fold_all(events)] == [RunStartedRow, RunFinishedRow]


def staged(rows: list[Row]) -> list[dict[str, Any]]:
    return [columns(row) for of_type in stage_rows(rows).values() for row in of_type]


def test_staging_merges_repeated_rows_as_applying_them_in_order_would() -> None:
    first = StepOutputRow(step_run_id="s", key="out", artifact_version_id="av-1", position=0)
    second = StepOutputRow(step_run_id="s", key="out", artifact_version_id="av-2", position=0)
    other = StepOutputRow(step_run_id="s", key="log", artifact_version_id="av-3", position=1)
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
    assert list(stage_rows(fold_all(events))) == [RunStartedRow, RunFinishedRow]


# -- What the projector makes of a fetched batch: subjects, unstorable text, isolation ----------


def message(event: Any, *, subject: str | None = None, seq: int = 1, data: bytes = b"") -> Msg:
    """A JetStream delivery of ``event`` (on its own subject unless told), at stream ``seq``."""
    return Msg(
        _client=None,  # type: ignore[arg-type]  # folding never talks to NATS
        subject=subject if subject is not None else subject_of(event),
        reply=f"$JS.ACK.CAIRN.cairn-projector-t.1.{seq}.{seq}.0.0",
        data=data or encode(event),
    )


def on(path: str) -> str:
    """The subject for ``path`` on the default stream."""
    return DEFAULT_STREAM.subject(path)


def run_and_step() -> list[Event]:
    run = RunStarted(run_id="run-1", run_name="training-1", pipeline_name="p", started_at=T0)
    step = StepStarted(run_id="run-1", step_run_id="step-1", step_name="trainer", function="f")
    return [run, step, artifact(), RunFinished(run_id="run-1", status="completed", duration_s=1.0)]


def test_every_event_type_is_accepted_on_its_own_subject() -> None:
    events = run_and_step()
    batch = fold_batch([message(e, seq=i + 1) for i, e in enumerate(events)], after_seq=0)
    assert batch.dead == []
    assert [p.seq for p in batch.projected] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("event", "subject"),
    [
        # a forged version on an unrelated subject: it must not take the version
        (artifact(version="1", numeric_count=1), on(run_path("run-1"))),
        (artifact(version="1", numeric_count=1), "cairn.anything.at.all"),
        # the name's prefix, but another version's claim subject
        (
            artifact(version="1", numeric_count=2),
            on(artifact_version_path(artifact().name, "2")),
        ),
        (artifact(), on(artifact_version_path("another::name", "2"))),
        (
            StepStarted(run_id="run-1", step_run_id="s", step_name="s", function="f"),
            on(step_path("run-2")),
        ),
        (
            RunStarted(run_id="run-1", run_name="n", pipeline_name="p", started_at=T0),
            on(step_path("run-1")),
        ),
    ],
)
def test_an_event_on_a_subject_not_its_own_is_a_dead_letter_saying_where_it_belongs(
    event: Any, subject: str
) -> None:
    batch = fold_batch([message(event, subject=subject, seq=7)], after_seq=0)
    assert batch.projected == []
    [dead] = batch.dead
    assert (dead.seq, dead.subject, dead.data) == (7, subject, encode(event))
    assert f"misrouted {event.tag} {event.event_id}" in dead.reason
    assert f"arrived on subject {subject!r}" in dead.reason
    assert f"belongs on {subject_of(event)!r}" in dead.reason
    assert batch.last_seq == 7


def test_an_event_holding_nul_is_a_dead_letter_before_it_reaches_postgres() -> None:
    nul = StepFailed(
        run_id="run-1",
        step_run_id="step-1",
        step_name="trainer",
        duration_s=0.1,
        error_type="ValueError",
        error_message="bad byte \x00 here",
    )
    batch = fold_batch([message(nul, seq=3)], after_seq=0)
    assert batch.projected == []
    [dead] = batch.dead
    assert "\\u0000 (NUL)" in dead.reason and "before writing" in dead.reason


@pytest.mark.parametrize("text", ["a\\u0000b", "\\\\u0000", "C:\\u0000"])
def test_the_text_backslash_u0000_is_not_nul_and_is_projected(text: str) -> None:
    event = StepFailed(
        run_id="run-1",
        step_run_id="step-1",
        step_name="trainer",
        duration_s=0.1,
        error_type="ValueError",
        error_message=text,
        traceback=f'line 3: s.replace("{text}", "")',
    )
    assert b"\\u0000" in encode(event)  # the cheap test fires; the exact one clears it
    batch = fold_batch([message(event)], after_seq=0)
    assert batch.dead == []
    assert columns(batch.projected[0].rows[0])["error_message"] == text


def test_nul_next_to_escaped_backslashes_is_still_nul() -> None:
    event = RunStarted(run_id="r", run_name="\\\x00", pipeline_name="p", started_at=T0)
    assert b'"\\\\\\u0000"' in encode(event)  # JSON: backslash escaped, then NUL escaped
    [dead] = fold_batch([message(event)], after_seq=0).dead
    assert "NUL" in dead.reason


def test_a_projector_of_some_read_models_skips_the_events_none_of_them_folds() -> None:
    events = run_and_step()  # run.started, step.started, artifact.materialized, run.finished
    msgs = [message(e, seq=i + 1) for i, e in enumerate(events)]
    msgs.append(message(events[0], seq=5, data=b"not json"))
    batch = fold_batch(msgs, after_seq=0, folds=Folds([ARTIFACT_VERSIONS]))
    [version] = batch.projected
    assert version.seq == 3 and [type(row) for row in version.rows] == [ArtifactVersionRow]
    assert batch.ignored == 3  # not dead letters: another projector's business
    assert [d.seq for d in batch.dead] == [5]  # what cannot be read is still a dead letter
    assert (batch.size, batch.last_seq) == (5, 5)  # the checkpoint moves past all of them
    with pytest.raises(FoldError, match="no fold for event type RunStarted"):
        Folds([ARTIFACT_VERSIONS])(events[0])


def test_two_read_models_folding_one_event_type_both_get_their_rows() -> None:
    audit = ReadModel("audit")

    @audit.folds(RunStarted)
    def count_run(event: RunStarted) -> list[Row]:
        return [
            RunFinishedRow(
                id=event.run_id,
                outcome=RunOutcome.COMPLETED,
                finished_at=T0,
                duration_s=0.0,
                error=None,
                failed_step=None,
            )
        ]

    with pytest.raises(ValueError, match="folds RunStarted twice"):
        audit.folds(RunStarted)(count_run)
    run = RunStarted(run_id="r", run_name="n", pipeline_name="p", started_at=T0)
    assert [type(row) for row in Folds([RUNS, audit])(run)] == [RunStartedRow, RunFinishedRow]


class Ledger:
    """Stands in for a unique (name, version) constraint: a key is taken once, all or nothing.

    ``apply`` is what the writer passes to isolate_rejected, minus Postgres; it
    records every call, so tests can count the savepoints a batch would cost.
    """

    def __init__(self) -> None:
        self.taken: dict[str, str] = {}
        self.applied: list[tuple[str, str]] = []
        self.calls = 0

    async def apply(self, chunk: Sequence[tuple[str, str]]) -> ValueError | None:
        self.calls += 1
        incoming: dict[str, str] = {}
        for item_id, key in chunk:
            if (holder := self.taken.get(key, incoming.get(key))) is not None:
                return ValueError(f"{key} is taken by {holder}")
            incoming[key] = item_id
        self.taken.update(incoming)
        self.applied += chunk
        return None


def items_with_clashes(n: int, k: int, seed: int) -> tuple[list[tuple[str, str]], list[str]]:
    """``n`` (id, key) items, ``k`` of them reusing the key of an earlier accepted one; their ids."""
    rng = random.Random(seed)
    items = [(f"id-{i}", f"key-{i}") for i in range(n)]
    bad = sorted(rng.sample(range(1, n), k))
    accepted = sorted(set(range(n)) - set(bad))
    for i in bad:
        earlier = accepted[rng.randrange(bisect.bisect_left(accepted, i))]
        items[i] = (f"id-{i}", f"key-{earlier}")
    return items, [f"id-{i}" for i in bad]


@pytest.mark.parametrize(
    ("n", "k"), [(2, 1), (7, 3), (100, 1), (4000, 1), (4000, 10), (4000, 100), (4000, 3999)]
)
async def test_isolation_rejects_exactly_the_clashes_keeps_stream_order_in_k_log_n_applies(
    n: int, k: int
) -> None:
    items, bad = items_with_clashes(n, k, seed=n * 31 + k)
    ledger = Ledger()
    isolated = await isolate_rejected(items, ledger.apply, known_rejected=True)

    assert [item_id for (item_id, _), _ in isolated.rejected] == bad
    assert all(isinstance(exc, ValueError) for _, exc in isolated.rejected)
    rejected = set(bad)
    assert ledger.applied == [item for item in items if item[0] not in rejected]  # stream order
    assert isolated.applies == ledger.calls
    assert ledger.calls <= 2 * k * max(1, math.ceil(math.log2(n))) + 1
    if n >= 1000 and k <= 10:
        assert ledger.calls < n // 10  # one by one would take n


async def test_of_two_conflicting_items_the_later_is_rejected_wherever_they_fall() -> None:
    for gap in (1, 2, 17, 500):
        items = [(f"id-{i}", f"key-{i}") for i in range(1000)]
        items[300 + gap] = ("late", "key-300")
        ledger = Ledger()
        isolated = await isolate_rejected(items, ledger.apply, known_rejected=True)
        assert [item for item, _ in isolated.rejected] == [("late", "key-300")]
        assert ledger.taken["key-300"] == "id-300"


async def test_a_clean_batch_costs_one_apply_and_an_empty_one_none() -> None:
    ledger = Ledger()
    items = [(f"id-{i}", f"key-{i}") for i in range(50)]
    assert (await isolate_rejected(items, ledger.apply)).rejected == []
    assert ledger.calls == 1 and ledger.applied == items
    assert (await isolate_rejected([], ledger.apply, known_rejected=True)).applies == 0


async def test_isolation_lets_a_failure_that_is_not_a_rejection_propagate() -> None:
    async def lost(chunk: Sequence[int]) -> ValueError | None:
        if len(chunk) < 4:
            raise ConnectionResetError("Postgres went away")
        return ValueError("rejected")

    with pytest.raises(ConnectionResetError, match="went away"):
        await isolate_rejected(list(range(16)), lost)


def test_cache_facts_that_cannot_be_projected_are_refused() -> None:
    from cairn_events import CacheMissed, CacheStored
    from cairn_projections import FoldError, fold

    stored = CacheStored(
        cache_key="k" * 32,
        lineage_key="l" * 32,
        pipeline_name="p",
        step_name="s",
        run_id="r",
        step_run_id="sr",
        outputs={"output": "av"},
    )
    assert fold(stored)  # a good one folds
    for bad in (
        msgspec.structs.replace(stored, cache_key=""),
        msgspec.structs.replace(stored, cache_key="k" * 500),
        msgspec.structs.replace(stored, outputs={"output": ""}),
        msgspec.structs.replace(stored, step_run_id=""),
    ):
        with pytest.raises(FoldError):
            fold(bad)
    missed = CacheMissed(run_id="r", step_run_id="sr", step_name="s", cache_key="")
    [row] = fold(missed)  # a key that could not be computed: recorded without one
    assert row.cache_key is None  # type: ignore[attr-defined]
