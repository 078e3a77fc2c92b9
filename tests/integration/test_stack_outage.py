"""An outage is not a reason to start a second stack: only what is down comes back, where it was.

Real processes under a temp CAIRN_HOME: `cairn up`, SDK processes, and kills of
the pids the stack record names. Unlike the publisher's own suite these run once, with
fast-ingest batches (the default): each starts a whole local stack (5-9 s), and the
publisher's outage handling runs both ways in test_publishing.py.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx
import pytest
from cairn.settings import reachable
from cairn_services.stack.errors import StackError
from cairn_services.stack.lock import stack_lock
from cairn_services.stack.ports import pid_alive
from test_local_stack import bare_environment, cairn, read_record, run_script

#: A pipeline whose one step waits for the file `go`; after the run it waits for `exit`.
WAITING_SCRIPT = """
import sys, time
from pathlib import Path
from cairn import pipeline, step

signals = Path(sys.argv[1])

def wait_for(name: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not (signals / name).exists():
        if time.monotonic() > deadline:
            sys.exit(f"no {name!r} signal within {timeout} s")
        time.sleep(0.05)

@step
def held() -> int:
    print("WAITING", flush=True)
    wait_for("go")
    return 7

@pipeline(enable_cache=False)
def outage_check() -> None:
    held()

run = outage_check()
print("RUN", run.id, flush=True)
wait_for("exit")
"""


class LineReader:
    """The stdout lines of a process, read on a thread so a test can wait with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._lines.put(line)

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line.startswith(prefix):
                return line.strip()
        raise AssertionError(f"no line starting with {prefix!r} within {timeout} s")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.05)


def run_status(api_url: str, run_id: str) -> str | None:
    try:
        response = httpx.get(f"{api_url}/runs/{run_id}", timeout=2)
    except httpx.HTTPError:
        return None
    return str(response.json().get("status")) if response.status_code == 200 else None


def test_a_nats_outage_restarts_only_nats_and_running_processes_deliver(tmp_path: Path) -> None:
    env = bare_environment(tmp_path / "home")
    signals = tmp_path / "signals"
    signals.mkdir()
    first: subprocess.Popen[str] | None = None
    try:
        up = cairn("up", env=env)
        assert up.returncode == 0, up.stderr
        before = read_record(env)
        first = subprocess.Popen(
            [sys.executable, "-c", WAITING_SCRIPT, str(signals)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        lines = LineReader(first)
        lines.wait_for("WAITING", timeout=60)

        os.kill(before["pids"]["nats"], signal.SIGKILL)
        wait_until(lambda: not reachable(before["nats_url"]), 10, "nats-server gone")
        status = cairn("status", env=env)
        assert status.returncode == 1
        rows = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()[:3]}
        assert rows == {"nats-server": "down", "Postgres": "up", "services": "up"}

        second = run_script(env)
        assert second.returncode == 0, second.stderr
        port = before["nats_url"].rsplit(":", 1)[1]
        assert f"the local stack's nats-server is down; restarting it on port {port}" in (
            second.stderr
        )
        assert "starting one" not in second.stderr
        after = read_record(env)
        for key in ("nats_url", "api_url", "database_url"):
            assert after[key] == before[key]
        assert after["pids"]["postgres"] == before["pids"]["postgres"]
        assert after["pids"]["services"] == before["pids"]["services"]
        assert after["pids"]["nats"] != before["pids"]["nats"] and pid_alive(after["pids"]["nats"])

        # The first process reconnects by itself; its run reaches the API while it still runs.
        (signals / "go").touch()
        continued = time.monotonic()
        run_id = lines.wait_for("RUN", timeout=60).split()[1]
        wait_until(lambda: run_status(after["api_url"], run_id) == "completed", 20, "run projected")
        assert time.monotonic() - continued < 20
        assert first.poll() is None  # delivered by the running process, not at its exit
        (signals / "exit").touch()
        assert first.wait(60) == 0
    finally:
        if first is not None and first.poll() is None:
            first.kill()
        cairn("down", env=env)


def test_cairn_up_repairs_what_is_down_and_a_dead_stack_starts_on_its_ports(
    tmp_path: Path,
) -> None:
    env = bare_environment(tmp_path / "home")
    try:
        assert cairn("up", env=env).returncode == 0
        first = run_script(env)
        assert first.returncode == 0 and "VERSION 1" in first.stdout, first.stderr
        before = read_record(env)

        # Only the services are down, and two `cairn up` repair at once: one services process.
        os.kill(before["pids"]["services"], signal.SIGKILL)
        ups = [
            subprocess.Popen(
                [sys.executable, "-m", "cairn_services.cli", "up"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [up.communicate(timeout=120)[0] for up in ups]
        assert [up.returncode for up in ups] == [0, 0], outputs
        api_port = before["api_url"].rsplit(":", 1)[1]
        repairs = [out for out in outputs if "was partly down; restarted services" in out]
        assert len(repairs) == 1 and f"restarted services (port {api_port})" in repairs[0]
        assert sum("already running" in out for out in outputs) == 1
        repaired = read_record(env)
        assert repaired["api_url"] == before["api_url"]
        assert repaired["pids"]["nats"] == before["pids"]["nats"]
        assert repaired["pids"]["postgres"] == before["pids"]["postgres"]
        serving = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert serving.count(f"cairn_services.serve --port {api_port}") == 1

        # Every server gone (as after a reboot): the SDK starts the stack again, same ports, data.
        for part, sig in (("services", signal.SIGTERM), ("nats", signal.SIGTERM)):
            os.kill(repaired["pids"][part], sig)
        os.kill(repaired["pids"]["postgres"], signal.SIGINT)
        wait_until(
            lambda: not any(pid_alive(pid) for pid in repaired["pids"].values()), 30, "all gone"
        )
        again = run_script(env)
        assert again.returncode == 0, again.stderr
        assert "none of the local stack's servers" in again.stderr
        assert "VERSION 2" in again.stdout  # the same JetStream store and Postgres cluster
        restarted = read_record(env)
        for key in ("nats_url", "api_url", "database_url"):
            assert restarted[key] == before[key]
        assert all(restarted["pids"][p] != repaired["pids"][p] for p in repaired["pids"])
    finally:
        cairn("down", env=env)


def test_the_stack_lock_times_out_naming_its_holder(tmp_path: Path) -> None:
    with (
        stack_lock(tmp_path, timeout=1),
        pytest.raises(StackError, match=rf"pid {os.getpid()}\).*kill {os.getpid()}"),
        stack_lock(tmp_path, timeout=0.2),
    ):
        pass
