"""Publishing survives NATS going away mid-run; no server at all gives one clear message."""

import json
import os
import socketserver
import subprocess
import sys
import threading
import time
from typing import Annotated

import pytest
from cairn import Client, pipeline, step
from cairn.tracking import get_tracker
from cairn_services.stack import NatsServer
from cairn_services.stack.ports import free_port

#: The publisher's suite: every test here runs with fast-ingest batches and one at a time.
pytestmark = pytest.mark.usefixtures("publish_batches")


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
    # CAIRN_NATS_URL names the server: the advice is about that server, not the local stack
    assert "cairn up" not in last_line and "CAIRN_NATS_URL names that server" in last_line


class _OldNatsServer(socketserver.StreamRequestHandler):
    """Speaks just enough NATS to be connected to, announcing itself as nats-server 2.9.10.

    A stand-in because no real server that old ships with the test suite.
    """

    def handle(self) -> None:
        info = {"server_id": "OLD", "version": "2.9.10", "proto": 1, "headers": True}
        self.wfile.write(f"INFO {json.dumps(info)}\r\n".encode())
        for line in self.rfile:
            if line.startswith(b"PING"):
                self.wfile.write(b"PONG\r\n")


def test_a_nats_server_too_old_for_version_claims_is_refused_with_what_to_do(
    tmp_path: os.PathLike[str], publish_batches: bool
) -> None:
    from pathlib import Path

    from cairn.errors import StackUnavailableError
    from cairn.publishing import EventPublisher

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _OldNatsServer) as old:
        old.daemon_threads = True
        threading.Thread(target=old.serve_forever, daemon=True).start()
        url = f"nats://127.0.0.1:{old.server_address[1]}"
        with pytest.raises(StackUnavailableError) as refused:
            EventPublisher(url, Path(tmp_path) / "spool", fast_ingest=publish_batches).start()
        old.shutdown()

    message = str(refused.value)
    assert f"NATS at {url} runs nats-server 2.9.10; Cairn needs 2.11 or newer" in message
    assert "Upgrade that server to nats-server 2.11 or newer" in message


ORPHAN_WRITER = """
import pathlib, sys, time
from typing import Annotated
from cairn import pipeline, step

signals = pathlib.Path(sys.argv[1])

@step
def first() -> Annotated[int, "orphan_first_" + sys.argv[2]]:
    return 1

@step
def second(x: int) -> Annotated[int, "orphan_second_" + sys.argv[2]]:
    (signals / "ready").touch()
    while not (signals / "go").exists():  # the test stops NATS meanwhile
        time.sleep(0.02)
    return x + 1

@pipeline(name="orphan_" + sys.argv[2])
def orphan() -> None:
    second(first())

run = orphan()
print("RUN", run.id)
"""


