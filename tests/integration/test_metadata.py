"""Metadata end to end against the real stack: every calling form of the seed's three
functions and log_metadata, special types, cards, history, cached steps, extraction.

No ``from __future__ import annotations``: steps annotate with locals.
"""

import math
import os
from typing import Annotated, Any

import httpx
import pytest
from cairn import (
    CairnError,
    Client,
    NotFoundError,
    get_step_context,
    log_artifact_metadata,
    log_metadata,
    log_step_metadata,
    pipeline,
    save_artifact,
    step,
)
from cairn.metadata import DType, Path, StorageSize, Uri
from cairn.metadata.values import MetadataValueError
from cairn_events.metadata import MAX_VALUE_BYTES

pytestmark = pytest.mark.usefixtures("cairn_stack")


def _value(entity: Any, key: str) -> Any:
    return entity.run_metadata[key].value


def test_inside_a_step_with_one_output_it_attaches_to_that_output_with_special_types(
    uid: str,
) -> None:
    @step
    def make() -> Annotated[list[int], f"rows_{uid}"]:
        log_artifact_metadata(
            metadata={
                "row_count": 3,
                "source": Uri("gs://bucket/source.csv"),
                "script": Path("/scripts/preprocess.py"),
                "column_types": {"age": DType("int"), "income": DType("float")},
                "size": StorageSize(2_500_000),
                "pair": (1, "a"),
                "labels": {"x", "y"},
                "nan": math.nan,
                "inf": -math.inf,
                "none": None,
            }
        )
        return [1, 2, 3]

    @pipeline(name=f"meta_one_{uid}", enable_cache=False)
    def p() -> None:
        make()

    run = p()
    version = Client().get_artifact_version(f"rows_{uid}")
    metadata = version.run_metadata
    assert metadata["row_count"].value == 3
    assert (
        type(metadata["source"].value) is Uri
        and metadata["source"].value == "gs://bucket/source.csv"
    )
    assert type(metadata["script"].value) is Path
    assert metadata["column_types"].value == {"age": "int", "income": "float"}
    assert type(metadata["column_types"].value["age"]) is DType
    assert type(metadata["size"].value) is StorageSize and metadata["size"].value == 2_500_000
    assert metadata["pair"].value == (1, "a")
    assert metadata["labels"].value == {"x", "y"}
    assert math.isnan(metadata["nan"].value) and metadata["inf"].value == -math.inf
    assert metadata["none"].value is None
    entry = metadata["row_count"]
    assert entry.step_run_id == run.steps["make"].id
    assert entry.pid == os.getpid() and entry.host and entry.user
    # the materializer's own: storage size and length
    assert type(metadata["storage_size"].value) is StorageSize
    assert metadata["length"].value == 3


def test_over_http_the_type_tag_comes_with_the_value(uid: str, cairn_stack: Any) -> None:
    saved = save_artifact(7, f"tagged_{uid}")
    log_artifact_metadata(
        {"size": StorageSize(12), "ratio": math.inf}, artifact_name=f"tagged_{uid}"
    )
    Client().get_artifact_version(f"tagged_{uid}")  # waits for this process's events
    body = httpx.get(f"{cairn_stack.api_url}/metadata/artifact_version/{saved.id}").json()
    assert body["run_metadata"]["size"]["type"] == "StorageSize"
    assert body["run_metadata"]["size"]["value"] == 12
    assert body["run_metadata"]["ratio"] == {
        **body["run_metadata"]["ratio"],
        "type": "float",
        "value": "inf",
    }


def test_several_outputs_need_a_name_and_a_name_picks_one(uid: str) -> None:
    @step
    def two_unnamed() -> tuple[int, int]:
        log_artifact_metadata({"k": 1})
        return 1, 2

    @pipeline(name=f"meta_two_bad_{uid}", enable_cache=False)
    def bad() -> None:
        two_unnamed()

    with pytest.raises(CairnError, match=r"has 2 outputs \(output_0, output_1\); say which"):
        bad()

    @step
    def two() -> tuple[Annotated[int, f"a_{uid}"], Annotated[int, f"b_{uid}"]]:
        log_artifact_metadata({"which": "b"}, artifact_name=f"b_{uid}")
        return 1, 2

    @pipeline(name=f"meta_two_{uid}", enable_cache=False)
    def good() -> None:
        two()

    good()
    client = Client()
    assert _value(client.get_artifact_version(f"b_{uid}"), "which") == "b"
    assert "which" not in client.get_artifact_version(f"a_{uid}").run_metadata


