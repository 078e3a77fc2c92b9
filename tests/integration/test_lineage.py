"""Lineage end to end: ``Client().get_lineage``, ``ArtifactVersion.producer`` /
``.consumers``, ``get_run_step``, their HTTP routes and ``cairn artifact lineage``.

A real three-step pipeline runs on the session's stack (``load -> clean -> train``, and
``train`` also reads ``load``'s output). What a real run cannot show on demand (cached
step runs, two runs linked by a version, a step that loads what it saved, cycles) is
published as events into the test's own stream, read by its own projector and API.
"""

import asyncio
import io
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from cairn import Client, NotFoundError, pipeline, step
from cairn.models import (
    ErrorBody,
    LineageDirection,
    LineageGraph,
    LineageNode,
    PipelineRun,
    StepRun,
)
from cairn_events import (
    ArtifactMaterialized,
    CacheHit,
    Event,
    EventStream,
    RunFinished,
    RunOutcome,
    RunStarted,
    StepFinished,
    StepStarted,
)
from cairn_services.api import InProcessTransport, create_app
from cairn_services.cli import _lineage_tree
from cairn_services.projector import Projector
from cairn_services.stack.in_thread import ServicesThread
from nats.js import JetStreamContext
from rich.console import Console
from test_api import Stack, running
from test_local_stack import cairn

#: A graph as names: nodes as (kind, name), edges as (source name, target name, key).
Shape = tuple[set[tuple[str, str]], set[tuple[str, str, str]]]


def shape(
    graph: LineageGraph, step_label: Callable[[LineageNode], str] = lambda node: node.name
) -> Shape:
    """``graph``'s nodes and edges by name: a version by its artifact name, a step run by
    ``step_label`` (its step name: each test's names are its own)."""
    names = {
        node.id: step_label(node) if node.kind == "step_run" else node.name for node in graph.nodes
    }
    nodes: set[tuple[str, str]] = {(node.kind, names[node.id]) for node in graph.nodes}
    edges = {(names[e.source], names[e.target], e.key) for e in graph.edges}
    assert len(edges) == len(graph.edges), "an edge is listed twice"
    return nodes, edges


def by_run(graph: LineageGraph) -> Shape:
    """:func:`shape` with each step run named ``step@run``."""
    return shape(graph, step_label=lambda node: f"{node.name}@{node.run_name}")


def versions(*names: str) -> set[tuple[str, str]]:
    return {("artifact_version", name) for name in names}


def step_runs(*names: str) -> set[tuple[str, str]]:
    return {("step_run", name) for name in names}


# -- a real pipeline on the session's stack -------------------------------------------


class Trained:
    """The run of ``load -> raw``, ``clean(raw) -> cleaned``, ``train(cleaned, raw) -> model``
    with its artifact names (they hold ':', as the CLI must cope with)."""

    def __init__(self, run: PipelineRun, tag: str) -> None:
        self.run = run
        self.raw, self.cleaned, self.model = (f"lin:{tag}:{w}" for w in ("raw", "cleaned", "model"))
        #: each step's output key
        self.key = {name: next(iter(run.steps[name].outputs)) for name in run.steps}


@pytest.fixture(scope="module")
def trained(cairn_stack: ServicesThread) -> Trained:
    tag = uuid.uuid4().hex[:8]

    @step
    def load() -> Annotated[dict[str, int], "lin:{tag}:raw"]:
        return {"a": 1, "b": 2}

    @step
    def clean(raw: dict[str, int]) -> Annotated[dict[str, int], "lin:{tag}:cleaned"]:
        return {k: v for k, v in raw.items() if v > 1}

    @step
    def train(cleaned: dict[str, int], raw: dict[str, int]) -> Annotated[int, "lin:{tag}:model"]:
        return len(cleaned) + len(raw)

    @pipeline(substitutions={"tag": tag})
    def training() -> None:
        raw = load()
        train(clean(raw), raw)

    run = training()
    assert run.status == "completed"
    return Trained(run, tag)


