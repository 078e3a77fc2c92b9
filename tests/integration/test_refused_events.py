"""One bad event never stalls the ones after it: names are checked, refusals are quarantined.

Each test talks to a real nats-server; the ones that need the read models use the
session's projector and API (``cairn_stack``).
"""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import msgspec
import nats
import pytest
from cairn import (
    ArtifactConfig,
    ArtifactNameError,
    ArtifactVersionError,
    Client,
    pipeline,
    step,
)
from cairn.publishing import EventPublisher
from cairn.quarantine import Quarantine
from cairn.spool import SpoolEntry, write_orphan
from cairn_events import (
    DEFAULT_STREAM,
    ArtifactMaterialized,
    RunFinished,
    RunStarted,
    artifact_versions_path,
    decode,
    encode,
    new_id,
    utcnow,
)
from cairn_services.stack import NatsServer
from nats.js.api import StreamConfig

STREAM = DEFAULT_STREAM


#: The publisher's suite: every test here runs with fast-ingest batches and one at a time.
pytestmark = pytest.mark.usefixtures("publish_batches")


BAD_NAMES = {
    "empty": ("", "is empty or blank"),
    "blank": ("   ", "is empty or blank"),
    "dot": (".", "'.' or '..'"),
    "dotdot": ("..", "'.' or '..'"),
    "newline": ("a\nb", "control character '\\n'"),
    "nul": ("a\x00b", "control character '\\x00'"),
    "too long": ("é" * 200, "400 bytes long in UTF-8; the limit is 255 bytes"),
    "3 KB": ("x" * 3000, "3000 bytes long in UTF-8"),
}


@pytest.mark.usefixtures("cairn_stack")
@pytest.mark.parametrize("case", list(BAD_NAMES))
def test_a_bad_artifact_name_fails_its_step_naming_step_output_and_rule(
    case: str, uid: str
) -> None:
    name, rule = BAD_NAMES[case]

    @step
    def produce() -> Annotated[int, name]:
        raise AssertionError("the step body must not run when its output name is invalid")

    @pipeline(name=f"bad_name_{uid}")
    def p() -> None:
        produce()

    started = time.monotonic()
    with pytest.raises(ArtifactNameError) as refused:
        p()
    assert time.monotonic() - started < 10
    message = str(refused.value)
    assert "of output" in message and "in step 'produce'" in message and rule in message
    assert len(message) < 600, "a huge name is shortened in the message"
    stored = Client().get_pipeline_run(Client().list_pipeline_runs(f"bad_name_{uid}")[0].id)
    assert stored.status == "failed" and stored.steps["produce"].status == "failed"


@pytest.mark.usefixtures("cairn_stack")
@pytest.mark.parametrize(
    ("version", "rule"),
    [("", "is empty or blank"), ("v\n1", "control character"), ("v" * 3000, "3000 bytes")],
)
def test_a_bad_explicit_version_fails_its_step(version: str, rule: str, uid: str) -> None:
    @step
    def produce() -> Annotated[int, ArtifactConfig(name=f"versioned_{uid}", version=version)]:
        return 1

    @pipeline(name=f"bad_version_{uid}")
    def p() -> None:
        produce()

    with pytest.raises(ArtifactVersionError, match=rule):
        p()


@pytest.mark.usefixtures("cairn_stack")
def test_a_bad_run_name_is_refused_before_anything_is_recorded(uid: str) -> None:
    @step
    def s() -> int:
        return 1

    @pipeline(name=f"bad_run_name_{uid}", run_name="nightly\r\n{date}")
    def p() -> None:
        s()

    with pytest.raises(ArtifactNameError, match="Run name .* of pipeline .* control character"):
        p()
    assert Client().list_pipeline_runs(f"bad_run_name_{uid}") == []


@pytest.mark.usefixtures("cairn_stack")
def test_slashes_spaces_and_unicode_work_end_to_end(uid: str) -> None:
    name = f"team/{uid}/model v2 — ünïcødé 🚀"
    labelled = f"{uid} ünï/labelled"

    @step
    def produce() -> Annotated[dict[str, int], name]:
        return {"a": 1}

    @step
    def label() -> Annotated[str, ArtifactConfig(name=labelled, version="release/2026 ✓")]:
        return "x"

    @pipeline(name=f"unicode {uid} ✓", run_name=f"run ✓ {uid} {{date}}")
    def p() -> None:
        produce()
        label()

    run = p()
    client = Client()
    assert client.get_artifact_version(name).load() == {"a": 1}
    assert [v.version for v in client.list_artifact_versions(name)] == ["1"]
    assert client.get_artifact_version(labelled, "release/2026 ✓").load() == "x"
    stored = client.get_pipeline_run(run.name)
    assert stored.id == run.id and stored.steps["produce"].outputs[name].version == "1"


# -- the spool left behind by a bad event --------------------------------------------