def test_a_name_inside_a_step_may_be_an_artifact_saved_earlier(uid: str) -> None:
    earlier = save_artifact("x", f"earlier_{uid}")

    @step
    def tag_it() -> int:
        log_artifact_metadata(
            {"seen_by": get_step_context().step_name}, artifact_name=f"earlier_{uid}"
        )
        return 1

    @pipeline(name=f"meta_earlier_{uid}", enable_cache=False)
    def p() -> None:
        tag_it()

    p()
    assert _value(Client().get_artifact_version(earlier.id), "seen_by") == "tag_it"


def test_outside_a_step_a_name_means_its_latest_version_unless_one_is_given(uid: str) -> None:
    name = f"outside_{uid}"
    first = save_artifact(1, name)
    second = save_artifact(2, name)
    log_artifact_metadata({"latest": True}, artifact_name=name)
    log_artifact_metadata({"first": True}, artifact_name=name, artifact_version=first.version)
    third = save_artifact(3, name)
    log_artifact_metadata({"newest": True}, artifact_name=name)  # its own save is the latest
    client = Client()
    assert set(client.get_artifact_version(name, second.version).run_metadata) >= {"latest"}
    assert "first" in client.get_artifact_version(name, first.version).run_metadata
    on_first = client.get_artifact_version(name, first.version).run_metadata
    assert "latest" not in on_first and "newest" not in on_first
    assert "newest" in client.get_artifact_version(name, third.version).run_metadata
    with pytest.raises(CairnError, match="needs artifact_name"):
        log_artifact_metadata({"a": 1})
    with pytest.raises(NotFoundError, match=f"No artifact named 'never_{uid}'"):
        log_artifact_metadata({"a": 1}, artifact_name=f"never_{uid}")
    with pytest.raises(NotFoundError, match="has no version '99'"):
        log_artifact_metadata({"a": 1}, artifact_name=name, artifact_version=99)


def test_a_version_made_by_another_process_becomes_the_latest(uid: str) -> None:
    import subprocess
    import sys

    name = f"other_proc_{uid}"
    save_artifact(1, name)
    log_artifact_metadata({"one": 1}, artifact_name=name)  # watches the name from now on
    subprocess.run(
        [sys.executable, "-c", f"import cairn; cairn.save_artifact(2, {name!r})"],
        check=True,
        timeout=120,
        env=os.environ,
    )
    client = Client()
    newest = client.get_artifact_version(name)
    assert newest.version == "2"
    for _ in range(200):  # the watch delivers the claim asynchronously: bounded wait
        log_artifact_metadata({"probe": 1}, artifact_name=name)
        if "probe" in client.get_artifact_version(name, "2").run_metadata:
            break
        import time

        time.sleep(0.05)
    assert "probe" in client.get_artifact_version(name, "2").run_metadata


def test_step_metadata_inside_outside_and_on_the_run(uid: str) -> None:
    @step
    def train() -> int:
        log_step_metadata({"evaluation_metrics": {"accuracy": 0.9, "recall": 0.8}})
        return 1

    @pipeline(name=f"meta_step_{uid}", enable_cache=False)
    def p() -> None:
        train()

    first = p()
    second = p()
    client = Client()
    step_run = client.get_pipeline_run(second.id).steps["train"]
    assert _value(step_run, "evaluation_metrics") == {"accuracy": 0.9, "recall": 0.8}
    run = client.get_pipeline_run(second.id)
    assert _value(run, "train::evaluation_metrics") == {"accuracy": 0.9, "recall": 0.8}

    # outside: the latest run of the pipeline, or the run named
    log_step_metadata(
        {"later": 1}, step_name="train", pipeline_name_id_or_prefix=f"meta_step_{uid}"
    )
    log_step_metadata({"older": 1}, step_name="train", run_id=first.id)
    assert "later" in client.get_pipeline_run(second.id).steps["train"].run_metadata
    assert "later" not in client.get_pipeline_run(first.id).steps["train"].run_metadata
    assert "older" in client.get_pipeline_run(first.id).steps["train"].run_metadata
    # a step run's id as run_id (the seed's "my_step_run_id")
    log_step_metadata({"by_id": 1}, run_id=step_run.id)
    assert "by_id" in client.get_run_step(step_run.id).run_metadata

    with pytest.raises(NotFoundError, match="has no step 'nope'; its steps are train"):
        log_step_metadata({"a": 1}, step_name="nope", run_id=first.id)
    with pytest.raises(CairnError, match="needs step_name"):
        log_step_metadata({"a": 1})
    with pytest.raises(NotFoundError):
        log_step_metadata({"a": 1}, step_name="train", pipeline_name_id_or_prefix=f"nope_{uid}")


