"""The event catalogue: round trips, envelope, subjects, and upgrading old shapes."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import cairn_events as ev
import msgspec
import pytest
from cairn_events import EventCodec, EventDecodeError


def _samples() -> list[ev.Event]:
    now = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    return [
        ev.RunStarted(
            run_id="r",
            run_name="p-1",
            pipeline_name="p",
            started_at=now,
            parameters={"n": 3, "xs": [1, 2]},
            substitutions={"date": "2026_01_02"},
        ),
        ev.RunFinished(
            run_id="r", status="failed", duration_s=1.5, error="ValueError: x", failed_step="s"
        ),
        ev.StepStarted(
            run_id="r",
            step_run_id="s1",
            step_name="s",
            function="m:f",
            parameters={"a": None},
            inputs={"x": "a1"},
        ),
        ev.StepFinished(
            run_id="r", step_run_id="s1", step_name="s", duration_s=0.1, outputs={"output": "a2"}
        ),
        ev.StepFailed(
            run_id="r",
            step_run_id="s1",
            step_name="s",
            duration_s=0.1,
            error_type="ValueError",
            error_message="bad",
        ),
        ev.ArtifactMaterialized(
            artifact_version_id="a2",
            name="n",
            version="1",
            numeric_count=1,
            uri="/s/n/a2",
            artifact_type="data",
            data_type="builtins.int",
            materializer="m.M",
            content_hash="sha256:00",
            size=2,
        ),
        ev.CacheHit(
            run_id="r",
            step_run_id="s2",
            step_name="s",
            cache_key="k" * 32,
            source_run_id="r0",
            source_step_run_id="s0",
            outputs={"output": "a2"},
        ),
        ev.CacheMissed(
            run_id="r",
            step_run_id="s1",
            step_name="s",
            cache_key="k" * 32,
            reasons=["parameter 'a' changed from 1 to 2"],
            compared_with="s0",
            compared_run="p-0",
        ),
        ev.CacheStored(
            cache_key="k" * 32,
            lineage_key="l" * 32,
            pipeline_name="p",
            step_name="s",
            run_id="r",
            step_run_id="s1",
            outputs={"output": "a2"},
            components={"parameters": {"a": 1}},
            expires_at=now,
        ),
        ev.CacheLeased(cache_key="k" * 32, run_id="r", step_run_id="s1", step_name="s", until=now),
        ev.CacheReleased(cache_key="k" * 32, run_id="r", step_run_id="s1"),
        ev.MetadataLogged(
            entity_kind=ev.EntityKind.ARTIFACT_VERSION,
            entity_id="av1",
            values={"size": {"type": "StorageSize", "value": 10}},
            step_run_id="s1",
        ),
    ]


@pytest.mark.parametrize("event", _samples(), ids=lambda e: e.tag)
def test_every_event_round_trips_through_json(event: ev.Event) -> None:
    data = ev.encode(event)
    assert msgspec.json.decode(data)["type"] == event.tag
    assert ev.decode(data) == event


def test_envelope_carries_uuid7_time_producer_and_schema() -> None:
    first, second = (ev.RunFinished(run_id="r", status="completed", duration_s=0) for _ in range(2))
    assert first.event_id != second.event_id
    assert first.event_id[14] == "7"  # UUID version nibble
    assert first.occurred_at.tzinfo is not None
    assert first.producer.pid > 0 and first.producer.host
    assert first.schema == 1


def test_unknown_type_and_garbage_are_decode_errors_with_reasons() -> None:
    with pytest.raises(EventDecodeError, match="unknown event type 'nope'"):
        ev.decode(b'{"type": "nope"}')
    with pytest.raises(EventDecodeError, match="not an event envelope"):
        ev.decode(b"not json")
    with pytest.raises(EventDecodeError, match="invalid run.finished"):
        ev.decode(b'{"type": "run.finished", "run_id": 3}')


def test_event_from_a_newer_writer_says_to_upgrade() -> None:
    data = ev.encode(_samples()[1]).replace(b'"schema":1', b'"schema":9')
    with pytest.raises(EventDecodeError, match="newer than this reader's"):
        ev.decode(data)


class ModelRegistered(ev.Event, frozen=True, kw_only=True, tag="model.registered"):
    """A test event at schema 3: v1 had ``title``, v2 renamed it ``name``, v3 added ``stage``."""

    schema: int = 3
    name: str
    stage: str


def test_upcasters_lift_old_shapes_step_by_step() -> None:
    codec = EventCodec([ModelRegistered])
    codec.register_upcaster("model.registered", 1, lambda raw: {**raw, "name": raw.pop("title")})
    codec.register_upcaster("model.registered", 2, lambda raw: {**raw, "stage": "none"})
    old = (
        b'{"type":"model.registered","event_id":"e","occurred_at":"2026-01-01T00:00:00Z",'
        b'"producer":{"host":"h","pid":1,"user":"u"},"schema":1,"title":"clf"}'
    )
    upgraded = codec.decode(old)
    assert isinstance(upgraded, ModelRegistered)
    assert (upgraded.name, upgraded.stage, upgraded.schema) == ("clf", "none", 3)
    current = ModelRegistered(name="x", stage="prod")
    assert codec.decode(codec.encode(current)) == current


def test_a_missing_upcaster_is_named() -> None:
    codec = EventCodec([ModelRegistered])
    with pytest.raises(
        EventDecodeError, match="no upcaster for model.registered from schema 1 to 2"
    ):
        codec.decode(b'{"type":"model.registered","schema":1,"title":"x"}')


@pytest.mark.parametrize("name", ["plain", "p::step::output", "with space/and.dots*>", "ünïcode"])
def test_names_become_valid_reversible_subject_tokens(name: str) -> None:
    token = ev.token(name)
    assert not set(token) & set(" .*>\t")
    assert ev.untoken(token) == name
    subject = ev.DEFAULT_STREAM.subject(ev.artifact_version_path(name, "3"))
    assert _matches(ev.DEFAULT_STREAM.subject(ev.artifact_versions_path(name)), subject)


def test_subject_of_routes_by_family_under_the_streams_root() -> None:
    by_type = {type(e): e for e in _samples()}
    run, finished = by_type[ev.RunStarted], by_type[ev.RunFinished]
    step, done, failed = (by_type[t] for t in (ev.StepStarted, ev.StepFinished, ev.StepFailed))
    artifact = by_type[ev.ArtifactMaterialized]
    assert ev.subject_of(run) == ev.subject_of(finished) == "cairn.run.r"
    assert ev.subject_of(step) == ev.subject_of(done) == ev.subject_of(failed) == "cairn.step.r"
    assert ev.subject_of(artifact) == f"cairn.artifact.{ev.token('n')}.{ev.token('1')}"
    mine = ev.EventStream(name="MINE", root="mine")
    assert mine.subject_of(run) == ev.subject_of(run, mine) == "mine.run.r"
    assert mine.subjects == ["mine.>"] and _matches(mine.subjects[0], mine.subject_of(artifact))
    assert not _matches(ev.DEFAULT_STREAM.subjects[0], mine.subject_of(run))


def test_the_catalogue_is_one_list_and_every_event_in_it_has_a_subject_rule() -> None:
    assert typing.get_args(ev.AnyEvent) == ev.EVENT_TYPES
    tags = [t.__struct_config__.tag for t in ev.EVENT_TYPES]
    assert len(set(tags)) == len(tags)
    samples = {type(e): e for e in _samples()}
    assert set(samples) == set(ev.EVENT_TYPES)  # a new event type needs a sample here
    for event in samples.values():
        family = ev.subject_of(event).split(".")[1]
        assert family in set(ev.Family), (event.tag, family)


def test_an_event_class_without_a_subject_rule_cannot_be_routed() -> None:
    with pytest.raises(NotImplementedError, match="ModelRegistered has no subject rule"):
        ev.subject_of(ModelRegistered(name="x", stage="prod"))


#: One of every path the grammar has, about one artifact name where it takes one.
_NAME = "team/model.v2 *"
_PATHS = {
    ev.Family.RUN: ev.run_path("0190c3f2-aaaa-7bbb-8ccc-000000000001"),
    ev.Family.STEP: ev.step_path("0190c3f2-aaaa-7bbb-8ccc-000000000001"),
    ev.Family.ARTIFACT: ev.artifact_version_path(_NAME, "7"),
    ev.Family.METADATA: ev.metadata_path("artifact_version", "0190c3f2-aaaa-7bbb-8ccc-0000000002"),
    ev.Family.TAG: ev.tag_path(_NAME),
    ev.Family.PRUNE: ev.prune_path(_NAME),
    ev.Family.CACHE: ev.cache_path("sha256:" + "0" * 64),
    ev.Family.MODEL: ev.model_version_path(_NAME, "7"),
}


def test_the_grammar_has_a_path_for_every_family_and_each_starts_with_its_family() -> None:
    assert set(_PATHS) == set(ev.Family)
    for family, path in _PATHS.items():
        tokens = path.split(".")
        assert tokens[0] == family and all(tokens), path
        assert not set(path) & set(" *>\t\x00"), path


def test_a_version_claim_compares_over_version_subjects_only() -> None:
    """Nothing but a new version may land on the wildcard a claim of the name sets over."""
    stream = ev.DEFAULT_STREAM
    claimed_over = stream.subject(ev.artifact_versions_path(_NAME))
    for family, path in _PATHS.items():
        assert _matches(claimed_over, stream.subject(path)) is (family == ev.Family.ARTIFACT)
    for other in (_NAME + "x", _NAME[:-1], "team", "team/model"):
        assert not _matches(claimed_over, stream.subject(ev.artifact_version_path(other, "7")))
        assert not _matches(claimed_over, stream.subject(ev.tag_path(other)))


def test_dead_letters_live_outside_the_event_stream() -> None:
    for stream in (ev.DEFAULT_STREAM, ev.EventStream.named("T_1f3a")):
        letter = stream.dead_letter_subject("main")
        assert _matches(stream.dead_letter_subjects[0], letter)
        assert not _matches(stream.subjects[0], letter)
        assert stream.dead_letter_name != stream.name
    assert ev.DEFAULT_STREAM.dead_letter_name == "CAIRN_DEAD_LETTERS"


@pytest.mark.parametrize(
    ("name", "root", "problem"),
    [
        ("", "cairn", "stream name"),
        ("A.B", "cairn", "stream name"),
        ("CAIRN", "", "subject root"),
        ("CAIRN", "a.b", "subject root"),
        ("CAIRN", "Cairn", "subject root"),
        ("CAIRN", "ca>", "subject root"),
    ],
)
def test_a_stream_refuses_names_and_roots_that_break_the_grammar(
    name: str, root: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        ev.EventStream(name=name, root=root)


def test_a_stream_declares_its_jetstream_configuration_once() -> None:
    stream = ev.EventStream.named("T_ab12")
    assert (stream.name, stream.root) == ("T_ab12", "t_ab12")
    config = stream.config(allow_batched=True)
    assert config["name"] == "T_ab12" and config["subjects"] == ["t_ab12.>"]
    assert config["duplicate_window"] == ev.DUPLICATE_WINDOW_S and config["allow_batched"]
    assert stream.dead_letter_config()["subjects"] == ["t_ab12-dead-letter.>"]
    assert ev.EventStream.named("OV_X").root != ev.EventStream.named("OV-X").root
    with pytest.raises(ValueError, match="stream name '1ST' makes no subject root.*root="):
        ev.EventStream.named("1ST")


@pytest.mark.parametrize("kind", ["", "artifact.version", "*", ">", "a b", "Run", "x" * 41])
def test_a_metadata_entity_kind_is_one_plain_subject_token(kind: str) -> None:
    with pytest.raises(ValueError, match="entity kind .* must be a lowercase word"):
        ev.metadata_path(kind, "some-id")


def test_an_artifact_versions_record_names_every_field_of_the_record() -> None:
    """The one rename from the event: a field missing there would be silently lost."""
    [artifact] = [e for e in _samples() if isinstance(e, ev.ArtifactMaterialized)]
    record = artifact.record()
    assert set(record) == set(ev.ArtifactVersionRecord.__struct_fields__)
    assert msgspec.convert(record, ev.ArtifactVersionRecord).id == artifact.artifact_version_id


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(got) == len(want)


def test_only_positive_integers_are_numbered_versions() -> None:
    assert ev.is_numeric_version("1") and ev.is_numeric_version("200")
    assert not any(map(ev.is_numeric_version, ["0", "01", "v1", "1.0", "prod", ""]))