def _old_run_events(uid: str) -> tuple[str, list[SpoolEntry]]:
    """A finished run as a process that exited before sending it would have spooled it."""
    run_id = new_id()
    started = RunStarted(
        run_id=run_id,
        run_name=f"left-behind-{uid}",
        pipeline_name=f"left_behind_{uid}",
        started_at=utcnow(),
    )
    finished = RunFinished(run_id=run_id, status="completed", duration_s=0.1)
    entries = [
        SpoolEntry(subject=STREAM.subject_of(e), event=msgspec.Raw(encode(e)))
        for e in (started, finished)
    ]
    return run_id, entries


def _claim_for(name: str) -> SpoolEntry:
    template = ArtifactMaterialized(
        artifact_version_id=new_id(),
        name=name,
        version="",
        numeric_count=0,
        uri="/nowhere",
        artifact_type="data",
        data_type="builtins.int",
        materializer="cairn.materializers.builtin.BuiltInMaterializer",
        content_hash="0",
        size=1,
    )
    return SpoolEntry(
        subject=STREAM.subject(artifact_versions_path(name)),
        event=msgspec.Raw(encode(template)),
        claim=True,
    )


ONE_STEP = """
import sys, time
from typing import Annotated
from cairn import ArtifactConfig, pipeline, step

@step
def s() -> Annotated[int, ArtifactConfig(name="after_" + sys.argv[1], version="release")]:
    return 1

@pipeline(name="after_" + sys.argv[1])
def p() -> None:
    s()

t0 = time.monotonic()
run = p()
print("VERSION", run.steps["s"].output.version, "SECONDS", round(time.monotonic() - t0, 2))
"""


