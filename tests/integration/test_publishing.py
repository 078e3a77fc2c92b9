"""Publishing survives NATS going away mid-run; no server at all gives one clear message."""


import os
import subprocess
import sys
import time
from typing import Annotated

import pytest
from cairn import Client, pipeline, step
from cairn.tracking import get_tracker
from cairn_services.stack import NatsServer
from cairn_services.stack.ports import free_port


@pytest.mark.usefixtures("cairn_stack")
def test_nats_stopped_during_a_run_loses_nothing(nats_server: NatsServer, uid: str) -> None:
    @step
    def before() -> Annotated[int, f"before_{uid}"]:
        return 1

    @step
    def stop_nats(x: int) -> Annotated[int, f"during_a_{uid}"]:
        nats_server.stop()
        return x + 1

    @step
    def while_down(x: int) -> Annotated[int, f"during_b_{uid}"]:
        return x + 1

    @step
    def start_nats(x: int) -> Annotated[int, f"after_{uid}"]:
        deadline = time.monotonic() + 10  # the client notices the outage asynchronously
        while get_tracker().publisher.spooled == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert get_tracker().publisher.spooled > 0, "events should have been spooled"
        nats_server.start()
        return x + 1

    @pipeline(name=f"outage_{uid}")
    def p() -> None:
        start_nats(while_down(stop_nats(before())))

    run = p()
    assert [s.output.version for s in run.steps.values()] == ["1", "1", "1", "1"]
    stored = Client().get_pipeline_run(run.id)
    assert stored.status == "completed"
    assert list(stored.steps) == ["before", "stop_nats", "while_down", "start_nats"]
    assert all(s.status == "completed" for s in stored.steps.values())
    assert stored.steps["start_nats"].output.load() == 4
    assert get_tracker().publisher.spooled == 0


def test_no_server_at_all_gives_one_clear_message(tmp_path: os.PathLike[str]) -> None:
    script = (
        "from cairn import pipeline, step\n"
        "@step\ndef s() -> int:\n    return 1\n"
        "@pipeline\ndef p():\n    s()\n"
        "p()\n"
    )
    env = {
        **os.environ,
        "CAIRN_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "CAIRN_HOME": str(tmp_path),
        "CAIRN_ARTIFACT_STORE": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    assert "StackUnavailableError: Cannot reach NATS at nats://127.0.0.1:" in last_line
    assert "cairn up" in last_line and "CAIRN_NATS_URL" in last_line
