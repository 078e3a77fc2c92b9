"""The projector's own CPU per event: decode + fold, and staging rows for COPY.

    python benchmarks/projector_cpu.py [--events 64000] [--repeat 5]

No servers: the realistic runs ``benchmarks/ingest.py`` publishes are folded in
batches of 4,000 as the projector folds them (``fold_batch``) and staged as it stages them (``stage_rows`` +
``copy_records``), with the cyclic GC off as the projector has it nearly off. Prints the
best of ``--repeat`` next to the 50 us per event that the 20,000 events/s ingest target
leaves for everything the projector does on one core.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

from cairn_projections import copy_records, stage_rows
from cairn_services.projector.batch import Batch, fold_batch

sys.path.insert(0, os.path.dirname(__file__))
from ingest import Message, realistic_events  # the same runs the ingest benchmark sends

BATCH = 4000
BUDGET_US = 1e6 / 20_000


class _Msg:
    """What the projector reads of a JetStream message: data, subject, ack subject."""

    __slots__ = ("data", "headers", "reply", "subject")

    def __init__(self, message: Message, seq: int) -> None:
        self.data, self.subject, self.headers = message.data, message.subject, None
        self.reply = f"$JS.ACK.CAIRN.bench.1.{seq}.1.0.0"


def _stage(batch: Batch) -> None:
    for rows in stage_rows(row for p in batch.projected for row in p.rows).values():
        copy_records(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=64_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    msgs = [_Msg(m, seq) for seq, m in enumerate(realistic_events(args.events), start=1)]
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
