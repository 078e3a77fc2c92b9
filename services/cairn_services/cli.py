"""The ``cairn`` command: the local stack, the demo, and looking at runs and artifacts."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Cairn: artifact tracking for ML pipelines.", no_args_is_help=True)
run_app = typer.Typer(help="Pipeline runs.", no_args_is_help=True)
artifact_app = typer.Typer(help="Artifacts and their versions.", no_args_is_help=True)
app.add_typer(run_app, name="run")
app.add_typer(artifact_app, name="artifact")
console = Console()


def _home() -> Path:
    from cairn.settings import cairn_home

    return cairn_home()


@app.command()
def up(
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing on success."),
    api_token: str = typer.Option(
        None, envvar="CAIRN_API_TOKEN", help="Require this bearer token."
    ),
    nats_user: str = typer.Option(None, help="Require this NATS user (with --nats-password)."),
    nats_password: str = typer.Option(None, help="The NATS user's password."),
) -> None:
    """Start the local stack (NATS, Postgres, projector, API) under CAIRN_HOME."""
    from cairn.settings import redact_url

    from .stack.local import start_stack

    record = start_stack(
        _home(), api_token=api_token, nats_user=nats_user, nats_password=nats_password
    )
    if not quiet:
        console.print(f"Cairn stack up under {_home()}")
        console.print(f"  nats     {redact_url(record.nats_url)}\n  postgres {record.database_url}")
        console.print(f"  api      {record.api_url}\n  store    {record.artifact_store}")


@app.command()
def down() -> None:
    """Stop the local stack."""
    from .stack.local import stop_stack

    stopped = stop_stack(_home())
    console.print(f"Stopped: {', '.join(stopped)}" if stopped else "No local stack was running.")


@app.command()
def status() -> None:
    """Show whether each part of the local stack is up and where it listens."""
    from .stack.local import stack_status

    parts = stack_status(_home())
    if not parts:
        console.print(f"No local stack recorded under {_home()}; start one with `cairn up`.")
        raise typer.Exit(1)
    for part, state in parts.items():
        console.print(f"{part:15} {state}")


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

    try:
        app()
    except (CairnError, StackError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