def test_upstream_at_each_depth(trained: Trained) -> None:
    t, key = trained, trained.key
    model = Client().get_artifact_version(t.model)

    one = Client().get_lineage(model, depth=1)
    assert (one.artifact_version_id, one.direction, one.depth) == (model.id, "upstream", 1)
    assert one.nodes[0].id == model.id
    assert shape(one) == (
        versions(t.model, t.cleaned, t.raw) | step_runs("train"),
        {
            ("train", t.model, key["train"]),
            (t.cleaned, "train", "cleaned"),
            (t.raw, "train", "raw"),
        },
    )

    everything = (
        versions(t.model, t.cleaned, t.raw) | step_runs("train", "clean", "load"),
        shape(one)[1]
        | {
            ("clean", t.cleaned, key["clean"]),
            (t.raw, "clean", "raw"),
            ("load", t.raw, key["load"]),
        },
    )
    assert shape(Client().get_lineage(model.id, "upstream", depth=2)) == everything
    assert shape(Client().get_lineage(uuid.UUID(model.id))) == everything  # any depth
    assert shape(Client().get_lineage(model, depth=50)) == everything

    raw = Client().get_artifact_version(t.raw)
    assert shape(Client().get_lineage(raw)) == (
        versions(t.raw) | step_runs("load"),
        {("load", t.raw, key["load"])},
    )


def test_step_run_nodes_say_their_run_and_status(trained: Trained) -> None:
    graph = Client().get_lineage(Client().get_artifact_version(trained.model))
    train = next(n for n in graph.nodes if n.name == "train")
    assert (train.id, train.version, train.status) == (
        trained.run.steps["train"].id,
        None,
        "completed",
    )
    assert (train.run_id, train.run_name) == (trained.run.id, trained.run.name)
    assert train.original_step_run_id is None
    raw = next(n for n in graph.nodes if n.name == trained.raw)
    assert (raw.version, raw.run_id, raw.status) == ("1", None, None)


def test_downstream_at_each_depth(trained: Trained) -> None:
    t, key = trained, trained.key
    raw = Client().get_artifact_version(t.raw)

    one = Client().get_lineage(raw, "downstream", 1)
    nodes = versions(t.raw, t.cleaned, t.model) | step_runs("clean", "train")
    depth_one = {
        (t.raw, "clean", "raw"),
        ("clean", t.cleaned, key["clean"]),
        (t.raw, "train", "raw"),
        ("train", t.model, key["train"]),
    }
    assert shape(one) == (nodes, depth_one)
    # depth 2 adds that train also read cleaned; nothing is further down
    everything = (nodes, depth_one | {(t.cleaned, "train", "cleaned")})
    assert shape(Client().get_lineage(raw, "downstream", 2)) == everything
    assert shape(Client().get_lineage(raw, "downstream")) == everything

    model = Client().get_artifact_version(t.model)
    assert shape(Client().get_lineage(model, "downstream")) == (versions(t.model), set())


def test_both_ways_leaves_out_the_other_inputs_and_outputs(trained: Trained) -> None:
    t, key = trained, trained.key
    cleaned = Client().get_artifact_version(t.cleaned)
    graph = Client().get_lineage(cleaned, "both")
    assert graph.nodes[0].id == cleaned.id
    # upstream: clean, its input raw and raw's producer; downstream: train and its model.
    # That train also read raw is neither what cleaned came from nor what came from it.
    assert shape(graph) == (
        versions(t.cleaned, t.raw, t.model) | step_runs("clean", "load", "train"),
        {
            ("clean", t.cleaned, key["clean"]),
            (t.raw, "clean", "raw"),
            ("load", t.raw, key["load"]),
            (t.cleaned, "train", "cleaned"),
            ("train", t.model, key["train"]),
        },
    )


