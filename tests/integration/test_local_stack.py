"""The embedded local stack: the SDK starts it when none runs; cairn status/down manage it.

The helpers here (bare_environment, cairn, run_script, read_record) serve the other
stack test modules too (test_stack_outage, test_stack_secrets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = """
from typing import Annotated
from cairn import Client, pipeline, step

@step
def answer() -> Annotated[int, "stack_answer"]:
    return 42

@pipeline(enable_cache=False)
def stack_check() -> None:
    answer()

run = stack_check()
print("VERSION", Client().get_artifact_version("stack_answer").version)
print("STATUS", Client().get_pipeline_run(run.id).status)
"""


def bare_environment(home: Path) -> dict[str, str]:
    """This process's environment without any Cairn variable, and CAIRN_HOME=``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["CAIRN_HOME"] = str(home)
    return env


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no Cairn server variables and an empty CAIRN_HOME."""
    return bare_environment(tmp_path / "home")


def read_record(env: dict[str, str]) -> dict[str, Any]:
    """The stack record (stack.json) under env's CAIRN_HOME, as JSON."""
    record: dict[str, Any] = json.loads((Path(env["CAIRN_HOME"]) / "stack.json").read_text())
    return record


def cairn(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn_services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run SCRIPT (a pipeline, then two Client reads) in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=180
    )


def test_sdk_starts_the_stack_then_status_and_down(bare_env: dict[str, str]) -> None:
    try:
        first = run_script(bare_env)
        assert first.returncode == 0, first.stderr
        assert "no local stack is running; starting one under" in first.stderr
        assert "VERSION 1" in first.stdout and "STATUS completed" in first.stdout

        second = run_script(bare_env)
        assert second.returncode == 0, second.stderr
        assert "starting one" not in second.stderr  # found the running stack
        assert "VERSION 2" in second.stdout

        status = cairn("status", env=bare_env)
        assert status.returncode == 0
        assert "nats-server" in status.stdout and "API" in status.stdout
        assert "down" not in status.stdout

        # a token asked of this running open stack is refused, not pretended
        locked = cairn("up", env={**bare_env, "CAIRN_API_TOKEN": "t0ken"})
        assert locked.returncode == 1 and "cairn down" in locked.stdout
        assert read_record(bare_env)["api_token"] is None
    finally:
        down = cairn("down", env=bare_env)
    assert down.returncode == 0 and "nats-server" in down.stdout and "Postgres" in down.stdout
    after = cairn("status", env=bare_env)
    assert after.returncode == 1 and "cairn up" in after.stdout


def test_a_stack_locked_with_credentials(bare_env: dict[str, str], tmp_path: Path) -> None:
    import stat

    import httpx

    password_file = tmp_path / "nats-password"
    password_file.write_text("pw-123\n")
    try:
        up = cairn(
            "up",
            "--nats-user",
            "cairn",
            "--nats-password-file",
            str(password_file),
            env={**bare_env, "CAIRN_API_TOKEN": "t0ken"},
        )
        assert up.returncode == 0, up.stderr
        assert "pw-123" not in up.stdout  # credentials are not printed
        stack_json = Path(bare_env["CAIRN_HOME"]) / "stack.json"
        assert stat.S_IMODE(stack_json.stat().st_mode) == 0o600
        record = read_record(bare_env)

        # the SDK on this machine finds the credentials in the stack record
        done = run_script(bare_env)
        assert done.returncode == 0, done.stderr
        assert "STATUS completed" in done.stdout

        api = record["api_url"]
        assert httpx.get(f"{api}/runs").status_code == 401
        assert (
            httpx.get(f"{api}/runs", headers={"Authorization": "Bearer t0ken"}).status_code == 200
        )
        anonymous = {**bare_env, "CAIRN_NATS_URL": record["nats_url"].replace("cairn:pw-123@", "")}
        refused = run_script(anonymous)
        assert refused.returncode != 0 and "Cannot reach NATS" in refused.stderr
    finally:
        cairn("down", env=bare_env)
