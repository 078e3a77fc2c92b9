"""The query API over a real projector and Postgres, as the SDK's Client sees it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import cairn.own_writes
import httpx
import msgspec
import pytest
from cairn import Client, ServiceUnavailableError
from cairn.models import (
    Artifact,
    ArtifactSummary,
    ArtifactVersion,
    ErrorBody,
    PipelineRun,
    PipelineSummary,
    RecordedPipeline,
)
from cairn_events import Event, EventStream
from cairn_projections import ids
from cairn_services.api import MAX_LIMIT, InProcessTransport, create_app, serve_api
from cairn_services.projector import Projector
from cairn_services.stack import free_port
from factories import named_run, publish, run_events, version
from nats.js import JetStreamContext
from starlette.applications import Starlette

TOKEN = "s3cret"


class Stack:
    """A projector, the API app in-process, and a publisher, on one fresh database and the
    test's own stream."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: EventStream,
        app: Starlette,
        client: httpx.AsyncClient,
        projector: Projector,
    ):
        self.js, self.stream, self.app = js, stream, app
        self.client, self.projector = client, projector

    async def publish(self, events: list[Event]) -> int:
        return (await publish(self.js, self.stream, events))[-1]

    async def get(self, path: str, type_: Any, expect: int = 200, **params: Any) -> Any:
        response = await self.client.get(path, params=params)
        assert response.status_code == expect, response.text
        return msgspec.json.decode(response.content, type=type_)


@contextlib.asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling ``app`` in-process, with its lifespan entered."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cairn") as client:
            yield client


@pytest.fixture
async def stack(
    nats_url: str, fresh_database: str, js: JetStreamContext, stream: EventStream
) -> AsyncIterator[Stack]:
    name = f"api-{uuid.uuid4().hex[:8]}"
    projector = Projector(nats_url, fresh_database, name=name, batch_size=500, stream=stream)
    await projector.start()
    app = create_app(fresh_database, projector_name=name, min_seq_timeout=2.0)
    try:
        async with running(app) as client:
            yield Stack(js, stream, app, client, projector)
    finally:
        await projector.stop()