def test_producer_and_consumers_of_a_version_two_steps_read(trained: Trained) -> None:
    steps = trained.run.steps
    raw = Client().get_artifact_version(trained.raw)

    consumers = raw.consumers
    assert [c.name for c in consumers] == ["clean", "train"]  # by start time
    train = consumers[1]
    assert isinstance(train, StepRun) and train.id == steps["train"].id
    assert {k: v.id for k, v in train.inputs.items()} == {
        "cleaned": steps["clean"].output.id,
        "raw": raw.id,
    }

    producer = raw.producer
    assert producer is not None and (producer.id, producer.name) == (steps["load"].id, "load")
    assert producer.output.id == raw.id
    assert Client().get_artifact_version(trained.model).consumers == []

    by_id = Client().get_run_step(steps["clean"].id)
    assert (by_id.name, by_id.inputs["raw"].id, by_id.output.name) == (
        "clean",
        raw.id,
        trained.cleaned,
    )
    with pytest.raises(NotFoundError, match="No step run with id 'no-such-step-run'"):
        Client().get_run_step("no-such-step-run")


def test_bad_direction_or_depth_is_400_and_an_unknown_id_404(trained: Trained) -> None:
    model = Client().get_artifact_version(trained.model)
    with httpx.Client(base_url=os.environ["CAIRN_API_URL"]) as http:

        def error(path: str, status: int, **params: Any) -> str:
            response = http.get(path, params=params)
            assert response.status_code == status, response.text
            body = ErrorBody(**response.json())
            return body.message

        lineage = f"/artifact-versions/{model.id}/lineage"
        assert error(lineage, 400, direction="sideways") == (
            "direction must be one of upstream, downstream, both; got 'sideways'"
        )
        assert "got 'Upstream'" in error(lineage, 400, direction="Upstream")
        for depth in ("0", "-1", "two", "1.5", str(2**63), "1e3"):
            message = error(lineage, 400, depth=depth)
            assert message.startswith("depth must be a whole number from 1 to 9223372036854775807")
        # the largest depth a client may give works, and goes to the ends
        deepest = http.get(lineage, params={"depth": str(2**63 - 1)})
        assert deepest.status_code == 200 and len(deepest.json()["nodes"]) == 6

        for what in ("lineage", "consumers"):
            assert error(f"/artifact-versions/no-such-version/{what}", 404) == (
                "No artifact version with id 'no-such-version'"
            )
            hint = error(f"/artifact-versions/{trained.model}/{what}", 404)
            assert "is an artifact name: pass the name to Client().get_artifact_version()" in hint
        assert error("/step-runs/no-such-step-run", 404).startswith(
            "No step run with id 'no-such-step-run'"
        )
        assert "control character" in error("/step-runs/a%00b", 400)

    with pytest.raises(NotFoundError, match="No artifact version with id 'no-such-version'"):
        Client().get_lineage("no-such-version")


def test_a_run_served_from_cache_links_to_the_versions_it_reused(
    cairn_stack: ServicesThread,
) -> None:
    tag = uuid.uuid4().hex[:8]

    @step
    def make() -> Annotated[int, "lin:{tag}:made"]:
        return 1

    @step
    def use(made: int) -> Annotated[int, "lin:{tag}:used"]:
        return made + 1

    @pipeline(substitutions={"tag": tag})
    def twice() -> None:
        use(make())

    first, again = twice(), twice()
    assert (first.status, again.status) == ("completed", "cached")
    made = Client().get_artifact_version(f"lin:{tag}:made")
    assert made.version == "1"  # the second run stored nothing
    key = next(iter(first.steps["use"].outputs))

    graph = Client().get_lineage(made, "downstream")
    assert by_run(graph) == (
        versions(made.name, f"lin:{tag}:used")
        | step_runs(f"use@{first.name}", f"use@{again.name}"),
        {
            (made.name, f"use@{first.name}", "made"),
            (f"use@{first.name}", f"lin:{tag}:used", key),
            (made.name, f"use@{again.name}", "made"),
            (f"use@{again.name}", f"lin:{tag}:used", key),
        },
    )
    cached = next(n for n in graph.nodes if n.id == again.steps["use"].id)
    assert (cached.status, cached.original_step_run_id) == ("cached", first.steps["use"].id)
    assert [(c.run_id, c.status) for c in made.consumers] == [
        (first.id, "completed"),
        (again.id, "cached"),
    ]
    # upstream leads to the step runs that computed, in the first run
    used = Client().get_artifact_version(f"lin:{tag}:used")
    assert by_run(Client().get_lineage(used)) == (
        versions(made.name, used.name) | step_runs(f"use@{first.name}", f"make@{first.name}"),
        {
            (f"use@{first.name}", used.name, key),
            (made.name, f"use@{first.name}", "made"),
            (f"make@{first.name}", made.name, next(iter(first.steps["make"].outputs))),
        },
    )