def test_log_metadata_with_zenml_keywords(uid: str) -> None:
    @step
    def s() -> int:
        return 5

    @pipeline(name=f"meta_kw_{uid}", enable_cache=False)
    def p() -> None:
        s()

    run = p()
    version = run.steps["s"].output
    log_metadata({"on_run": 1}, run_id_name_or_prefix=run.name)
    log_metadata({"on_step": 1}, step_name="s", run_id_name_or_prefix=run.id)
    log_metadata({"on_step_id": 1}, step_id=run.steps["s"].id)
    log_metadata({"on_version": 1}, artifact_version_id=version.id)
    log_metadata({"on_name": 1}, artifact_name=version.name, artifact_version=version.version)
    client = Client()
    again = client.get_pipeline_run(run.id)
    assert "on_run" in again.run_metadata
    assert {"on_step", "on_step_id"} <= set(again.steps["s"].run_metadata)
    assert {"on_version", "on_name"} <= set(client.get_artifact_version(version.id).run_metadata)
    with pytest.raises(CairnError, match="targets of a step run and an artifact version"):
        log_metadata({"a": 1}, step_id=run.steps["s"].id, artifact_version_id=version.id)
    with pytest.raises(CairnError, match="outside a step and names nothing"):
        log_metadata({"a": 1})


def test_history_keeps_every_value_and_reading_gives_the_latest(uid: str) -> None:
    name = f"history_{uid}"
    save_artifact(1, name)
    for value in (0.1, 0.2, 0.3):
        log_artifact_metadata({"loss": value}, artifact_name=name)
    client = Client()
    version = client.get_artifact_version(name)
    assert _value(version, "loss") == 0.3
    history = client.get_metadata_history(version, "loss")
    assert [entry.value for entry in history] == [0.1, 0.2, 0.3]
    assert all(entry.pid == os.getpid() and entry.step_run_id is None for entry in history)
    assert history[0].logged_at <= history[1].logged_at <= history[2].logged_at
    everything = client.get_metadata_history(version)
    assert {entry.key for entry in everything} >= {"loss", "storage_size"}
    with pytest.raises(TypeError, match="takes an artifact version"):
        client.get_metadata_history("not an entity", "loss")


def test_a_cached_step_shows_the_original_steps_metadata(uid: str) -> None:
    @step
    def expensive(x: int) -> int:
        log_step_metadata({"trained_on": f"{uid}-{x}"})
        log_artifact_metadata({"quality": "high"})
        return x * 2

    @pipeline(name=f"meta_cached_{uid}")
    def p() -> None:
        expensive(21)

    first = p()
    second = p()
    client = Client()
    cached = client.get_pipeline_run(second.id).steps["expensive"]
    assert cached.status == "cached"
    assert _value(cached, "trained_on") == f"{uid}-21"
    assert cached.run_metadata["trained_on"].step_run_id == first.steps["expensive"].id
    assert _value(client.get_pipeline_run(second.id), "expensive::trained_on") == f"{uid}-21"
    assert _value(cached.output, "quality") == "high"
    history = client.get_metadata_history(cached, "trained_on")
    assert [entry.value for entry in history] == [f"{uid}-21"]


