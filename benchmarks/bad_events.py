"""Projector catch-up with a few events only Postgres rejects among many clean ones.

    python benchmarks/bad_events.py [--events 40000] [--bad 10 100] [--batch-size 4000] [--repeat 1]

Starts its own nats-server and Postgres in temp dirs (or uses
CAIRN_BENCH_NATS_URL / CAIRN_BENCH_DATABASE_URL). For each scenario the event
stream is emptied and filled with the same ``--events`` realistic events
(runs of steps making artifacts, from ingest.py) plus ``bad`` events that pass
every check before Postgres: a second ``artifact.materialized`` for a name and
version that already exist, with another artifact version id, on its correct
claim subject, a little after the original (sometimes in the same batch,
sometimes in a later one), spread over the stream. Only the unique constraint
on (name, version) refuses them. A fresh projector (new name and schema) in
its own process then catches up; the figure is the time from its process
being up (start-up, migrations and consumer included) until its checkpoint
reaches the last event; with ``--repeat`` the median of that many catch-ups
(figures move by about 20% between runs here). Before bisection, when a
rejected batch was re-applied one event per savepoint, 10 bad events among
40,000 took 53-58 s and 100 took 60-82 s, against 2.1-2.5 s clean.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import cairn_events as ev
import msgspec
import nats
import structlog
from _servers import bench_nats, bench_postgres
from cairn.stream_setup import ensure_dead_letter_stream, ensure_stream
from cairn_projections import quote_ident
from ingest import Message, realistic_events, start_projector, wait_checkpoint
from nats.js.errors import NotFoundError

#: 10 bad events may cost at most this much more than none.
TARGET_RATIO = 2.0
#: How far after its original a clashing version lands, in events (batches are 4,000).
MAX_CLASH_DISTANCE = 3000


@dataclass(frozen=True)
class Scenario:
    bad: int
    events: int
    catch_up_s: float  # the median over the repeats
    spread_s: tuple[float, float]  # the fastest and the slowest
    dead_letters: int


def with_clashes(clean: list[Message], bad: int, seed: int = 7) -> list[Message]:
    """``clean`` with ``bad`` clashing versions inserted, each after the version it copies."""
    rng = random.Random(seed)
    versions = [
        i
        for i, m in enumerate(clean)
        if m.subject.startswith(ev.DEFAULT_STREAM.subject(f"{ev.Family.ARTIFACT}."))
    ]
    # originals spread evenly over the stream, so most batches hold at most one clash
    originals = [versions[(2 * j + 1) * len(versions) // (2 * bad)] for j in range(bad)]
    inserts: dict[int, list[Message]] = {}
    for i in originals:
        event = ev.decode(clean[i].data)
        copy = msgspec.structs.replace(event, artifact_version_id=ev.new_id(), event_id=ev.new_id())
        after = min(i + rng.randint(1, MAX_CLASH_DISTANCE), len(clean) - 1)
        inserts.setdefault(after, []).append(
            Message(ev.subject_of(copy), ev.encode(copy), copy.event_id)
        )
    out: list[Message] = []
    for i, message in enumerate(clean):
        out.append(message)
        out += inserts.get(i, [])
    return out


async def refill_stream(nats_url: str, messages: list[Message]) -> int:
    """Empty the event stream, publish ``messages`` (acks awaited); the last stream sequence."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream(publish_async_max_pending=8000)
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(ev.DEFAULT_STREAM.name)
    await ensure_stream(js, ev.DEFAULT_STREAM, fast_ingest=False)
    await ensure_dead_letter_stream(js, ev.DEFAULT_STREAM)
    futures = [
        await js.publish_async(m.subject, m.data, headers={ev.Header.MSG_ID.value: m.msg_id})
        for m in messages
    ]
    await asyncio.gather(*futures)
    last = int((await js.stream_info(ev.DEFAULT_STREAM.name)).state.last_seq)
    await nc.close()
    if last != len(messages):
        raise RuntimeError(f"the stream holds {last} events, expected {len(messages)}")
    return last


async def count_dead_letters(database_url: str, schema: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {quote_ident(schema)}.dead_letters"))
    finally:
        await conn.close()


def catch_up(nats_url: str, database_url: str, last: int, name: str, batch_size: int) -> float:
    """Seconds a fresh projector ``name`` (its own schema) takes to commit through ``last``."""
    proc, stop, ready = start_projector(nats_url, database_url, name, name, batch_size)
    try:
        done, _ = asyncio.run(wait_checkpoint(database_url, name, name, last))
    finally:
        stop.set()
        proc.join()
    return done - ready


def scenario(
    nats_url: str, database_url: str, messages: list[Message], bad: int, args: Any
) -> Scenario:
    """Fill the stream with ``messages``, then time ``args.repeat`` fresh projectors over it."""
    last = asyncio.run(refill_stream(nats_url, messages))
    stamp = int(time.time())
    names = [f"bad_{bad}_{stamp}_{i}" for i in range(args.repeat)]
    times = [catch_up(nats_url, database_url, last, n, args.batch_size) for n in names]
    dead = asyncio.run(count_dead_letters(database_url, names[0]))
    return Scenario(bad, last, statistics.median(times), (min(times), max(times)), dead)


def report(scenarios: list[Scenario], batch_size: int) -> None:
    clean = scenarios[0]
    print(
        f"\nprojector catch-up from a fresh name and schema, batch {batch_size}; "
        f"bad = artifact.materialized reusing an existing name+version"
    )
    print(
        f"{'scenario':<10}{'events':>9}{'dead':>7}{'catch-up s':>12}{'min-max s':>13}"
        f"{'events/s':>10}  vs clean"
    )
    for s in scenarios:
        ratio = s.catch_up_s / clean.catch_up_s
        goal = ""
        if s.bad == 10:
            verdict = "ok" if ratio <= TARGET_RATIO else "MISSED"
            goal = f"  target: with 10 bad within {TARGET_RATIO:.0f}x the clean time, {verdict}"
        label = "clean" if s.bad == 0 else f"{s.bad} bad"
        spread = f"{s.spread_s[0]:.2f}-{s.spread_s[1]:.2f}"
        print(
            f"{label:<10}{s.events:>9,}{s.dead_letters:>7}{s.catch_up_s:>12.2f}{spread:>13}"
            f"{s.events / s.catch_up_s:>10,.0f}  {ratio:.2f}x{goal}"
        )
    wrong = [s for s in scenarios if s.dead_letters != s.bad]
    for s in wrong:
        print(f"WRONG: {s.bad} bad events made {s.dead_letters} dead letters")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--bad", type=int, nargs="*", default=[10, 100])
    parser.add_argument("--batch-size", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=1, help="catch-ups per scenario (median)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    clean = realistic_events(args.events)
    with bench_nats() as nats_url, bench_postgres() as database_url:
        scenarios = [
            scenario(nats_url, database_url, with_clashes(clean, bad), bad, args)
            for bad in [0, *args.bad]
        ]
    report(scenarios, args.batch_size)


if __name__ == "__main__":
    main()