def test_two_pipelines_linked_by_a_version_given_to_a_step(cairn_stack: ServicesThread) -> None:
    tag = uuid.uuid4().hex[:8]

    @step
    def featurize() -> Annotated[int, "lin:{tag}:features"]:
        return 3

    @step
    def fit(features: int) -> Annotated[int, "lin:{tag}:fitted"]:
        return features * 2

    @pipeline(substitutions={"tag": tag})
    def prep() -> None:
        featurize()

    @pipeline(substitutions={"tag": tag})
    def training() -> None:
        fit(Client().get_artifact_version(f"lin:{tag}:features"))

    made, used = prep(), training()
    fitted = used.steps["fit"].output
    assert by_run(Client().get_lineage(fitted)) == (
        versions(fitted.name, f"lin:{tag}:features")
        | step_runs(f"fit@{used.name}", f"featurize@{made.name}"),
        {
            (f"fit@{used.name}", fitted.name, next(iter(used.steps["fit"].outputs))),
            (f"lin:{tag}:features", f"fit@{used.name}", "features"),
            (
                f"featurize@{made.name}",
                f"lin:{tag}:features",
                next(iter(made.steps["featurize"].outputs)),
            ),
        },
    )


def test_cli_draws_upstream_and_downstream_trees(trained: Trained) -> None:
    t = trained
    Client().get_artifact_version(t.model)  # the API has the run (the CLI does not wait)

    wide = {**os.environ, "COLUMNS": "200"}
    up = cairn("artifact", "lineage", t.model, env=wide)
    assert up.returncode == 0, up.stderr
    run = trained.run.name
    lines = up.stdout.splitlines()
    model = Client().get_artifact_version(t.model)
    assert lines[0] == f"{t.model}:1  ← train (completed) in run {run}  ({model.id})"
    assert lines[1:] == [
        f"├── cleaned = {t.cleaned}:1  ← clean (completed) in run {run}",
        f"│   └── raw = {t.raw}:1  ← load (completed) in run {run}",
        f"└── raw = {t.raw}:1  ← load (completed) in run {run}",
    ]

    # NAME:VERSION, split at the last ':' since the whole is no name; one hop down
    down = cairn("artifact", "lineage", f"{t.raw}:1", "--downstream", "--depth", "1", env=wide)
    assert down.returncode == 0, down.stderr
    assert down.stdout.splitlines()[1:] == [
        f"├── {t.cleaned}:1  ← clean (completed) in run {run}, reading it as 'raw'",
        f"└── {t.model}:1  ← train (completed) in run {run}, reading it as 'raw'",
    ]
    everything = cairn("artifact", "lineage", t.raw, "--downstream", env=wide)
    assert everything.stdout.splitlines()[1:] == [
        f"├── {t.cleaned}:1  ← clean (completed) in run {run}, reading it as 'raw'",
        f"│   └── {t.model}:1  ← train (completed) in run {run}, reading it as 'cleaned'",
        f"└── {t.model}:1  ← train (completed) in run {run}, reading it as 'raw'",
    ]


