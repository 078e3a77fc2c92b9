"""Holding the publisher's wake-ups (steps served from cache): events wait, claims do not."""

import time
from pathlib import Path

from cairn.publishing import EventPublisher
from cairn_events import EventStream, RunFinished
from factories import artifact_version


def test_held_events_wait_for_release_and_a_claim_is_never_held(
    nats_url: str, stream: EventStream, tmp_path: Path
) -> None:
    publisher = EventPublisher(nats_url, tmp_path / "spool", stream=stream).start()
    try:
        publisher.flush(5)
        before = publisher.last_seq
        publisher.hold()
        publisher.publish(RunFinished(run_id="r-held", status="completed", duration_s=0.1))
        time.sleep(0.3)
        assert publisher.last_seq == before  # held: not sent yet

        template = artifact_version(artifact_version_id="av-held", name="held-claim", version="")
        claimed = publisher.claim(template, None).result(timeout=5)  # sent while holding
        assert claimed.version == "1"
        assert publisher.last_seq > before  # the held event went out with the claim

        publisher.hold()
        publisher.publish(RunFinished(run_id="r-held-2", status="completed", duration_s=0.1))
        seq = publisher.last_seq
        assert publisher.flush(5)  # a flush releases what is held
        assert publisher.last_seq > seq
    finally:
        publisher.close()
