"""ZenML's Client calls, unchanged, on real runs read back through the real stack.

Ids are uuid7 strings: two made close together share a long prefix, which is how the
ambiguous-prefix cases are set up.
"""

import os
import socket
import uuid
from pathlib import Path
from typing import Annotated

import cairn.client
import cairn.tracking
import pytest
from cairn import AmbiguousError, Client, NotFoundError, StackUnavailableError, pipeline, step
from cairn.models import Artifact, PipelineResponse, RecordedPipeline
from cairn.settings import StackRecord, write_stack
from cairn_projections import ids
from cairn_services.stack import free_port

pytestmark = pytest.mark.usefixtures("cairn_stack")


def common_prefix(a: str, b: str) -> str:
    return os.path.commonprefix([a, b])


def two_runs(uid: str, fail_second: bool = False) -> tuple[str, str, str]:
    """Two runs of pipeline ``parity_<uid>``, each storing a version of ``parity_av_<uid>``."""

    @step
    def make(n: int) -> Annotated[int, f"parity_av_{uid}"]:
        if n == 2 and fail_second:
            raise ValueError("second run fails")
        return n

    @pipeline(name=f"parity_{uid}", enable_cache=False)
    def p(n: int) -> None:
        make(n)

    first = p(1).id
    if fail_second:
        with pytest.raises(ValueError, match="second run fails"):
            p(2)
        second = Client().list_pipeline_runs(pipeline_name=f"parity_{uid}")[0].id
    else:
        second = p(2).id
    return f"parity_{uid}", first, second


def test_get_pipeline_run_takes_an_id_a_name_or_an_id_prefix(uid: str) -> None:
    _, first, second = two_runs(uid)
    client = Client()
    run = client.get_pipeline_run(name_id_or_prefix=first)
    assert run.id == first and run.steps["make"].output.load() == 1
    assert client.get_pipeline_run(first).id == first  # positional, as before
    assert client.get_pipeline_run(name_or_id=first).id == first  # the older keyword
    assert client.get_pipeline_run(uuid.UUID(first)).id == first
    assert client.get_pipeline_run(first.upper()).id == first
    assert client.get_pipeline_run(run.name).id == first

    shared = common_prefix(first, second)
    assert len(shared) >= ids.MIN_ID_PREFIX  # made within a second of each other
    assert client.get_pipeline_run(first[: len(shared) + 1]).id == first
    assert client.get_pipeline_run(second[: len(shared) + 1]).id == second
    with pytest.raises(AmbiguousError) as ambiguous:
        client.get_pipeline_run(shared)
    message = str(ambiguous.value)
    assert message.startswith(f"'{shared}' is no name, and the ids of 2 pipeline runs start")
    assert first in message and second in message and "Give more characters" in message
    assert isinstance(ambiguous.value, KeyError)  # as ZenML's ZenKeyError

    unknown = str(uuid.uuid4())
    with pytest.raises(NotFoundError, match=f"No pipeline run has id '{unknown}'"):
        client.get_pipeline_run(unknown)
    with pytest.raises(TypeError, match="get_pipeline_run\\(\\) takes one name or id"):
        client.get_pipeline_run(first, name_or_id=first)
    with pytest.raises(NotFoundError, match="an id prefix needs at least 4 characters"):
        client.get_pipeline_run(first[:3])
    with pytest.raises(NotFoundError, match="an id prefix needs at least 4 characters"):
        client.get_artifact_version(first[:3])