def test_cli_says_what_it_could_not_find(trained: Trained) -> None:
    Client().get_artifact_version(trained.model)
    missing = cairn("artifact", "lineage", f"{trained.model}:7", env=dict(os.environ))
    assert missing.returncode == 1
    assert f"No artifact named '{trained.model}:7'" in missing.stdout
    assert f"Read as NAME:VERSION: Artifact '{trained.model}' has no version '7'; versions: 1" in (
        missing.stdout.replace("\n", "")
    )
    bad_depth = cairn("artifact", "lineage", trained.model, "--depth", "0", env=dict(os.environ))
    assert bad_depth.returncode == 2
    assert "Invalid value for '--depth'" in bad_depth.stderr
    assert "greater than or equal to 1" in bad_depth.stderr


# -- events a real run cannot show on demand, on the test's own stack -----------------


_clock = itertools.count(1)


def _at() -> datetime:
    """A moment later than the previous one: step runs start in the order they are built."""
    return datetime(2026, 11, 24, 6, 0, tzinfo=UTC) + timedelta(seconds=next(_clock))


class Runs:
    """The events of runs made up on the test's own stream: runs, step runs, versions and
    cache hits, ids from ``tag``; a step run's name is ``step@run`` in :func:`shape`."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.events: list[Event] = []
        self._numbers: dict[str, int] = {}

    def run(self, name: str) -> str:
        run_id = f"run-{self.tag}-{name}"
        self.events.append(
            RunStarted(run_id=run_id, run_name=name, pipeline_name=name, started_at=_at())
        )
        return run_id

    def finish(self, run_id: str) -> None:
        self.events.append(RunFinished(run_id=run_id, status=RunOutcome.COMPLETED, duration_s=1.0))

    def start(self, run_id: str, name: str, inputs: dict[str, str] | None = None) -> str:
        step_id = f"step-{run_id}-{name}"
        self.events.append(
            StepStarted(
                run_id=run_id,
                step_run_id=step_id,
                step_name=name,
                function=f"p.{name}",
                inputs=inputs or {},
                occurred_at=_at(),
            )
        )
        return step_id

    def version(self, what: str, step_id: str | None = None, run_id: str | None = None) -> str:
        """A new version of artifact ``what`` (by its short name), stored by ``step_id``."""
        number = self._numbers[what] = self._numbers.get(what, 0) + 1
        av_id = f"av-{self.tag}-{what}-{number}"
        self.events.append(
            ArtifactMaterialized(
                artifact_version_id=av_id,
                name=what,
                version=str(number),
                numeric_count=number,
                uri=f"/store/{av_id}",
                artifact_type="data",
                data_type="builtins.dict",
                materializer="cairn.materializers.BuiltInMaterializer",
                content_hash=f"hash-{what}",
                size=1,
                producer_run_id=run_id,
                producer_step_run_id=step_id,
                output_name="output" if step_id else None,
                occurred_at=_at(),
            )
        )
        return av_id

    def end(
        self,
        run_id: str,
        step_id: str,
        outputs: dict[str, str],
        loaded: dict[str, str] | None = None,
    ) -> None:
        name = step_id.removeprefix(f"step-{run_id}-")
        self.events.append(
            StepFinished(
                run_id=run_id,
                step_run_id=step_id,
                step_name=name,
                duration_s=0.1,
                outputs=outputs,
                loaded=loaded or {},
                occurred_at=_at(),
            )
        )

    def step(self, run_id: str, name: str, inputs: dict[str, str], makes: str) -> tuple[str, str]:
        """A step run reading ``inputs`` and storing a version of ``makes`` as ``output``."""
        step_id = self.start(run_id, name, inputs)
        made = self.version(makes, step_id, run_id)
        self.end(run_id, step_id, {"output": made})
        return step_id, made

    def cached(
        self,
        run_id: str,
        name: str,
        inputs: dict[str, str],
        source: tuple[str, str],
        outputs: dict[str, str],
    ) -> str:
        """A step run served from the cache entry of ``source`` (its run id and step run
        id): it stores nothing and reuses ``outputs``, that step run's."""
        step_id = self.start(run_id, name, inputs)
        source_run, source_step = source
        self.events.append(
            CacheHit(
                run_id=run_id,
                step_run_id=step_id,
                step_name=name,
                cache_key=f"key-{name}",
                source_run_id=source_run,
                source_step_run_id=source_step,
                outputs=outputs,
                occurred_at=_at(),
            )
        )
        return step_id