def test_a_dict_of_dicts_is_grouped_into_cards(uid: str) -> None:
    name = f"cards_{uid}"
    version = save_artifact(1, name)
    log_artifact_metadata(
        {
            "model_metrics": {"accuracy": 0.95, "precision": 0.92},
            "data_details": {"dataset_size": StorageSize(1_500_000), "features": ["a", "b"]},
            "plain": "x",
        },
        artifact_name=name,
    )
    Client().get_artifact_version(name)  # caught up
    found = Client().get_metadata(version)
    titles = [card.title for card in found.cards]
    assert titles[:2] == ["data_details", "model_metrics"] and titles[-1] == "Uncategorized"
    details = next(card for card in found.cards if card.title == "data_details")
    assert details.entries["dataset_size"] == {"type": "StorageSize", "value": 1_500_000}
    uncategorized = found.cards[-1].entries
    assert "plain" in uncategorized and "storage_size" in uncategorized


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({}, "metadata is empty"),
        ([("a", 1)], "must be a dict"),
        ({"": 1}, "metadata key '' is empty"),
        ({"a\x07b": 1}, "contains a control character"),
        ({"k" * 300: 1}, "has 300 characters; the limit is 255"),
        ({1: 1}, "is a int; keys are strings"),
        (
            {"obj": object()},
            "metadata key 'obj': a value of type builtins.object cannot be recorded",
        ),
        ({"d": {1: "a"}}, "the dict has the key 1 of type int; dict keys must be str"),
        ({"nul": "a\x00b"}, "NUL character"),
        ({"big": "x" * (MAX_VALUE_BYTES + 1)}, f"the limit is {MAX_VALUE_BYTES} bytes per key"),
        ({"deep": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}, "nests deeper than"),
    ],
)
def test_values_that_cannot_be_recorded_are_refused_naming_the_key(
    metadata: Any, message: str, uid: str
) -> None:
    save_artifact(1, f"refuse_{uid}")
    with pytest.raises(MetadataValueError, match=message):
        log_artifact_metadata(metadata, artifact_name=f"refuse_{uid}")


def test_a_self_referencing_value_is_refused() -> None:
    from cairn.metadata.values import encode_metadata

    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(MetadataValueError, match="contains itself"):
        encode_metadata({"loop": loop})


def test_materializers_extract_metadata_on_save(uid: str) -> None:
    import numpy as np
    import pandas as pd

    client = Client()
    text = save_artifact("hello", f"text_{uid}")
    assert _value(client.get_artifact_version(text.id), "length") == 5
    array = save_artifact(np.zeros((3, 4), dtype="float32"), f"array_{uid}")
    found = client.get_artifact_version(array.id)
    assert _value(found, "shape") == (3, 4)
    assert _value(found, "dtype") == "float32" and type(_value(found, "dtype")) is DType
    assert type(_value(found, "storage_size")) is StorageSize and _value(found, "storage_size") > 0
    data = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    frame = save_artifact(data, f"frame_{uid}")
    found = client.get_artifact_version(frame.id)
    assert _value(found, "shape") == (2, 2)
    assert _value(found, "columns") == ["a", "b"]
    assert _value(found, "dtype") == {"a": "int64", "b": str(data.dtypes["b"])}
    assert type(_value(found, "memory_size")) is StorageSize
    series = save_artifact(pd.Series([1.0, 2.0], name="s"), f"series_{uid}")
    found = client.get_artifact_version(series.id)
    assert _value(found, "shape") == (2,) and _value(found, "dtype") == "float64"
    listed = save_artifact([1, 2, 3, 4], f"list_{uid}")
    assert _value(client.get_artifact_version(listed.id), "length") == 4