def test_get_artifact_version_takes_zenml_keywords_ids_and_prefixes(uid: str) -> None:
    name, _, _ = two_runs(uid)
    client = Client()
    latest = client.get_artifact_version(name_id_or_prefix=f"parity_av_{uid}")
    one = client.get_artifact_version(f"parity_av_{uid}", version=1)
    assert (latest.version, one.version, latest.load(), one.load()) == ("2", "1", 2, 1)
    assert client.get_artifact_version(name_or_id=f"parity_av_{uid}", version="1") == one
    assert client.get_artifact_version(one.id) == one
    with pytest.warns(UserWarning, match="so version= was ignored, as ZenML ignores it"):
        assert client.get_artifact_version(uuid.UUID(one.id), version=2) == one  # an id wins
    assert client.load_artifact(name_id_or_prefix=one.id) == 1

    shared = common_prefix(one.id, latest.id)
    assert client.get_artifact_version(latest.id[: len(shared) + 1]) == latest
    with pytest.raises(AmbiguousError) as ambiguous:
        client.get_artifact_version(shared)
    assert f"parity_av_{uid} version 1 ({one.id})" in str(ambiguous.value)
    assert f"parity_av_{uid} version 2 ({latest.id})" in str(ambiguous.value)

    unknown = str(uuid.uuid4())
    with pytest.raises(NotFoundError) as missing:
        client.get_artifact_version(unknown)
    assert str(missing.value).startswith(f"No artifact version has id '{unknown}'")
    with pytest.raises(NotFoundError, match=f"No artifact named 'parity_av_{uid}x'"):
        client.get_artifact_version(f"parity_av_{uid}x")
    with pytest.raises(NotFoundError, match="has no version '9'; versions: 1, 2"):
        client.get_artifact_version(f"parity_av_{uid}", version=9)
    assert client.get_pipeline_run(one.producer_run_id or "").pipeline_name == name


def test_names_that_look_like_ids_are_found_by_name(uid: str) -> None:
    like_a_prefix = uuid.uuid4().hex[:8]  # hex: could be an id prefix, is a name here
    like_an_id = str(uuid.uuid4())

    @step
    def make() -> tuple[Annotated[int, like_a_prefix], Annotated[int, like_an_id]]:
        return 1, 2

    @pipeline(name=like_a_prefix, run_name=like_an_id, enable_cache=False)
    def p() -> None:
        make()

    run_id = p().id
    client = Client()
    assert client.get_artifact_version(like_a_prefix).load() == 1
    assert client.get_artifact_version(like_an_id).load() == 2  # no version has that id
    assert client.get_pipeline_run(like_an_id).id == run_id  # no run has that id
    assert client.get_pipeline(like_a_prefix).runs[0].id == run_id
    assert client.get_artifact(like_an_id).latest.load() == 2


def test_get_artifact_returns_the_artifact_with_its_versions(uid: str) -> None:
    two_runs(uid)
    client = Client()
    artifact = client.get_artifact(f"parity_av_{uid}")
    assert isinstance(artifact, Artifact)
    assert artifact.id == ids.artifact_id(f"parity_av_{uid}")
    assert list(artifact.versions) == ["1", "2"] and artifact.versions["1"].load() == 1
    assert (artifact.latest_version_name, artifact.latest.load()) == ("2", 2)
    assert artifact.latest_version_id == client.get_artifact_version(artifact.name).id
    assert artifact.created <= artifact.updated
    assert client.get_artifact(name_id_or_prefix=artifact.id) == artifact
    assert client.get_artifact(artifact.id[:13]) == artifact
    by_id = client.list_artifact_versions(artifact=artifact.id[:13])
    assert by_id == client.list_artifact_versions(artifact.name) == list(artifact.versions.values())
    listed = {a.name: a for a in client.list_artifacts()}
    assert listed[artifact.name].id == artifact.id

    with pytest.raises(NotFoundError, match=f"similar names: parity_av_{uid}"):
        client.get_artifact(f"parity_av_{uid}_nope")
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFoundError, match=f"No artifact has id '{unknown}', nor is one named"):
        client.get_artifact(unknown)


def test_get_pipeline_returns_its_runs_and_list_pipelines_lists_it(uid: str) -> None:
    name, first, second = two_runs(uid, fail_second=True)
    client = Client()
    found = client.get_pipeline(name)
    assert isinstance(found, RecordedPipeline) and PipelineResponse is RecordedPipeline
    assert found.id == ids.pipeline_id(name)
    assert [r.id for r in found.runs] == [second, first]  # newest first
    assert (found.run_count, found.num_runs) == (2, 2)
    assert found.latest_run is not None and found.latest_run.status == "failed"
    assert found.last_run == found.latest_run and found.latest_run_status == "failed"
    assert found.last_successful_run is not None and found.last_successful_run.id == first
    assert found.runs[1].steps["make"].output.load() == 1
    assert client.get_pipeline(name_id_or_prefix=found.id) == found
    assert client.get_pipeline(found.id[:13]) == found

    summaries = {p.name: p for p in client.list_pipelines()}
    assert (summaries[name].id, summaries[name].run_count) == (found.id, 2)
    assert (summaries[name].latest_run_id, summaries[name].latest_run_status) == (second, "failed")

    with pytest.raises(NotFoundError, match=f"No pipeline named 'parity{uid}'; similar names"):
        client.get_pipeline(f"parity{uid}")