class Own(Stack):
    """The test's own projector and API (:class:`test_api.Stack`), and a Client reading
    through the app in-process."""

    sdk: Client

    async def project(self, runs: Runs) -> None:
        """Publish ``runs``' events and wait until every one is projected."""
        seq = await self.publish(runs.events)
        await self.get("/health", dict, min_seq=seq)

    async def lineage(
        self, version_id: str, direction: LineageDirection = "upstream", depth: int | None = None
    ) -> LineageGraph:
        return await asyncio.to_thread(self.sdk.get_lineage, version_id, direction, depth)


@pytest.fixture
async def own(
    nats_url: str, fresh_database: str, js: JetStreamContext, stream: EventStream
) -> AsyncIterator[Own]:
    name = f"lineage-{uuid.uuid4().hex[:8]}"
    projector = Projector(nats_url, fresh_database, name=name, batch_size=500, stream=stream)
    await projector.start()
    app = create_app(fresh_database, projector_name=name, min_seq_timeout=5.0)
    try:
        async with running(app) as http:
            stack = Own(js, stream, app, http, projector)
            transport = InProcessTransport(app, asyncio.get_running_loop())
            with Client("http://cairn", transport=transport) as stack.sdk:
                yield stack
    finally:
        await projector.stop()


async def test_a_cached_step_run_links_to_the_versions_it_reused(own: Own) -> None:
    runs = Runs(uuid.uuid4().hex[:8])
    first = runs.run("first")
    load_1, raw = runs.step(first, "load", {}, "raw")
    clean_1, cleaned = runs.step(first, "clean", {"raw": raw}, "cleaned")
    runs.finish(first)
    second = runs.run("second")
    runs.cached(second, "load", {}, (first, load_1), {"output": raw})
    clean_2 = runs.cached(second, "clean", {"raw": raw}, (first, clean_1), {"output": cleaned})
    _, model = runs.step(second, "train", {"cleaned": cleaned}, "model")
    runs.finish(second)
    await own.project(runs)

    # downstream of raw: both clean step runs read it; the cached one links to the very
    # version the first one stored, which the second run's train read
    down = await own.lineage(raw, "downstream")
    assert by_run(down) == (
        versions("raw", "cleaned", "model")
        | step_runs("clean@first", "clean@second", "train@second"),
        {
            ("raw", "clean@first", "raw"),
            ("clean@first", "cleaned", "output"),
            ("raw", "clean@second", "raw"),
            ("clean@second", "cleaned", "output"),
            ("cleaned", "train@second", "cleaned"),
            ("train@second", "model", "output"),
        },
    )
    cached = next(node for node in down.nodes if node.id == clean_2)
    assert (cached.status, cached.original_step_run_id) == ("cached", clean_1)
    assert (cached.run_id, cached.run_name) == (second, "second")

    # upstream of the model: what it was computed from, made in the first run
    assert by_run(await own.lineage(model)) == (
        versions("model", "cleaned", "raw")
        | step_runs("train@second", "clean@first", "load@first"),
        {
            ("train@second", "model", "output"),
            ("cleaned", "train@second", "cleaned"),
            ("clean@first", "cleaned", "output"),
            ("raw", "clean@first", "raw"),
            ("load@first", "raw", "output"),
        },
    )

    consumers = await asyncio.to_thread(own.sdk.list_consumers, raw)
    assert [(c.id, c.status, c.original_step_run_id) for c in consumers] == [
        (clean_1, "completed", None),
        (clean_2, "cached", clean_1),
    ]

    out = io.StringIO()
    tree, cut = _lineage_tree(down, 200)
    Console(file=out, width=200).print(tree)
    assert cut == []
    assert out.getvalue().splitlines() == [
        f"raw:1  ({raw})",
        "├── output = cleaned:1  ← clean (completed) in run first, reading it as 'raw'",
        "│   └── output = model:1  ← train (completed) in run second, reading it as 'cleaned'",
        f"└── output = cleaned:1  ← clean (cached) in run second, reusing step run {clean_1}, "
        "reading it as 'raw'  (its lineage is shown above)",
    ]


