"""The ``cairn`` command: the local stack, the demo, and looking at runs and artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from .spool_cli import spool_app

if TYPE_CHECKING:
    from cairn.settings import StackRecord

    from .stack.parts import Part

app = typer.Typer(help="Cairn: artifact tracking for ML pipelines.", no_args_is_help=True)
run_app = typer.Typer(help="Pipeline runs.", no_args_is_help=True)
artifact_app = typer.Typer(help="Artifacts and their versions.", no_args_is_help=True)
app.add_typer(run_app, name="run")
app.add_typer(artifact_app, name="artifact")
app.add_typer(spool_app, name="spool")
console = Console()


def _home() -> Path:
    from cairn.settings import cairn_home

    return cairn_home()


@app.command()
def up(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing on success."),
    api_token: str = typer.Option(
        None,
        envvar="CAIRN_API_TOKEN",
        show_envvar=True,
        help="Require this bearer token: set it in the environment, not as a value here.",
    ),
    api_token_file: Annotated[
        Path | None,
        typer.Option(help="Require the bearer token in this file (first line).", dir_okay=False),
    ] = None,
    nats_user: str = typer.Option(
        None, envvar="CAIRN_NATS_USER", help="Require this NATS user (with a password)."
    ),
    nats_password: str = typer.Option(
        None,
        envvar="CAIRN_NATS_PASSWORD",
        show_envvar=True,
        help="The NATS user's password: set it in the environment, not as a value here.",
    ),
    nats_password_file: Annotated[
        Path | None,
        typer.Option(help="The NATS user's password is in this file (first line).", dir_okay=False),
    ] = None,
) -> None:
    """Start the local stack (NATS, Postgres, projector, API) under CAIRN_HOME.

    On a stack that is partly down, restart only the parts that are down.
    """
    from cairn.settings import redact_url

    from .stack.credentials import (
        API_TOKEN_ENV,
        NATS_PASSWORD_ENV,
        StackCredentials,
        read_secret_file,
        refuse_secret_on_command_line,
    )
    from .stack.errors import StackError
    from .stack.local import start_stack

    for option, env_var, file_option in (
        ("api_token", API_TOKEN_ENV, "--api-token-file"),
        ("nats_password", NATS_PASSWORD_ENV, "--nats-password-file"),
    ):
        source = ctx.get_parameter_source(option)  # typer's own click: compare by name
        if source is not None and source.name == "COMMANDLINE":
            flag = "--" + option.replace("_", "-")
            raise refuse_secret_on_command_line(flag, env_var, file_option)
    # a file named on purpose wins over a variable that may be set for other reasons
    if api_token_file is not None:
        api_token = read_secret_file(api_token_file, "--api-token-file")
    if nats_password_file is not None:
        nats_password = read_secret_file(nats_password_file, "--nats-password-file")
    if (nats_user is None) != (nats_password is None):
        raise StackError(
            "NATS credentials need both a user (--nats-user or CAIRN_NATS_USER) and a password "
            f"({NATS_PASSWORD_ENV} or --nats-password-file); only one was given."
        )
    requested = StackCredentials(
        api_token=api_token or None, nats_user=nats_user, nats_password=nats_password
    )
    home = _home()
    result = start_stack(home, requested)
    if quiet:
        return
    if not result.started:
        _say(f"Cairn stack already running under {home}")
    elif result.fresh:
        _say(f"Cairn stack up under {home}")
    else:
        restarted = ", ".join(
            f"{part.label} (port {_port(result.record, part)})" for part in result.started
        )
        _say(f"Cairn stack under {home} was partly down; restarted {restarted}")
    record = result.record
    _say(f"  nats     {redact_url(record.nats_url)}")
    _say(f"  postgres {redact_url(record.database_url)}")
    _say(f"  api      {record.api_url}\n  store    {record.artifact_store}")


def _port(record: StackRecord, part: Part) -> int | None:
    from urllib.parse import urlsplit

    from .stack.parts import part_url

    return urlsplit(part_url(record, part)).port


def _say(text: str) -> None:
    console.print(text, soft_wrap=True)  # no wrapping: paths and URLs stay whole for scripts


@app.command()
def down() -> None:
    """Stop the local stack."""
    from .stack.local import stop_stack

    stopped = stop_stack(_home())
    if stopped:
        _say(f"Stopped: {', '.join(part.label for part in stopped)}")
    else:
        _say("No local stack was running.")


@app.command()
def status() -> None:
    """Show whether each part of the local stack is up and where it listens (exit 1 if not all)."""
    from cairn.settings import redact_url

    from .stack.local import stack_status
    from .stack.parts import Part

    found = stack_status(_home())
    if found is None:
        _say(f"No local stack recorded under {_home()}; start one with `cairn up`.")
        raise typer.Exit(1)
    record, states = found
    for part, state in states.items():
        what = " (projector + API)" if part is Part.SERVICES else ""
        _say(
            f"{part.label:15} {'up' if state.up else 'down':5} {redact_url(state.url)}{what}"
            f"  pid {state.pid}"
        )
    _say(f"{'artifact store':15} {'':5} {record.artifact_store}")
    if not all(state.up for state in states.values()):
        _say("Some parts are down: `cairn up` restarts just those.")
        raise typer.Exit(1)


@app.command()
def demo() -> None:
    """Run a small training pipeline and show what Cairn recorded."""
    from cairn import Client

    from .demo import run_demo

    run = run_demo()
    console.print(f"\nRun [bold]{run.name}[/] ({run.id}): {run.status}")
    table = Table("step", "status", "output", "artifact name", "version")
    for step_name, step_run in run.steps.items():
        for key, version in step_run.outputs.items():
            table.add_row(step_name, step_run.status, key, version.name, version.version)
    console.print(table)
    stored = Client().get_pipeline_run(run.id)
    console.print(f"The query API sees the run with {len(stored.steps)} steps.")
    console.print("Look them up with:")
    console.print(f"  cairn run describe {run.name}")
    console.print("  cairn artifact describe demo_model")
    console.print(
        "  python -c \"from cairn import Client; print(Client().get_artifact_version('demo_metrics').load())\""
    )


@run_app.command("list")
def run_list(
    pipeline: str = typer.Option(None, help="Only runs of this pipeline."), size: int = 20
) -> None:
    """Recent pipeline runs, newest first."""
    from cairn import Client

    table = Table("run", "pipeline", "status", "started", "steps")
    for run in Client().list_pipeline_runs(pipeline_name=pipeline, size=size):
        table.add_row(
            run.name, run.pipeline_name, run.status, str(run.started_at), str(len(run.steps))
        )
    console.print(table)


@run_app.command("describe")
def run_describe(name_or_id: str) -> None:
    """A run's steps with their inputs and outputs."""
    from cairn import Client

    run = Client().get_pipeline_run(name_or_id)
    console.print(
        f"[bold]{run.name}[/] ({run.id}) pipeline={run.pipeline_name} status={run.status}"
    )
    console.print(f"substitutions: {run.config.substitutions}  parameters: {run.config.parameters}")
    for name, step_run in run.steps.items():
        console.print(f"  step {name}: {step_run.status}")
        for key, av in step_run.inputs.items():
            console.print(f"    in  {key} <- {av.name} v{av.version}")
        for key, av in step_run.outputs.items():
            console.print(f"    out {key} -> {av.name} v{av.version} ({av.data_type}) {av.uri}")


@artifact_app.command("list")
def artifact_list() -> None:
    """Artifact names with their latest version."""
    from cairn import Client

    table = Table("name", "latest", "versions")
    for row in Client().list_artifacts():
        table.add_row(
            str(row.get("name")), str(row.get("latest_version")), str(row.get("version_count"))
        )
    console.print(table)


@artifact_app.command("describe")
def artifact_describe(
    name_or_id: str, version: str = typer.Option(None, help="Default: latest.")
) -> None:
    """One artifact version: where it is stored and what made it."""
    from cairn import Client

    av = Client().get_artifact_version(name_or_id, version)
    for field in (
        "id",
        "name",
        "version",
        "type",
        "data_type",
        "materializer",
        "uri",
        "size",
        "content_hash",
        "producer_run_id",
        "producer_step_run_id",
        "created_at",
    ):
        console.print(f"{field:22} {getattr(av, field)}")


def main() -> None:
    from cairn.errors import CairnError

    from .stack.errors import StackError

    app.pretty_exceptions_show_locals = False  # locals may be tokens and passwords
    try:
        app()
    except (CairnError, StackError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