async def test_a_run_reads_back_with_steps_inputs_and_outputs(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    seq = await stack.publish(run_events(tag))

    run = await stack.get(f"/runs/training-{tag}", PipelineRun, min_seq=seq)
    assert (run.id, run.status, run.config.parameters) == (f"run-{tag}", "completed", {"lr": 0.1})
    assert list(run.steps) == ["loader", "trainer"]
    trainer = run.steps["trainer"]
    assert trainer.inputs["data"].id == f"av-{tag}-data"
    assert trainer.output.name == f"{tag}::model"
    assert trainer.output.producer_step_run_id == trainer.id
    assert (await stack.get(f"/runs/run-{tag}", PipelineRun)).name == f"training-{tag}"

    runs = await stack.get("/runs", list[PipelineRun], pipeline_name=f"training-{tag}")
    assert [r.id for r in runs] == [f"run-{tag}"] and runs[0].steps
    assert await stack.get("/runs", list[PipelineRun], pipeline_name=tag, status="failed") == []


async def test_artifact_versions_by_name_version_latest_and_id(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    name = f"{tag}::model"
    seq = await stack.publish(
        [version(tag, "model", "1", 1), version(tag, "model", "2", 2)]
        + [version(tag, "model", "golden", 2), version(tag, "data", "1", 1)]
    )

    versions = await stack.get(f"/artifacts/{name}/versions", list[ArtifactVersion], min_seq=seq)
    assert [v.version for v in versions] == ["1", "2", "golden"]
    latest = await stack.get(f"/artifacts/{name}/versions/latest", ArtifactVersion)
    assert latest.version == "2"  # the highest number wins over a newer custom version
    assert (await stack.get(f"/artifacts/{name}/versions/golden", ArtifactVersion)).uri.endswith(
        "/golden"
    )
    by_id = await stack.get(f"/artifact-versions/{latest.id}", ArtifactVersion)
    assert by_id == latest

    listing = await stack.get("/artifacts", list[dict[str, Any]])
    mine = {a["name"]: a for a in listing if a["name"].startswith(tag)}
    assert mine[name]["version_count"] == 3
    assert mine[name]["latest_version"] == "2"
    assert mine[f"{tag}::data"]["latest"]["id"] == f"av-{tag}-data-1"


async def test_not_found_says_what_exists(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    seq = await stack.publish(
        [version(tag, "model", "1", 1), version(tag, "model", "2", 2)] + run_events(f"r{tag}")
    )

    error = await stack.get(f"/artifacts/{tag}::model/versions/3", ErrorBody, 404, min_seq=seq)
    assert error.error == "not_found"
    assert error.message == f"Artifact '{tag}::model' has no version '3'; versions: 1, 2 (latest 2)"

    error = await stack.get(f"/artifacts/{tag}::modle/versions/latest", ErrorBody, 404)
    assert error.message.startswith(
        f"No artifact named '{tag}::modle'; similar names: {tag}::model"
    )
    error = await stack.get(f"/artifacts/{tag}::modle/versions", ErrorBody, 404)
    assert "similar names" in error.message

    error = await stack.get(f"/runs/no-such-{tag}", ErrorBody, 404)
    assert error.message.startswith(
        f"No pipeline run with name or id 'no-such-{tag}'; latest runs:"
    )
    # the newest runs of the shared database are listed (this test's run is dated 2026-11-24)
    assert error.message.split("latest runs: ")[1].strip()

    error = await stack.get(f"/artifact-versions/{tag}::model", ErrorBody, 404)
    assert "is an artifact name" in error.message


async def test_bad_query_parameters_are_400(stack: Stack) -> None:
    for params in ({"limit": "many"}, {"limit": 0}, {"status": "exploded"}, {"min_seq": -1}):
        error = await stack.get("/runs", ErrorBody, 400, **params)
        assert error.error == "bad_request"
        assert next(iter(params)) in error.message


_BIGINT_BOUND = "from 0 to 9223372036854775807"
_TOO_LONG = "bytes long in UTF-8; the limit is 255 bytes"
_NUL = "contains the control character '\\x00'"
HOSTILE_REQUESTS = [
    (
        "/runs",
        {"offset": "99999999999999999999"},
        400,
        f"offset must be a whole number {_BIGINT_BOUND}",
    ),
    ("/runs", {"offset": str(2**63)}, 400, f"offset must be a whole number {_BIGINT_BOUND}"),
    ("/artifacts", {"offset": str(2**63)}, 400, "offset must be a whole number"),
    ("/artifacts/a/versions", {"offset": str(2**64)}, 400, "offset must be a whole number"),
    ("/health", {"min_seq": str(2**63)}, 400, f"min_seq must be a whole number {_BIGINT_BOUND}"),
    ("/runs", {"limit": "1e3"}, 400, "limit must be a whole number from 1 to 1000"),
    ("/runs", {"offset": "0x10"}, 400, "written in decimal digits 0-9; got '0x10'"),
    ("/runs", {"limit": "١٢"}, 400, "limit must be a whole number"),
    ("/runs", {"limit": " 12"}, 400, "limit must be a whole number"),
    ("/runs", {"limit": "1_0"}, 400, "limit must be a whole number"),
    ("/runs", {"limit": "-5"}, 400, "from 1 to 1000, written in decimal digits 0-9; got '-5'"),
    ("/runs", {"offset": "-1"}, 400, "offset must be a whole number"),
    ("/runs", {"limit": "9" * 1000}, 400, "limit must be a whole number"),
    ("/artifacts", {"limit": "1001"}, 400, "limit must be a whole number from 1 to 1000"),
    (
        "/artifacts/a/versions",
        {"limit": "5000"},
        400,
        "limit must be a whole number from 1 to 1000",
    ),
    ("/runs", {"include_steps": "maybe"}, 400, "include_steps must be true or false"),
    ("/runs", {"status": "x" * 10240}, 414, "the limit is 4096 bytes"),
    ("/runs", {"junk": "j" * 5000}, 414, "The query string is 5005 bytes long"),
    ("/runs", {"pipeline_name": "a\x00b"}, 400, f"pipeline_name 'a\\x00b' {_NUL}"),
    ("/runs", {"pipeline_name": "p" * 300}, 400, f"is 300 {_TOO_LONG}"),
    ("/runs/%00", {}, 400, f"Run name or id '\\x00' {_NUL}"),
    ("/runs/%20", {}, 400, "Run name or id ' ' is empty or blank"),
    ("/runs/" + "r" * 10240, {}, 400, f"(10240 characters) is 10240 {_TOO_LONG}"),
    ("/artifacts/a%00b/versions", {}, 400, f"Artifact name 'a\\x00b' {_NUL}"),
    ("/artifacts/" + "n" * 10240 + "/versions/latest", {}, 400, f"is 10240 {_TOO_LONG}"),
    ("/artifacts/a/versions/%00", {}, 400, f"Version '\\x00' {_NUL}"),
    ("/artifacts/a/versions/" + "v" * 10240, {}, 400, "Version 'vvv"),
    ("/artifact-versions/%00", {}, 400, f"Artifact version id '\\x00' {_NUL}"),
    ("/no/such/%00" + "x" * 10240, {}, 404, "(10250 characters): Not Found"),
]


async def test_hostile_requests_get_a_4xx_saying_what_was_wrong(fresh_database: str) -> None:
    async with running(create_app(fresh_database, projector_name="nobody")) as client:
        for path, params, status, says in HOSTILE_REQUESTS:
            response = await client.get(path, params=params)
            assert response.status_code == status, (path, params, response.text[:300])
            body = msgspec.json.decode(response.content, type=ErrorBody)
            assert says in body.message, (path, params, body.message)
            assert len(body.message) < 600  # a huge input is cut, not echoed back whole
        assert (await client.get("/runs", params={"limit": MAX_LIMIT})).status_code == 200
        assert (await client.get("/health", params={"min_seq": 0})).status_code == 200


async def test_min_seq_waits_for_the_projector_then_gives_up_with_503(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    pending = asyncio.create_task(
        stack.get(f"/runs/training-{tag}", PipelineRun, min_seq=await _next_seq(stack))
    )
    await asyncio.sleep(0.2)  # the request is waiting for a sequence nobody published yet
    await stack.publish(run_events(tag))
    assert (await pending).name == f"training-{tag}"

    health = await stack.get("/health", dict[str, Any])
    assert health["status"] == "ok" and health["checkpoint"] >= stack.projector.checkpoint - 1
    wanted = stack.projector.checkpoint + 1000
    error = await stack.get("/runs", ErrorBody, 503, min_seq=wanted)
    assert error.error == "projector_behind"
    assert f"needs {wanted}" in error.message
    behind = await stack.client.get("/health", params={"min_seq": wanted})
    assert behind.status_code == 503 and behind.headers["Retry-After"] == "2"


async def test_a_token_guards_everything_but_health(fresh_database: str) -> None:
    app = create_app(fresh_database, projector_name="nobody", token=TOKEN)
    async with running(app) as client:
        refused = await client.get("/runs")
        assert refused.status_code == 401
        assert msgspec.json.decode(refused.content, type=ErrorBody).error == "unauthorized"
        wrong = await client.get("/runs", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        allowed = await client.get("/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code == 200 and allowed.json() == []
        assert (await client.get("/health")).json() == {"status": "ok", "checkpoint": 0}


async def test_serve_api_answers_over_tcp_and_stops_cleanly(fresh_database: str) -> None:
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve_api(create_app(fresh_database), "127.0.0.1", port, stop))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/health")).status_code == 200:
                    break
            await asyncio.sleep(0.05)
        missing = await client.get("/no/such/route")
        assert missing.status_code == 404
        assert msgspec.json.decode(missing.content, type=ErrorBody).error == "not_found"
    stop.set()
    await asyncio.wait_for(server, 10)

    cancelled = asyncio.create_task(serve_api(create_app(fresh_database), "127.0.0.1", port))
    await asyncio.sleep(0.5)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(cancelled, 10)


async def _next_seq(stack: Stack) -> int:
    info = await stack.js.stream_info(stack.stream.name)
    return int(info.state.last_seq) + 1


async def test_runs_by_id_then_name_then_id_prefix(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]  # ids of this test start with it; uuid7 ids do not (019...)
    ids = [f"{tag}-0000-4000-8000-00000000000{i}" for i in (1, 2)]
    events = named_run(ids[0], f"first-{tag}", f"p-{tag}") + named_run(ids[1], tag, f"p-{tag}")
    seq = await stack.publish(events)

    assert (await stack.get(f"/runs/{ids[0]}", PipelineRun, min_seq=seq)).name == f"first-{tag}"
    assert (await stack.get(f"/runs/{ids[0].upper()}", PipelineRun)).id == ids[0]
    assert (await stack.get(f"/runs/{ids[1][:-1]}2", PipelineRun)).id == ids[1]
    # a name wins over the id prefix it also is: the second run is named `tag`
    assert (await stack.get(f"/runs/{tag}", PipelineRun)).id == ids[1]

    error = await stack.get(f"/runs/{tag}-0000", ErrorBody, 409)
    assert error.error == "ambiguous"
    assert error.message == (
        f"'{tag}-0000' is no name, and the ids of 2 pipeline runs start with it: "
        f"first-{tag} ({ids[0]}), {tag} ({ids[1]}). Give more characters of the id, "
        "or the whole id."
    )
    unknown = f"{tag}-0000-4000-8000-000000000009"
    error = await stack.get(f"/runs/{unknown}", ErrorBody, 404)
    assert error.message.startswith(f"No pipeline run has id '{unknown}', nor is one named so;")
    error = await stack.get(f"/runs/{tag}-1", ErrorBody, 404)
    assert error.message.startswith(
        f"No pipeline run is named '{tag}-1' or has an id starting with '{tag}-1'; latest runs:"
    )
    error = await stack.get(f"/runs/{tag[:3]}", ErrorBody, 404)  # too short to be a prefix
    assert error.message.startswith(
        f"No pipeline run with name or id '{tag[:3]}' (an id prefix needs at least 4 characters);"
    )


async def test_artifact_versions_by_id_then_name_then_id_prefix(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = [f"{tag}-0000-4000-8000-00000000000{i}" for i in (1, 2)]
    versions = [
        msgspec.structs.replace(version(tag, "model", str(n), n), artifact_version_id=ids[n - 1])
        for n in (1, 2)
    ]
    # an artifact named like the first version's id, and one named like a prefix of both
    lookalikes = [
        msgspec.structs.replace(version(tag, "x", "1", 1), name=ids[0].upper()),
        msgspec.structs.replace(version(tag, "y", "1", 1), name=f"{tag}-0000-4000"),
    ]
    seq = await stack.publish(versions + lookalikes)

    async def find(text: str, expect: int = 200, **params: Any) -> Any:
        type_ = ArtifactVersion if expect == 200 else ErrorBody
        return await stack.get(
            "/artifact-versions", type_, expect, name_id_or_prefix=text, min_seq=seq, **params
        )

    assert (await find(ids[0])).version == "1"
    assert (await find(ids[0], version="2")).version == "1"  # an id wins; version is ignored
    assert (await find(ids[0].upper())).id == ids[0]  # the id wins over the lookalike name
    assert (await find(f"{tag}::model")).version == "2"
    assert (await find(f"{tag}::model", version="1")).id == ids[0]
    assert (await find(ids[1][:-1] + "2")).version == "2"
    assert (await find(f"{tag}-0000-4000")).name == f"{tag}-0000-4000"  # the name wins
    error = await find(f"{tag}-0000-4000-8000", 409)
    assert error.message.startswith(
        f"'{tag}-0000-4000-8000' is no name, and the ids of 2 artifact versions start with it: "
        f"{tag}::model version 1 ({ids[0]}), {tag}::model version 2 ({ids[1]})."
    )
    unknown = f"{tag}-0000-4000-8000-000000000009"
    error = await find(unknown, 404)
    assert error.message.startswith(f"No artifact version has id '{unknown}', nor is an artifact")
    error = await find(f"{tag}::model", 404, version="7")
    assert error.message.startswith(f"Artifact '{tag}::model' has no version '7'; versions: 1, 2")
    error = await find(f"{tag}-9", 404)
    assert error.message.startswith(
        f"No artifact named '{tag}-9' and no artifact version id starts with '{tag}-9';"
    )
    error = await stack.get("/artifact-versions", ErrorBody, 400)
    assert "name or name_id_or_prefix is required" in error.message


async def test_artifacts_and_pipelines_have_ids_derived_from_their_names(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    seq = await stack.publish(
        [version(tag, "model", "1", 1), version(tag, "model", "2", 2)]
        + named_run(f"{tag}-a", f"a-{tag}", f"train-{tag}")
        + named_run(f"{tag}-b", f"b-{tag}", f"train-{tag}")
    )

    artifact = await stack.get(f"/artifacts/{tag}::model", Artifact, min_seq=seq)
    assert (
        artifact.id
        == ids.artifact_id(f"{tag}::model")
        == str(uuid.uuid5(uuid.UUID("c6a61954-12a0-4105-abd6-616c2f9fbb80"), f"{tag}::model"))
    )  # fixed forever: a replay, or another installation, derives the same id
    assert list(artifact.versions) == ["1", "2"] and artifact.latest.version == "2"
    assert artifact.version_count == 2 and artifact.created_at <= artifact.updated_at
    assert await stack.get(f"/artifacts/{artifact.id}", Artifact) == artifact
    assert await stack.get(f"/artifacts/{artifact.id[:13]}", Artifact) == artifact

    pipeline = await stack.get(f"/pipelines/train-{tag}", RecordedPipeline)
    assert pipeline.id == ids.pipeline_id(f"train-{tag}")
    assert (pipeline.run_count, [r.name for r in pipeline.runs]) == (2, [f"b-{tag}", f"a-{tag}"])
    assert pipeline.last_successful_run is not None
    assert await stack.get(f"/pipelines/{pipeline.id[:13]}", RecordedPipeline) == pipeline
    listed = await stack.get("/pipelines", list[PipelineSummary])
    mine = [p for p in listed if p.name == f"train-{tag}"]
    assert [(p.id, p.run_count, p.latest_run_name) for p in mine] == [(pipeline.id, 2, f"b-{tag}")]

    error = await stack.get(f"/pipelines/trian-{tag}", ErrorBody, 404)
    assert error.message.startswith(f"No pipeline named 'trian-{tag}'; similar names: train-{tag}")
    unknown = str(uuid.uuid4())
    error = await stack.get(f"/artifacts/{unknown}", ErrorBody, 404)
    assert error.message == f"No artifact has id '{unknown}', nor is one named so"


async def test_ambiguous_derived_id_prefixes_list_the_matches(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    first, second, prefix = _colliding(lambda i: f"{tag}-{i}", ids.artifact_id)
    seq = await stack.publish(
        [msgspec.structs.replace(version(tag, n, "1", 1), name=n) for n in (first, second)]
    )
    error = await stack.get(f"/artifacts/{prefix}", ErrorBody, 409, min_seq=seq)
    assert error.error == "ambiguous"
    assert f"{first} ({ids.artifact_id(first)})" in error.message
    assert f"{second} ({ids.artifact_id(second)})" in error.message

    first, second, prefix = _colliding(lambda i: f"p-{tag}-{i}", ids.pipeline_id)
    await stack.publish(named_run(f"{tag}-1", "r1", first) + named_run(f"{tag}-2", "r2", second))
    error = await stack.get(f"/pipelines/{prefix}", ErrorBody, 409, min_seq=seq + 4)
    assert f"{first} ({ids.pipeline_id(first)})" in error.message


def _colliding(name: Any, derive: Any, digits: int = 6) -> tuple[str, str, str]:
    """Two names ``name(i)`` whose derived ids share their first ``digits`` hex digits."""
    seen: dict[str, str] = {}
    for i in range(1_000_000):
        candidate = name(i)
        prefix = derive(candidate)[:digits]
        if prefix in seen:
            return seen[prefix], candidate, prefix
        seen[prefix] = candidate
    raise AssertionError("no collision")


async def test_the_client_reads_through_the_app_in_process_and_waits_for_its_writes(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Client(transport=InProcessTransport(app, loop))``: typed reads with no server, and
    read-your-writes (the Client's ``min_seq``) waiting for the projector."""
    tag = uuid.uuid4().hex[:8]
    transport = InProcessTransport(stack.app, asyncio.get_running_loop())
    with Client("http://cairn", transport=transport) as client:
        seq = await stack.publish(run_events(tag) + [version(tag, "model", "2", 2)])
        # as if this process had published them: the Client asks the API to wait for seq
        monkeypatch.setattr(cairn.own_writes, "last_published_seq", lambda api_url: seq)
        run = await asyncio.to_thread(client.get_pipeline_run, f"training-{tag}")
        assert (run.id, run.status) == (f"run-{tag}", "completed")
        assert run.steps["trainer"].output.name == f"{tag}::model"
        latest = await asyncio.to_thread(client.get_artifact_version, f"{tag}::model")
        assert latest.version == "2"

        summaries = {a.name: a for a in await asyncio.to_thread(client.list_artifacts)}
        model = summaries[f"{tag}::model"]
        assert isinstance(model, ArtifactSummary) and model.latest == latest
        assert (model.id, model.latest_version, model.version_count) == (
            ids.artifact_id(f"{tag}::model"),
            "2",
            2,
        )

        # a sequence the projector never reaches: the API waits min_seq_timeout, then says so
        monkeypatch.setattr(cairn.own_writes, "last_published_seq", lambda api_url: seq + 1000)
        with pytest.raises(ServiceUnavailableError, match="is behind"):
            await asyncio.to_thread(client.list_pipeline_runs)
        with pytest.raises(RuntimeError, match="call the Client from another thread"):
            client.list_pipelines()  # on the loop the app runs on, which it would block