@pytest.mark.usefixtures("cairn_stack")
def test_events_spooled_by_a_process_that_exited_are_sent_by_the_next(
    nats_server: NatsServer, uid: str, tmp_path: os.PathLike[str]
) -> None:
    from pathlib import Path

    signals = Path(tmp_path)
    env = {**os.environ, "CAIRN_FLUSH_TIMEOUT": "1"}
    writer = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_WRITER, str(signals), uid],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (signals / "ready").exists():
        assert writer.poll() is None and time.monotonic() < deadline, (
            writer.stderr.read() if writer.stderr else ""
        )
        time.sleep(0.02)
    nats_server.stop()
    try:
        (signals / "go").touch()
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        assert "events are kept in" in err  # it told the user where the events wait
        run_id = out.split("RUN ")[1].strip()
        spool_dir = Path(os.environ["CAIRN_HOME"]) / "spool"
        assert any(p.stat().st_size for p in spool_dir.glob("*.spool"))
    finally:
        nats_server.start()

    # the next Cairn process adopts the orphaned spool when it connects
    helper = "from cairn.tracking import get_tracker; get_tracker().flush()"
    done = subprocess.run(
        [sys.executable, "-c", helper],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    stored = Client().get_pipeline_run(run_id)  # read-your-writes cannot help here: poll
    deadline = time.monotonic() + 20
    while stored.status != "completed" and time.monotonic() < deadline:
        time.sleep(0.1)
        stored = Client().get_pipeline_run(run_id)
    assert stored.status == "completed"
    assert stored.steps["second"].output.load() == 2
    assert stored.steps["second"].output.version == "1"
    assert not any(p.stat().st_size for p in spool_dir.glob("*.spool"))


def test_nats_locked_with_credentials(tmp_path: os.PathLike[str]) -> None:
    from pathlib import Path

    script = (
        "from cairn import pipeline, step\n"
        "@step\ndef s() -> int:\n    return 1\n"
        "@pipeline\ndef locked():\n    s()\n"
        "print('VERSION', locked().steps['s'].output.version)\n"
    )
    with NatsServer(Path(tmp_path) / "nats", user="cairn", password="s3cret-pw") as server:
        port = server.url.rsplit(":", 1)[1]

        def run(url: str) -> subprocess.CompletedProcess[str]:
            env = {
                **os.environ,
                "CAIRN_NATS_URL": url,
                "CAIRN_HOME": str(tmp_path),
                "CAIRN_ARTIFACT_STORE": str(tmp_path),
            }
            return subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
            )

        ok = run(f"nats://cairn:s3cret-pw@127.0.0.1:{port}")
        assert ok.returncode == 0, ok.stderr
        assert "VERSION 1" in ok.stdout
        refused = run(f"nats://cairn:wrong-pw@127.0.0.1:{port}")
        assert refused.returncode != 0
        assert "Cannot reach NATS at nats://***@127.0.0.1:" in refused.stderr
        assert "wrong-pw" not in refused.stderr


EXPLICIT_DURING_OUTAGE = """
import pathlib, sys, time
from typing import Annotated
from cairn import ArtifactConfig, pipeline, step
from cairn.tracking import get_tracker

signals, uid = pathlib.Path(sys.argv[1]), sys.argv[2]
get_tracker()  # connected before NATS goes away
(signals / "connected").touch()
while not (signals / "go").exists():
    time.sleep(0.02)

@step
def s() -> Annotated[int, ArtifactConfig(name="explicit_" + uid, version="v-" + uid)]:
    return 1

@pipeline(name="explicit_" + uid)
def p() -> None:
    s()

t0 = time.monotonic()
run = p()
print("VERSION", run.steps["s"].output.version, "SECONDS", round(time.monotonic() - t0, 2))
"""


# Batched only: it waits out two flush timeouts by design (over 6 s), and the claim it is
# about is one publish whichever way the run's other events go.
@pytest.mark.parametrize("publish_batches", [True], ids=["batches"], indirect=True)
@pytest.mark.usefixtures("cairn_stack")
def test_an_explicit_version_waits_no_longer_than_the_flush_timeout_during_an_outage(
    nats_server: NatsServer, uid: str, tmp_path: os.PathLike[str], publish_batches: bool
) -> None:
    from pathlib import Path

    signals = Path(tmp_path)
    writer = subprocess.Popen(
        [sys.executable, "-c", EXPLICIT_DURING_OUTAGE, str(signals), uid],
        env={**os.environ, "CAIRN_FLUSH_TIMEOUT": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (signals / "connected").exists():
        assert writer.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    nats_server.stop()
    try:
        (signals / "go").touch()
        out, err = writer.communicate(timeout=60)
    finally:
        nats_server.start()
    assert writer.returncode == 0, err
    version, seconds = out.split("VERSION ")[1].split(" SECONDS ")
    # one flush timeout for the claim and one at the end of the run, not the whole outage
    assert version == "pending" and float(seconds) < 2 * 2 + 3
    assert "is unreachable; events are kept in" in err
    assert "Task was destroyed" not in err and "Traceback" not in err
    # retrying logs once when it starts and once when it ends, not per attempt
    assert len([line for line in out.splitlines() if "publisher." in line]) <= 4

    helper = "from cairn.tracking import get_tracker; get_tracker().flush()"
    done = subprocess.run(
        [sys.executable, "-c", helper], env=os.environ.copy(), capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 20
    while True:
        try:
            stored = Client().get_artifact_version(f"explicit_{uid}", f"v-{uid}")
            break
        except Exception:
            assert time.monotonic() < deadline, "the spooled claim was never delivered"
            time.sleep(0.1)
    assert stored.load() == 1