def test_list_methods_page_as_zenml_does(uid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name, first, second = two_runs(uid)
    client = Client()
    assert [r.id for r in client.list_pipeline_runs(pipeline_name=name, size=1)] == [second]
    assert [r.id for r in client.list_pipeline_runs(pipeline_name=name, size=1, page=2)] == [first]
    assert client.list_pipeline_runs(pipeline_name=name, size=1, page=3) == []
    versions = client.list_artifact_versions(f"parity_av_{uid}", size=1, page=2)
    assert [v.version for v in versions] == ["2"]
    with pytest.raises(ValueError, match="page 1 or more"):
        client.list_pipeline_runs(page=0)

    # Longer lists than the API sends at once are fetched request by request.
    monkeypatch.setattr(cairn.client, "API_PAGE_LIMIT", 1)
    assert [r.id for r in client.list_pipeline_runs(pipeline_name=name, size=5)] == [second, first]
    assert [v.version for v in client.list_artifact_versions(f"parity_av_{uid}")] == ["1", "2"]
    assert name in {p.name for p in client.list_pipelines()}


def test_an_unreachable_api_is_named_and_only_the_local_one_advises_cairn_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nats_url: str, database_url: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StackUnavailableError) as given:
        Client(dead).get_pipeline_run("anything")
    assert f"Cannot reach the Cairn query API at {dead}, given to Client()" in str(given.value)
    assert "cairn up" not in str(given.value)

    monkeypatch.setenv("CAIRN_API_URL", dead)
    with pytest.raises(StackUnavailableError) as configured:
        Client().list_pipelines()
    assert f"Cannot reach the Cairn query API at {dead} (" in str(configured.value)
    assert "CAIRN_API_URL names that server" in str(configured.value)
    assert "cairn up" not in str(configured.value)

    # The local stack's record, every part answering TCP, but its API never replies.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        api_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        for key in ("CAIRN_API_URL", "CAIRN_NATS_URL"):
            monkeypatch.delenv(key)
        monkeypatch.setenv("CAIRN_HOME", str(tmp_path))
        record = StackRecord(
            nats_url=nats_url, api_url=api_url, database_url=database_url, artifact_store="x"
        )
        write_stack(tmp_path, record)
        with pytest.raises(StackUnavailableError) as local:
            Client(timeout=0.5).list_pipelines()
    assert f"Cannot reach the local Cairn stack's query API at {api_url}" in str(local.value)
    assert "`cairn up`" in str(local.value)


async def test_read_your_writes_waits_only_for_the_api_of_this_process_stack(
    uid: str, fresh_database: str
) -> None:
    """A Client given another stack's API does not make it wait for this process's events.

    This process has published (a run just now); the other API has no projector at all,
    so a wait for this process's stream sequence would stall until its min_seq timeout.
    """
    import asyncio
    import time

    import asyncpg
    from cairn_projections.migrations import migrate
    from cairn_services.api import create_app, serve_api

    await asyncio.to_thread(two_runs, uid)  # this process now has a last published sequence
    assert cairn.tracking.last_published_seq(Client().api_url) > 0
    conn = await asyncpg.connect(fresh_database)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    app = create_app(fresh_database, projector_name=f"other-{uid}", min_seq_timeout=30.0)
    port, stop = free_port(), asyncio.Event()
    server = asyncio.create_task(serve_api(app, "127.0.0.1", port, stop))
    try:
        with Client(f"http://127.0.0.1:{port}") as other:
            for _ in range(200):  # until it listens
                try:
                    await asyncio.to_thread(other.list_pipelines)
                    break
                except StackUnavailableError:
                    await asyncio.sleep(0.05)
            started = time.perf_counter()
            assert await asyncio.to_thread(other.list_pipelines) == []
            assert time.perf_counter() - started < 5.0  # not the 30 s a min_seq wait takes
    finally:
        stop.set()
        await asyncio.wait_for(server, timeout=15)