def test_cairn_artifact_describe_prints_the_cards_as_tables(uid: str) -> None:
    from cairn_services.cli import app
    from typer.testing import CliRunner

    name = f"describe_{uid}"
    save_artifact(1, name)
    log_artifact_metadata(
        {"model_metrics": {"accuracy": 0.95}, "source": Uri("s3://b/k"), "size": StorageSize(2048)},
        artifact_name=name,
    )
    Client().get_artifact_version(name)
    result = CliRunner().invoke(app, ["artifact", "describe", name], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert (
        "model_metrics" in result.output and "accuracy" in result.output and "0.95" in result.output
    )
    assert "Uncategorized" in result.output
    assert "s3://b/k (Uri)" in result.output and "2.0 KiB (StorageSize)" in result.output


async def test_a_forged_metadata_event_is_dead_lettered_and_the_next_one_lands(
    uid: str, nats_url: str, database_url: str
) -> None:
    import asyncio

    import asyncpg
    import nats
    from cairn_events import DEFAULT_STREAM, EntityKind, MetadataLogged, encode

    entity = f"forged-{uid}"
    forged = MetadataLogged(
        entity_kind=EntityKind.RUN,
        entity_id=entity,
        values={"bad": {"type": "StorageSize", "value": "lots"}},
    )
    good = MetadataLogged(
        entity_kind=EntityKind.RUN, entity_id=entity, values={"good": {"type": "int", "value": 1}}
    )
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for event in (forged, good):
            await js.publish(DEFAULT_STREAM.subject_of(event), encode(event), timeout=5)
    finally:
        await nc.close()
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(200):  # bounded: 10 s
            landed = await conn.fetchval(
                "SELECT count(*) FROM metadata_latest WHERE entity_id = $1", entity
            )
            if landed:
                break
            await asyncio.sleep(0.05)
        keys = await conn.fetch("SELECT key FROM metadata_latest WHERE entity_id = $1", entity)
        assert [row["key"] for row in keys] == ["good"]
        reasons = await conn.fetch(
            "SELECT reason FROM dead_letters WHERE position(convert_to($1, 'UTF8') in data) > 0",
            forged.event_id,
        )
        assert len(reasons) == 1 and "'bad'" in reasons[0]["reason"]
        assert "StorageSize whose value is no integer" in reasons[0]["reason"]
    finally:
        await conn.close()


async def test_a_replay_into_a_new_database_gives_the_same_metadata(
    uid: str, nats_url: str, database_url: str, fresh_database: str
) -> None:
    import asyncio

    import asyncpg
    from factories import replay_into

    name = f"replayed_{uid}"

    def log_some() -> None:
        save_artifact([1, 2], name)
        for value in (1, 2, 3):
            log_artifact_metadata({"n": value, "s": StorageSize(value)}, artifact_name=name)
        Client().get_artifact_version(name)  # projected live

    await asyncio.to_thread(log_some)
    await replay_into(nats_url, fresh_database)
    latest_n = "SELECT m.value::text FROM metadata_latest m JOIN artifact_versions av ON "
    latest_n += "av.id = m.entity_id WHERE av.name = $1 AND m.key = 'n'"
    conn = await asyncpg.connect(fresh_database)
    try:
        assert await conn.fetchval(latest_n, name) == "3"  # the newest in the log
    finally:
        await conn.close()
    queries = [
        "SELECT m.key, m.type, m.value::text, m.event_id FROM metadata_latest m "
        "JOIN artifact_versions av ON av.id = m.entity_id WHERE av.name = $1 ORDER BY m.key",
        "SELECT m.key, m.value::text, m.event_id FROM metadata_history m "
        "JOIN artifact_versions av ON av.id = m.entity_id WHERE av.name = $1 "
        "ORDER BY m.event_id, m.key",
    ]
    for query in queries:
        rows = []
        for dsn in (fresh_database, database_url):
            conn = await asyncpg.connect(dsn)
            try:
                rows.append([tuple(r) for r in await conn.fetch(query, name)])
            finally:
                await conn.close()
        replayed, live = rows
        assert replayed and replayed == live


def test_log_metadata_infers_the_output_of_the_running_step(uid: str) -> None:
    @step
    def produce() -> Annotated[int, f"inferred_{uid}"]:
        log_metadata({"inferred": True}, infer_artifact=True)
        log_metadata({"picked": True}, artifact_name=f"inferred_{uid}", infer_artifact=True)
        log_metadata({"on_step": True})  # nothing named: the step run
        return 1

    @pipeline(name=f"meta_infer_{uid}", enable_cache=False)
    def p() -> None:
        produce()

    run = p()
    client = Client()
    version = client.get_artifact_version(f"inferred_{uid}")
    assert {"inferred", "picked"} <= set(version.run_metadata)
    assert "on_step" in client.get_run_step(run.steps["produce"].id).run_metadata
    assert "on_step" not in version.run_metadata
    with pytest.raises(CairnError, match="needs artifact_name"):
        log_metadata({"a": 1}, infer_artifact=True)