@pytest.mark.usefixtures("cairn_stack")
def test_a_spooled_claim_nats_cannot_route_is_quarantined_and_the_rest_goes_on(uid: str) -> None:
    """The issue's case: a claim for the empty name (subject cairn.artifact..*) in an orphan spool."""
    home = Path(os.environ["CAIRN_HOME"])
    run_id, events = _old_run_events(uid)
    write_orphan(home / "spool", [events[0], _claim_for(""), events[1]])

    done = subprocess.run(
        [sys.executable, "-c", ONE_STEP, uid],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    version, seconds = done.stdout.split("VERSION ")[1].split(" SECONDS ")
    assert version == "release" and float(seconds) < 10
    assert "NATS refused artifact.materialized event" in done.stderr
    assert "cairn spool status" in done.stderr
    assert "spool_drain_waiting" not in done.stdout  # refused, not retried

    stored = _wait_for_run(run_id)
    assert stored.status == "completed"  # the events after the bad one reached the read model
    (record,) = Quarantine(home / "spool" / "quarantine").records()
    assert record.entry.claim and "subject" in record.reason

    status = _cli("spool", "status")
    assert record.event_id in status.stdout and "version claim of ''" in status.stdout
    assert _cli("spool", "discard").returncode == 2  # says what to name
    dropped = _cli("spool", "discard", record.event_id, "-y")
    assert dropped.returncode == 0 and "Dropped 1 quarantined" in dropped.stdout
    assert Quarantine(home / "spool" / "quarantine").records() == []


def _wait_for_run(run_id: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            stored = Client().get_pipeline_run(run_id)
            if stored.status != "running" or time.monotonic() > deadline:
                return stored
        except Exception:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn_services.cli", *args],
        env={**os.environ, "COLUMNS": "250", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- refusals from a real server ---------------------------------------------------


@pytest.fixture
def small_stream(tmp_path: Path) -> Iterator[str]:
    """A nats-server whose CAIRN stream takes messages of at most 2 KB."""
    with NatsServer(tmp_path / "nats") as server:

        async def create() -> None:
            nc = await nats.connect(server.url)
            await nc.jetstream().add_stream(
                StreamConfig(name=STREAM.name, subjects=STREAM.subjects, max_msg_size=2048)
            )
            await nc.close()

        asyncio.run(create())
        yield server.url


def _stream_messages(url: str) -> list[Any]:
    async def read() -> list[Any]:
        nc = await nats.connect(url)
        js = nc.jetstream()
        info = await js.stream_info(STREAM.name)
        events = [
            decode((await js.get_msg(STREAM.name, seq)).data)
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
        await nc.close()
        return events

    return asyncio.run(read())


def test_an_event_the_stream_refuses_is_quarantined_and_retried_once_the_cause_is_fixed(
    small_stream: str, tmp_path: Path, publish_batches: bool
) -> None:
    publisher = EventPublisher(
        small_stream, tmp_path / "spool", fast_ingest=publish_batches
    ).start()
    try:
        small = RunStarted(run_id=new_id(), run_name="r", pipeline_name="p", started_at=utcnow())
        big = RunStarted(
            run_id=new_id(),
            run_name="big",
            pipeline_name="p",
            started_at=utcnow(),
            parameters={"blob": "x" * 4000},
        )
        after = RunFinished(run_id=small.run_id, status="completed", duration_s=1.0)
        for event in (small, big, after):
            publisher.publish(event)
        started = time.monotonic()
        assert publisher.flush(10), "a refused event must not hold up the flush"
        assert time.monotonic() - started < 5
        assert publisher.refused == 1
    finally:
        publisher.close()

    stored = [e.event_id for e in _stream_messages(small_stream)]
    assert stored == [small.event_id, after.event_id]
    (record,) = Quarantine(tmp_path / "spool" / "quarantine").records()
    assert record.event_id == big.event_id and record.event_type == "run.started"
    assert "JetStream refused it" in record.reason and "size" in record.reason.lower()

    env = {"CAIRN_NATS_URL": small_stream, "CAIRN_HOME": str(tmp_path)}
    listed = _cli("spool", "status", env={**env, "CAIRN_HOME": str(tmp_path)})
    assert big.event_id in listed.stdout and "run.started" in listed.stdout
    # the same cause again: refused again, still quarantined, exit 1 saying so
    env["CAIRN_ARTIFACT_STORE"] = str(tmp_path / "store")
    again = _cli("spool", "retry", env=env)
    assert again.returncode == 1 and "refused again" in again.stdout
    assert [r.event_id for r in Quarantine(tmp_path / "spool" / "quarantine").records()] == [
        big.event_id
    ]

    async def allow_bigger() -> None:
        nc = await nats.connect(small_stream)
        js = nc.jetstream()
        config = (await js.stream_info(STREAM.name)).config
        config.max_msg_size = 1024 * 1024
        await js.update_stream(config)
        await nc.close()

    asyncio.run(allow_bigger())
    fixed = _cli("spool", "retry", big.event_id, env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "Sent 1 of 1 events" in fixed.stdout
    assert big.event_id in [e.event_id for e in _stream_messages(small_stream)]
    assert Quarantine(tmp_path / "spool" / "quarantine").records() == []


def test_a_connection_the_server_closes_for_a_protocol_error_is_opened_again(
    nats_url: str, tmp_path: Path, publish_batches: bool
) -> None:
    """nats-py closes a connection for good on -ERR; the publisher opens a new one and goes on."""
    publisher = EventPublisher(nats_url, tmp_path / "spool", fast_ingest=publish_batches).start()
    try:
        first = RunStarted(run_id=new_id(), run_name="a", pipeline_name="p", started_at=utcnow())
        publisher.publish(first)
        assert publisher.flush(10)
        first_seq = publisher.last_seq

        async def break_it() -> None:  # what a 3 KB name used to send: a too-long control line
            nc = publisher._link.nc
            nc._transport.write(b"PUB " + b"x" * 5000 + b" 1\r\nx\r\n")
            await nc._transport.drain()

        asyncio.run_coroutine_threadsafe(break_it(), publisher._loop).result(5)
        deadline = time.monotonic() + 5
        outage = publisher._outage
        while outage.reopener is None and time.monotonic() < deadline:  # the server hangs up
            time.sleep(0.02)
        assert outage.reopener is not None, "nats-py closed the connection for good"
        second = RunFinished(run_id=first.run_id, status="completed", duration_s=1.0)
        publisher.publish(second)
        assert publisher.flush(15), "the publisher must reconnect and deliver"
        assert publisher.connected and publisher.last_seq > first_seq
        second_seq = publisher.last_seq
    finally:
        publisher.close()

    async def read(seq: int) -> str:
        nc = await nats.connect(nats_url)
        event = decode((await nc.jetstream().get_msg(STREAM.name, seq)).data)
        await nc.close()
        return str(event.event_id)

    assert asyncio.run(read(first_seq)) == first.event_id
    assert asyncio.run(read(second_seq)) == second.event_id


def test_spool_cli_lists_orphaned_spools_and_retries_or_discards_them(
    nats_url: str, tmp_path: Path
) -> None:
    env = {
        "CAIRN_NATS_URL": nats_url,
        "CAIRN_HOME": str(tmp_path),
        "CAIRN_ARTIFACT_STORE": str(tmp_path / "store"),
    }
    assert "every event was sent" in _cli("spool", "status", env=env).stdout
    _, events = _old_run_events("cli")
    orphan = write_orphan(tmp_path / "spool", events)
    listed = _cli("spool", "status", env=env)
    assert orphan.name in listed.stdout and "orphaned" in listed.stdout
    sent = _cli("spool", "retry", env=env)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "Sent 2 of 2 events" in sent.stdout
    assert "every event was sent" in _cli("spool", "status", env=env).stdout

    write_orphan(tmp_path / "spool", events)
    assert _cli("spool", "discard", "--orphans", env=env).returncode == 1  # asked, and said no
    dropped = _cli("spool", "discard", "--orphans", "-y", env=env)
    assert "Dropped 0 quarantined and 2 orphaned spooled event(s)" in dropped.stdout
    assert "every event was sent" in _cli("spool", "status", env=env).stdout
