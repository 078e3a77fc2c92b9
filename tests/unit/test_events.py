"""The event catalogue: round trips, envelope, subjects, and upgrading old shapes."""

from __future__ import annotations

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
    assert ev.artifact_version_subject(name, "3").startswith(ev.artifact_name_prefix(name) + ".")


def test_subject_of_routes_by_family() -> None:
    run, _, step, *_, artifact = _samples()
    assert ev.subject_of(run) == "cairn.run.r"
    assert ev.subject_of(step) == "cairn.step.r"
    assert ev.subject_of(artifact) == ev.artifact_version_subject("n", "1")


def test_only_positive_integers_are_numbered_versions() -> None:
    assert ev.is_numeric_version("1") and ev.is_numeric_version("200")
    assert not any(map(ev.is_numeric_version, ["0", "01", "v1", "1.0", "prod", ""]))
