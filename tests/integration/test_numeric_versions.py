"""Explicit version numbers as ZenML takes them, claimed by compare-and-set over the log."""

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import asyncpg
import nats
import pytest
from cairn import ArtifactConfig, ArtifactVersionError, Client, pipeline, step
from cairn_events import DEFAULT_STREAM, ArtifactMaterialized, artifact_versions_path, decode
from factories import replay_into
from nats.js.api import ConsumerConfig, DeliverPolicy

pytestmark = pytest.mark.usefixtures("cairn_stack")

STREAM = DEFAULT_STREAM


def run_with_version(name: str, version: str | int | None, value: int) -> str:
    """Run a one-step pipeline storing ``value`` as ``name`` (at ``version``); its version."""

    @step
    def emit(v: int) -> Annotated[int, ArtifactConfig(name=name, version=version)]:
        return v

    @pipeline(name=f"numbers_{name}", enable_cache=False)
    def numbers(v: int) -> None:
        emit(v)

    return numbers(v=value).steps["emit"].output.version


def test_explicit_44_then_unnumbered_gives_45_and_44_again_is_refused(uid: str) -> None:
    name = f"numbered_{uid}"
    assert run_with_version(name, 44, 1) == "44"
    assert run_with_version(name, None, 2) == "45"
    with pytest.raises(ArtifactVersionError) as refused:
        run_with_version(name, "44", 3)
    assert f"Artifact '{name}' already has version '44'" in str(refused.value)
    assert "leave it out to get the next number (46)" in str(refused.value)
    assert run_with_version(name, 10, 4) == "10"  # a free lower number: the highest stays 45
    assert run_with_version(name, None, 5) == "46"
    assert run_with_version(name, "golden", 6) == "golden"
    assert run_with_version(name, None, 7) == "47"

    client = Client()
    stored = {v.version: v.load() for v in client.list_artifact_versions(name)}
    assert stored == {"44": 1, "45": 2, "10": 4, "46": 5, "golden": 6, "47": 7}  # 3 is nowhere
    assert client.get_artifact_version(name, 44).load() == 1
    assert client.get_artifact_version(name, "10").load() == 4
    assert client.get_artifact_version(name).version == "47"


def test_latest_is_the_newest_claim_as_in_zenml(uid: str) -> None:
    """A label or a lower number claimed after a higher number is "latest" (ZenML: newest)."""
    name = f"latest_{uid}"
    client = Client()
    assert run_with_version(name, 44, 1) == "44"
    assert run_with_version(name, "golden", 2) == "golden"
    assert client.get_artifact_version(name).version == "golden"
    assert client.get_artifact(name).latest.version == "golden"
    assert run_with_version(name, 10, 3) == "10"
    assert client.get_artifact_version(name).load() == 3
    assert run_with_version(name, None, 4) == "45"
    assert client.get_artifact_version(name, "latest").version == "45"
    row = next(a for a in client.list_artifacts() if a.name == name)
    assert row.latest.version == "45"
    assert [v.version for v in client.list_artifact_versions(name)] == ["44", "golden", "10", "45"]


def test_a_first_explicit_number_starts_the_count_there(uid: str) -> None:
    name = f"first_{uid}"
    assert run_with_version(name, "7", 1) == "7"
    assert run_with_version(name, None, 2) == "8"
    assert run_with_version(name, 3, 3) == "3"
    assert [v.version for v in Client().list_artifact_versions(name)] == ["7", "8", "3"]


def test_a_taken_number_fails_the_step_and_records_nothing_new(uid: str) -> None:
    name = f"taken_{uid}"
    assert run_with_version(name, None, 1) == "1"
    with pytest.raises(ArtifactVersionError, match=f"Artifact '{name}' already has version '1'"):
        run_with_version(name, 1, 2)
    assert [(v.version, v.load()) for v in Client().list_artifact_versions(name)] == [("1", 1)]


def test_a_number_written_otherwise_is_refused_before_the_step_runs(uid: str) -> None:
    ran: list[int] = []
    name = f"spelled_{uid}"

    @step
    def emit(v: int) -> Annotated[int, ArtifactConfig(name=name, version=" 44")]:
        ran.append(v)
        return v

    @pipeline(name=f"spelled_{uid}", enable_cache=False)
    def spelled() -> None:
        emit(1)

    with pytest.raises(ArtifactVersionError, match="' 44', which reads as the number 44"):
        spelled()
    assert ran == []