async def test_two_pipelines_linked_by_a_version_a_step_loaded(own: Own) -> None:
    runs = Runs(uuid.uuid4().hex[:8])
    prep = runs.run("prep")
    _, features = runs.step(prep, "featurize", {}, "features")
    runs.finish(prep)
    fit = runs.run("fit")
    step_id = runs.start(fit, "fit")  # no arguments: it loads the features itself
    model = runs.version("model", step_id, fit)
    runs.end(fit, step_id, {"output": model}, loaded={"features": features})
    runs.finish(fit)
    await own.project(runs)

    up = await own.lineage(model)
    assert by_run(up) == (
        versions("model", "features") | step_runs("fit@fit", "featurize@prep"),
        {
            ("fit@fit", "model", "output"),
            ("features", "fit@fit", "features"),
            ("featurize@prep", "features", "output"),
        },
    )
    assert {(n.name, n.run_id) for n in up.nodes if n.kind == "step_run"} == {
        ("fit", fit),
        ("featurize", prep),
    }
    down = await own.lineage(features, "downstream")
    assert by_run(down) == (
        versions("features", "model") | step_runs("fit@fit"),
        {("features", "fit@fit", "features"), ("fit@fit", "model", "output")},
    )


async def test_loops_end_at_any_depth(own: Own) -> None:
    """A step that loads what it saved, and two step runs each reading the other's output
    (only made-up or racing runs do that): every walk ends, at every depth."""
    runs = Runs(uuid.uuid4().hex[:8])
    run = runs.run("loops")
    _, source = runs.step(run, "source", {}, "source")
    snapshot_step = runs.start(run, "snapshot", {"source": source})
    snapshot = runs.version("snapshot", snapshot_step, run)
    runs.end(run, snapshot_step, {"output": snapshot}, loaded={"snapshot": snapshot})
    # ping reads pong's output and pong reads ping's: made-up ids close the loop
    ping_out, pong_out = f"av-{runs.tag}-ping-1", f"av-{runs.tag}-pong-1"
    for name, reads, out in (("ping", pong_out, ping_out), ("pong", ping_out, pong_out)):
        runs.start(run, name, {"other": reads})
        runs.version(name, f"step-{run}-{name}", run)
        runs.end(run, f"step-{run}-{name}", {"output": out})
    runs.finish(run)
    await own.project(runs)

    snapshot_up = (
        versions("snapshot", "source") | step_runs("snapshot@loops", "source@loops"),
        {
            ("snapshot@loops", "snapshot", "output"),
            ("snapshot", "snapshot@loops", "snapshot"),
            ("source", "snapshot@loops", "source"),
            ("source@loops", "source", "output"),
        },
    )
    loop = (
        versions("ping", "pong") | step_runs("ping@loops", "pong@loops"),
        {
            ("ping@loops", "ping", "output"),
            ("pong", "ping@loops", "other"),
            ("pong@loops", "pong", "output"),
            ("ping", "pong@loops", "other"),
        },
    )
    for depth in (None, 2, 3, 65, 1000, 2**63 - 1):  # over 64 deep: bounded by what is reachable
        assert by_run(await own.lineage(snapshot, depth=depth)) == snapshot_up
        assert by_run(await own.lineage(ping_out, depth=depth)) == loop
        assert by_run(await own.lineage(ping_out, "downstream", depth)) == loop
        down = by_run(await own.lineage(snapshot, "downstream", depth))
        assert down == (
            versions("snapshot") | step_runs("snapshot@loops"),
            {("snapshot", "snapshot@loops", "snapshot"), ("snapshot@loops", "snapshot", "output")},
        )
    assert by_run(await own.lineage(ping_out, "upstream", 1)) == (
        versions("ping", "pong") | step_runs("ping@loops"),
        {("ping@loops", "ping", "output"), ("pong", "ping@loops", "other")},
    )
