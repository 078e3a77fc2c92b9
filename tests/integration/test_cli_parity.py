"""The ``cairn`` command as a ZenML user meets it: whole names at 80 columns, prefixes,
``--version``, ``pipeline list``, truthful stack messages, quiet ``up`` and ``cairn logs``.

Every command runs as a real subprocess: against the session's services (``cairn_stack``)
or a local stack of its own in a temp CAIRN_HOME.
"""

import importlib.metadata
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import pytest
from cairn import Client, pipeline, step
from cairn_services.stack.ports import free_port
from test_local_stack import bare_environment, cairn, run_script


def _projected(*runs: Any) -> None:
    """Wait (bounded, by the API's min_seq) until the API has this process's runs: the
    `cairn` subprocesses below read through it but did not publish them, so do not wait."""
    client = Client()
    for run in runs:
        client.get_pipeline_run(run.id)


def _sdk_env(**extra: str) -> dict[str, str]:
    """This process's environment (pointed at the session's stack by ``cairn_stack``)."""
    return {**os.environ, **extra}


def _lines_holding(text: str, output: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


def _dead_url(scheme: str) -> str:
    """A URL on a local port nothing listens on."""
    return f"{scheme}://127.0.0.1:{free_port()}"


def test_version_is_the_installed_one() -> None:
    done = cairn("--version", env=bare_environment(Path("/nonexistent-cairn-home")))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"cairn, version {importlib.metadata.version('cairn')}"


def test_a_listing_shows_names_as_they_are_within_the_width() -> None:
    import io

    from cairn_services.listing import Column, print_listing
    from rich.console import Console

    names = ["[bold]literal[/bold]_:cat:_name", "plain_name_" + "x" * 30]
    out = io.StringIO()
    print_listing(
        Console(file=out, width=60),
        [Column("name", whole=True), Column("note")],
        [[name, "a few words that wrap between them"] for name in names],
        empty="none",
    )
    table = out.getvalue()
    for name in names:  # markup and emoji codes are text; each name on one line, unbroken
        assert _lines_holding(name, table), table
    assert all(len(line) <= 60 for line in table.splitlines()), table
    assert _lines_holding("a few words", table) and "wrap" in table  # wrapped, not cut


def test_lists_keep_names_whole_at_80_columns(cairn_stack: object, uid: str) -> None:
    long_name = f"features_{uid}_" + "very_long_segment_" * 8  # far wider than 80 columns
    mid_name = f"scaled_features_{uid}_with_a_forty_char_tail"

    @step
    def make() -> tuple[Annotated[int, long_name], Annotated[int, mid_name]]:
        return 1, 2

    @pipeline(name=f"listing_pipeline_{uid}", enable_cache=False)
    def listing() -> None:
        make()

    first, second = listing(), listing()
    _projected(first, second)
    env = _sdk_env(COLUMNS="80")

    artifacts = cairn("artifact", "list", env=env)
    assert artifacts.returncode == 0, artifacts.stdout + artifacts.stderr
    for name in (long_name, mid_name):
        assert _lines_holding(name, artifacts.stdout), f"{name!r} was cut:\n{artifacts.stdout}"
    # too wide for a table: a block per artifact, its name and latest version each on a line
    lines = artifacts.stdout.splitlines()
    at = lines.index(f"name: {long_name}")
    assert lines[at + 1] == "  latest: 2", lines[at : at + 3]

    runs = cairn("run", "list", "--pipeline", f"listing_pipeline_{uid}", env=env)
    assert runs.returncode == 0, runs.stdout + runs.stderr
    for run in (first, second):
        assert _lines_holding(run.name, runs.stdout), f"{run.name!r} was cut:\n{runs.stdout}"
    # what is not a name may wrap, but the table stays within the terminal
    assert all(len(line) <= 80 for line in runs.stdout.splitlines()), runs.stdout

    # a pipeline name too is a name to copy (get_pipeline, --pipeline): never cut
    long_pipeline = f"pipeline_with_a_rather_long_name_{uid}_" + "y" * 60

    @pipeline(name=long_pipeline)
    def long_named() -> None:
        make()

    long_run = long_named()
    _projected(long_run)
    runs = cairn("run", "list", "--pipeline", long_pipeline, env=env)
    assert runs.returncode == 0, runs.stdout + runs.stderr
    lines = runs.stdout.splitlines()
    assert f"run: {long_run.name}" in lines, runs.stdout
    assert f"  pipeline: {long_pipeline}" in lines, runs.stdout

    pipelines = cairn("pipeline", "list", env=env)
    assert pipelines.returncode == 0, pipelines.stdout + pipelines.stderr
    row = _lines_holding(f"listing_pipeline_{uid}", pipelines.stdout)
    assert row, pipelines.stdout
    assert _lines_holding(second.name, pipelines.stdout), pipelines.stdout  # the latest run


def test_describe_takes_unique_prefixes_and_lists_ambiguous_ones(
    cairn_stack: object, uid: str
) -> None:
    @step
    def produce() -> Annotated[int, f"prefixed_{uid}"]:
        return 7

    @pipeline(name=f"prefix_pipeline_{uid}", enable_cache=False)
    def prefixed() -> None:
        produce()

    first, second = prefixed(), prefixed()
    _projected(first, second)
    env = _sdk_env()

    described = cairn("run", "describe", first.id[:23], env=env)
    assert described.returncode == 0, described.stdout + described.stderr
    assert first.name in described.stdout and first.id in described.stdout

    version = Client().get_artifact_version(f"prefixed_{uid}", "1")
    by_prefix = cairn("artifact", "describe", version.id[:18], env=env)
    assert by_prefix.returncode == 0, by_prefix.stdout + by_prefix.stderr
    assert version.id in by_prefix.stdout and f"prefixed_{uid}" in by_prefix.stdout

    # UUIDv7 ids made moments apart share their leading (time) digits
    shared = os.path.commonprefix([first.id, second.id])
    assert len(shared) >= 8, (first.id, second.id)
    ambiguous = cairn("run", "describe", shared, env=env)
    assert ambiguous.returncode == 1
    assert first.id in ambiguous.stdout and second.id in ambiguous.stdout, ambiguous.stdout


def test_status_and_errors_name_the_configured_servers(
    cairn_stack: object, nats_url: str, tmp_path: Path
) -> None:
    api_url = os.environ["CAIRN_API_URL"]
    home = tmp_path / "home"  # no local stack here: status must not report on one
    configured = {**bare_environment(home), "CAIRN_NATS_URL": nats_url, "CAIRN_API_URL": api_url}

    status = cairn("status", env=configured)
    assert status.returncode == 0, status.stdout + status.stderr
    assert _lines_holding("CAIRN_NATS_URL", status.stdout)[0].split()[1] == "answers"
    assert _lines_holding("CAIRN_API_URL", status.stdout)[0].split()[2] == "answers"
    assert api_url in status.stdout and "cairn up" not in status.stdout

    dead_nats, dead_api = _dead_url("nats"), _dead_url("http")
    dead = {**configured, "CAIRN_NATS_URL": dead_nats, "CAIRN_API_URL": dead_api}
    down = cairn("status", env=dead)
    assert down.returncode == 1
    assert dead_nats in down.stdout and dead_api in down.stdout
    assert "no answer" in down.stdout and "cairn up" not in down.stdout

    # the SDK's error names the server CAIRN_NATS_URL points at and does not offer `cairn up`
    refused = run_script(dead)
    assert refused.returncode != 0
    assert f"Cannot reach NATS at {dead_nats}" in refused.stderr
    assert "CAIRN_NATS_URL names that server" in refused.stderr
    assert "cairn up" not in refused.stderr

    # so does the CLI's, when the query API it is pointed at does not answer
    listed = cairn("run", "list", env={**configured, "CAIRN_API_URL": dead_api})
    assert listed.returncode == 1
    assert dead_api in listed.stdout and "cairn up" not in listed.stdout, listed.stdout


def _wait_for_output(proc: subprocess.Popen[bytes], wanted: str, timeout: float = 30.0) -> None:
    """Read ``proc``'s stdout until it holds ``wanted``; fail after ``timeout`` s."""
    assert proc.stdout is not None
    seen, deadline = b"", time.monotonic() + timeout
    while wanted.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            pytest.fail(f"no {wanted!r} from `cairn logs -f` within {timeout} s; got:\n{seen!r}")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            seen += os.read(proc.stdout.fileno(), 65536)


def test_up_is_quiet_and_logs_go_to_files(tmp_path: Path) -> None:
    env = bare_environment(tmp_path / "home")
    logs = tmp_path / "home" / "logs"
    try:
        up = cairn("up", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "[info" not in up.stdout + up.stderr  # no structlog lines on the terminal
        assert up.stdout.splitlines()[0].startswith("Cairn stack up under")
        assert _lines_holding(f"logs     {logs}", up.stdout), up.stdout
        for name, line in (
            ("nats", "Server is ready"),
            ("postgres", "ready to accept connections"),
            ("services", "serve.started"),
            ("api", "api.started"),
            ("stack", "stack.started"),
        ):
            shown = cairn("logs", name, env=env)
            assert shown.returncode == 0, shown.stdout + shown.stderr
            assert line in shown.stdout, f"`cairn logs {name}`:\n{shown.stdout}"
        everything = cairn("logs", "--tail", "1", env=env)
        labels = {line.split(" | ")[0].strip() for line in everything.stdout.splitlines()}
        assert labels == {"nats", "postgres", "services", "stack"}, everything.stdout

        unknown = cairn("logs", "nginx", env=env)
        assert unknown.returncode == 1 and "postgres" in unknown.stdout  # names the choices

        # -f follows new lines and ends cleanly on Ctrl-C
        follower = subprocess.Popen(
            [sys.executable, "-m", "cairn_services.cli", "logs", "stack", "-f"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for_output(follower, "stack.started")
            stopped = cairn("down", "-v", env=env)  # -v: its log lines on the terminal too
            assert stopped.returncode == 0, stopped.stdout + stopped.stderr
            assert "stack.ending" in stopped.stderr and "stack.ending" not in stopped.stdout
            _wait_for_output(follower, "stack.ending")
            follower.send_signal(signal.SIGINT)
            _, errors = follower.communicate(timeout=10)
        finally:
            follower.kill()
        assert follower.returncode == 0 and b"Traceback" not in errors, errors

        # the SDK's first auto-start: the one-line notice and the summary, no log lines
        started = run_script(env)
        assert started.returncode == 0, started.stderr
        assert "no local stack is running; starting one under" in started.stderr
        assert "Cairn stack up under" in started.stderr and "[info" not in started.stderr
        assert "VERSION 1" in started.stdout
        services_log = (logs / "services.log").read_text()
        assert "batch_committed" not in services_log  # a committed batch is a debug line
    finally:
        cairn("down", env=env)
