"""The projector's own CPU per event: decode + fold, and staging rows for COPY.

    python benchmarks/projector_cpu.py [--runs 4000] [--repeat 5]

No servers: realistic runs (run.started, per step: step.started, artifact.materialized,
step.finished; run.finished) are encoded, then folded in batches of 4,000 as the
projector folds them (``fold_batch``) and staged as it stages them (``stage_rows`` +
``copy_records``), with the cyclic GC off as the projector has it nearly off. Prints the
best of ``--repeat`` next to the 50 us per event that the 20,000 events/s ingest target
leaves for everything the projector does on one core.
"""

from __future__ import annotations

import argparse
import gc
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import cairn_events as ev
from cairn_projections import copy_records, stage_rows
from cairn_services.projector.batch import Batch, fold_batch

BATCH = 4000
BUDGET_US = 1e6 / 20_000
STEPS_PER_RUN = 5


class _Msg:
    """What the projector reads of a JetStream message: data, subject, ack subject."""

    __slots__ = ("data", "headers", "reply", "subject")

    def __init__(self, event: ev.Event, seq: int) -> None:
        self.data, self.subject, self.headers = ev.encode(event), ev.subject_of(event), None
        self.reply = f"$JS.ACK.CAIRN.bench.1.{seq}.1.0.0"


def _events(runs: int) -> Iterator[ev.Event]:
    now = datetime.now(UTC)
    for r in range(runs):
        run = str(uuid.uuid4())
        yield ev.RunStarted(
            run_id=run, run_name=f"r{r}", pipeline_name="p", started_at=now, parameters={"lr": 0.1}
        )
        previous: str | None = None
        for s in range(STEPS_PER_RUN):
            step_run, version = str(uuid.uuid4()), str(uuid.uuid4())
            inputs = {"x": previous} if previous else {}
            yield ev.StepStarted(
                run_id=run, step_run_id=step_run, step_name=f"s{s}", function="m:f", inputs=inputs
            )
            yield ev.ArtifactMaterialized(
                artifact_version_id=version,
                name=f"p::s{s}::output",
                version=str(r + 1),
                numeric_count=r + 1,
                claim_order=r + 1,
                uri=f"/store/{version}",
                artifact_type="data",
                data_type="builtins.int",
                materializer="cairn.materializers.BuiltInMaterializer",
                content_hash="sha256:00",
                size=3,
                producer_run_id=run,
                producer_step_run_id=step_run,
                output_name="output",
            )
            yield ev.StepFinished(
                run_id=run,
                step_run_id=step_run,
                step_name=f"s{s}",
                duration_s=0.1,
                outputs={"output": version},
            )
            previous = version
        yield ev.RunFinished(run_id=run, status=ev.RunOutcome.COMPLETED, duration_s=1.0)


def _stage(batch: Batch) -> None:
    for rows in stage_rows(row for p in batch.projected for row in p.rows).values():
        copy_records(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    msgs = [_Msg(event, seq) for seq, event in enumerate(_events(args.runs), start=1)]
    chunks = [(msgs[i : i + BATCH], i) for i in range(0, len(msgs), BATCH)]
    gc.disable()
    fold_us = stage_us = float("inf")
    for _ in range(args.repeat):
        started = time.perf_counter()
        batches = [fold_batch(chunk, after) for chunk, after in chunks]
        folded = time.perf_counter()
        for batch in batches:
            _stage(batch)
        staged = time.perf_counter()
        fold_us = min(fold_us, (folded - started) / len(msgs) * 1e6)
        stage_us = min(stage_us, (staged - folded) / len(msgs) * 1e6)
        del batches
    gc.enable()
    print(f"{len(msgs):,} events, batches of {BATCH:,}, best of {args.repeat}")
    print(f"  decode + fold (fold_batch)      : {fold_us:6.2f} us/event")
    print(f"  staging (rows -> COPY records)  : {stage_us:6.2f} us/event")
    print(f"  20k events/s target leaves      : {BUDGET_US:6.2f} us/event for all projector work")


if __name__ == "__main__":
    main()