# -- many writers, one name ------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import json
    import sys
    from typing import Annotated
    from cairn import ArtifactConfig, ArtifactVersionError, pipeline, step

    name, runs = sys.argv[1], int(sys.argv[2])

    def store(version, i):
        @step
        def emit(i: int) -> Annotated[int, ArtifactConfig(name=name, version=version)]:
            return i

        @pipeline(name="mixed_" + name, enable_cache=False)
        def writer(i: int) -> None:
            emit(i)

        return writer(i=i).steps["emit"].output.version

    for i in range(runs):
        # every third run asks for a number the others ask for too, some of them
        # in the range the unnumbered claims reach as well
        wanted = str(3 + 4 * i) if i % 3 == 1 else None
        try:
            print("OUTCOME", json.dumps({"wanted": wanted, "got": store(wanted, i)}), flush=True)
        except ArtifactVersionError as exc:
            print("OUTCOME", json.dumps({"wanted": wanted, "refused": str(exc)}), flush=True)
    """
)

PROCESSES, RUNS = 6, 18


@pytest.fixture(scope="module")
def mixed_writers(cairn_stack: Any) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Six processes claiming one name, mixing explicit numbers and unnumbered claims."""
    name = f"mixed_{uuid.uuid4().hex[:8]}"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, name, str(RUNS)],
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    outcomes = []
    for writer in writers:
        out, err = writer.communicate(timeout=240)
        assert writer.returncode == 0, err
        lines = [line for line in out.splitlines() if line.startswith("OUTCOME ")]
        outcomes += [json.loads(line.removeprefix("OUTCOME ")) for line in lines]
    assert len(outcomes) == PROCESSES * RUNS
    yield name, outcomes


def test_concurrent_writers_mixing_numbers_never_share_one(
    mixed_writers: tuple[str, list[dict[str, Any]]],
) -> None:
    name, outcomes = mixed_writers
    got = [o["got"] for o in outcomes if "got" in o]
    assert len(got) == len(set(got)), "two writers were given the same version"
    for o in outcomes:
        if o["wanted"] is not None and "got" in o:
            assert o["got"] == o["wanted"]
    refused = [o for o in outcomes if "refused" in o]
    assert refused, "no explicit number was contended: the test proves nothing"
    for o in refused:
        assert f"Artifact '{name}' already has version '{o['wanted']}'" in o["refused"]
        assert o["wanted"] in got  # refused because someone holds it, and they do
    wanted = {o["wanted"] for o in outcomes if o["wanted"] is not None}
    assert wanted <= set(got)  # every number asked for was taken by exactly one writer

    projected = _versions_when_projected(name, len(got))
    assert sorted(projected, key=int) == sorted(got, key=int)  # nothing lost, no duplicate


async def test_the_log_shows_each_unnumbered_claim_one_above_the_highest_before_it(
    mixed_writers: tuple[str, list[dict[str, Any]]], nats_url: str
) -> None:
    name, outcomes = mixed_writers
    explicit = {o["got"] for o in outcomes if o["wanted"] is not None and "got" in o}
    events = await _versions_in_log_order(nats_url, name)
    assert len(events) == sum("got" in o for o in outcomes)
    highest = 0
    for event in events:
        number = int(event.version)
        if event.version not in explicit:
            assert number == highest + 1, f"unnumbered {number} after highest {highest}"
        highest = max(highest, number)
        assert event.numeric_count == highest


async def test_a_replay_into_a_new_database_gives_the_same_numbers(
    mixed_writers: tuple[str, list[dict[str, Any]]],
    nats_url: str,
    database_url: str,
    fresh_database: str,
) -> None:
    name, outcomes = mixed_writers
    stored = sum("got" in o for o in outcomes)
    assert len(await asyncio.to_thread(_versions_when_projected, name, stored)) == stored
    await replay_into(nats_url, fresh_database)
    query = (
        "SELECT id, version, numeric_version, numeric_count FROM artifact_versions "
        "WHERE name = $1 ORDER BY id"
    )
    replayed, live = (
        await _fetch(fresh_database, query, name),
        await _fetch(database_url, query, name),
    )
    assert replayed and replayed == live


def _versions_when_projected(name: str, expected: int) -> list[str]:
    client = Client()
    deadline = time.monotonic() + 60
    while True:
        found = [v.version for v in client.list_artifact_versions(name)]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


async def _versions_in_log_order(nats_url: str, name: str) -> list[ArtifactMaterialized]:
    """Every stored version event of ``name``, in stream order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            STREAM.subject(artifact_versions_path(name)),
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30),
            stream=STREAM.name,
        )
        pending = (await sub.consumer_info()).num_pending
        events: list[ArtifactMaterialized] = []
        while len(events) < pending:
            batch = await sub.fetch(min(100, pending - len(events)), timeout=10)
            events += [decode(msg.data) for msg in batch]
        await sub.unsubscribe()
        return events
    finally:
        await asyncio.wait_for(nc.close(), timeout=10)


async def _fetch(dsn: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()
