"""The embedded local stack: the SDK starts it when none runs; cairn status/down manage it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
from typing import Annotated
from cairn import Client, pipeline, step

@step
def answer() -> Annotated[int, "stack_answer"]:
    return 42

@pipeline
def stack_check() -> None:
    answer()

run = stack_check()
print("VERSION", Client().get_artifact_version("stack_answer").version)
print("STATUS", Client().get_pipeline_run(run.id).status)
"""


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no Cairn server variables and an empty CAIRN_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["CAIRN_HOME"] = str(tmp_path / "home")
    return env


def cairn(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn_services.cli", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )


def test_sdk_starts_the_stack_then_status_and_down(bare_env: dict[str, str]) -> None:
    try:
        first = subprocess.run([sys.executable, "-c", SCRIPT], env=bare_env, capture_output=True, text=True, timeout=180)
        assert first.returncode == 0, first.stderr
        assert "no local stack is running; starting one under" in first.stderr
        assert "VERSION 1" in first.stdout and "STATUS completed" in first.stdout

        second = subprocess.run([sys.executable, "-c", SCRIPT], env=bare_env, capture_output=True, text=True, timeout=180)
        assert second.returncode == 0, second.stderr
        assert "starting one" not in second.stderr  # found the running stack
        assert "VERSION 2" in second.stdout

        status = cairn("status", env=bare_env)
        assert status.returncode == 0
        assert "nats" in status.stdout and "api" in status.stdout and "down" not in status.stdout
    finally:
        down = cairn("down", env=bare_env)
    assert down.returncode == 0 and "nats" in down.stdout and "postgres" in down.stdout
    after = cairn("status", env=bare_env)
    assert after.returncode == 1 and "cairn up" in after.stdout
