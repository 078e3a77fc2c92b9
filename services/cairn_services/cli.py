"""The ``cairn`` command: the local stack, the demo, and looking at runs and artifacts.

``up`` and ``down`` print a summary; what they log goes to ``$CAIRN_HOME/logs/stack.log``
(and to the terminal with ``-v``), beside the logs of the processes they start, which
``cairn logs`` shows.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .spool_cli import spool_app
from .terminal import console

if TYPE_CHECKING:
    from cairn import Client
    from cairn.models import ArtifactVersion, LineageEdge, LineageGraph
    from cairn.settings import StackRecord
    from rich.text import Text
    from rich.tree import Tree

    from .stack.parts import Part

app = typer.Typer(help="Cairn: artifact tracking for ML pipelines.", no_args_is_help=True)
run_app = typer.Typer(help="Pipeline runs.", no_args_is_help=True)
artifact_app = typer.Typer(help="Artifacts and their versions.", no_args_is_help=True)
pipeline_app = typer.Typer(help="Pipelines and their runs.", no_args_is_help=True)
step_app = typer.Typer(help="Step runs.", no_args_is_help=True)
app.add_typer(run_app, name="run")
app.add_typer(artifact_app, name="artifact")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(step_app, name="step")
app.add_typer(spool_app, name="spool")

#: The variables that point the SDK at servers other than the local stack's, and what they name.
_SERVER_VARIABLES = {"CAIRN_NATS_URL": "NATS", "CAIRN_API_URL": "query API"}

Verbose = Annotated[
    bool, typer.Option("-v", "--verbose", help="Also print the log lines (stack.log) here.")
]


def _home() -> Path:
    from cairn.settings import cairn_home

    return cairn_home()


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"cairn, version {version('cairn')}")
        raise typer.Exit()


@app.callback()
def _cairn(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    """Cairn: artifact tracking for ML pipelines."""


def _log_to_file(verbose: bool) -> None:
    """What this command logs goes to stack.log under CAIRN_HOME; with ``verbose``, here too.

    The secrets it may come across (the environment's, the stack record's) are masked.
    """
    from urllib.parse import urlsplit

    from cairn.settings import read_stack

    from .logs import LogFile, configure_logging, level_from_env
    from .stack.errors import StackError
    from .stack.log_files import cli_log_file

    try:
        level = level_from_env()
    except ValueError as exc:
        raise StackError(str(exc)) from None
    secrets = [os.environ.get("CAIRN_API_TOKEN"), os.environ.get("CAIRN_NATS_PASSWORD")]
    if record := read_stack(_home()):
        secrets += [record.api_token, *(urlsplit(url).password for url in record.urls().values())]
    sink = LogFile(cli_log_file(_home()), echo=sys.stderr if verbose else None)
    configure_logging(sink, secrets=secrets, level=level)


@app.command()
def up(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing on success."),
    verbose: Verbose = False,
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
    from .stack.log_files import NewLines, log_files, write_lines
    from .stack.parts import logs_dir

    _log_to_file(verbose)
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
    # -v: what the started processes logged too, from their files (they run detached)
    servers = {key: path for key, path in log_files(home, None).items() if key != "stack"}
    started = NewLines(servers) if verbose else None
    try:
        result = start_stack(home, requested)
    finally:
        if started is not None:
            write_lines(started.read(), sys.stderr, prefix=True, width=len("services"))
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
    _say(f"  logs     {logs_dir(home)} (cairn logs [nats|postgres|services] [-f])")
    for line in _configured_elsewhere():
        _say(line)


def _configured_elsewhere() -> list[str]:
    """A note per server variable set here: the SDK in this environment uses it, not the stack."""
    from cairn.settings import redact_url

    return [
        f"Note: {variable} is set, so the SDK here uses the {_SERVER_VARIABLES[variable]} at "
        f"{redact_url(value)}, not this stack's (unset it to use this one)."
        for variable, value in _configured_servers().items()
    ]


def _port(record: StackRecord, part: Part) -> int | None:
    from urllib.parse import urlsplit

    from .stack.parts import part_url

    return urlsplit(part_url(record, part)).port


def _say(text: str) -> None:
    print(text)  # as it is: paths and URLs stay whole for scripts, a "[x]" in them is text


@app.command()
def down(verbose: Verbose = False) -> None:
    """Stop the local stack (only it: servers named by CAIRN_NATS_URL etc. are not Cairn's)."""
    from .stack.local import stop_stack

    _log_to_file(verbose)
    stopped = stop_stack(_home())
    if stopped:
        _say(f"Stopped: {', '.join(part.label for part in stopped)}")
    else:
        _say(f"No local stack was running under {_home()}.")


@app.command()
def status() -> None:
    """Whether each server the SDK here uses answers, and where (exit 1 if one does not).

    With CAIRN_NATS_URL or CAIRN_API_URL set, those servers; else the local stack's parts.
    """
    from cairn.settings import redact_url

    from .stack.local import stack_status
    from .stack.parts import Part

    if _configured_servers():
        _configured_status()
        return
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


def _configured_servers() -> dict[str, str]:
    """The server variables set in this environment, by name."""
    return {
        variable: value for variable in _SERVER_VARIABLES if (value := os.environ.get(variable))
    }


def _configured_status() -> None:
    """``cairn status`` when servers are configured: each one the SDK here uses, and if it answers.

    A server whose variable is unset is the local stack's (NATS, when only CAIRN_API_URL
    is set) or none at all (the API, when CAIRN_NATS_URL is set without it): said too.
    """
    from cairn.settings import reachable, read_stack, redact_url

    from .stack.parts import api_healthy

    configured = _configured_servers()
    home = _home()
    record = None if "CAIRN_NATS_URL" in configured else read_stack(home)
    advice = []
    for what, variable, local in (
        ("nats-server", "CAIRN_NATS_URL", record.nats_url if record else None),
        ("query API", "CAIRN_API_URL", record.api_url if record else None),
    ):
        url = configured.get(variable) or local
        if url is None:
            missing = (
                f"none: set {variable}"
                if "CAIRN_NATS_URL" in configured
                else f"none: no local stack is recorded under {home}"
            )
            _say(f"{what:15} {'-':9} {missing}")
            advice.append(f"set {variable}" if "CAIRN_NATS_URL" in configured else "`cairn up`")
            continue
        if what == "query API":
            answers = api_healthy(url.rstrip("/"))
        else:
            answers = any(reachable(one.strip()) for one in url.split(","))
        source = variable if variable in configured else f"the local stack under {home}"
        _say(f"{what:15} {'answers' if answers else 'no answer':9} {redact_url(url)}  ({source})")
        if not answers:
            advice.append(
                f"start the {what} at {redact_url(url)} or correct {variable}"
                if variable in configured
                else "`cairn up` restarts the local stack's parts that are down"
            )
    store = os.environ.get("CAIRN_ARTIFACT_STORE") or (
        record.artifact_store if record else str(home / "artifacts")
    )
    _say(f"{'artifact store':15} {'':9} {store}")
    if advice:
        _say(f"Not every server answers: {'; '.join(dict.fromkeys(advice))}.")
        raise typer.Exit(1)


@app.command()
def demo() -> None:
    """Run a small training pipeline and show what Cairn recorded."""
    from cairn import Client

    from .demo import run_demo
    from .listing import Column, print_listing

    run = run_demo()
    _say(f"\nRun {run.name} ({run.id}): {run.status}")
    print_listing(
        console(),
        [
            Column("step"),
            Column("status"),
            Column("output"),
            Column("artifact name", whole=True),
            Column("version", whole=True),
        ],
        [
            [step_name, step_run.status, key, version.name, version.version]
            for step_name, step_run in run.steps.items()
            for key, version in step_run.outputs.items()
        ],
        empty="The run stored no artifacts.",
    )
    stored = Client().get_pipeline_run(run.id)
    _say(f"The query API sees the run with {len(stored.steps)} steps.")
    _say("Look them up with:")
    _say(f"  cairn run describe {run.name}")
    _say("  cairn artifact describe demo_model")
    _say(
        '  python -c "from cairn import Client; '
        "print(Client().get_artifact_version('demo_metrics').load())\""
    )


@run_app.command("list")
def run_list(
    pipeline: str = typer.Option(None, help="Only runs of this pipeline."), size: int = 20
) -> None:
    """Recent pipeline runs, newest first."""
    from cairn import Client

    from .listing import Column, print_listing

    runs = Client().list_pipeline_runs(pipeline_name=pipeline, size=size)
    print_listing(
        console(),
        [
            Column("run", whole=True),
            Column("pipeline", whole=True),  # a name to copy into get_pipeline / --pipeline
            Column("status"),
            Column("started"),
            Column("steps"),
        ],
        [
            [run.name, run.pipeline_name, run.status, _when(run.started_at), str(len(run.steps))]
            for run in runs
        ],
        empty=f"No runs of pipeline {pipeline!r} yet." if pipeline else "No pipeline runs yet.",
    )


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


@run_app.command("describe")
def run_describe(
    name_id_or_prefix: Annotated[str, typer.Argument(help="A run's name, id or id prefix.")],
) -> None:
    """A run's steps with their inputs and outputs."""
    from cairn import Client

    run = Client().get_pipeline_run(name_id_or_prefix)
    _say(f"{run.name} ({run.id}) pipeline={run.pipeline_name} status={run.status}")
    _say(f"substitutions: {run.config.substitutions}  parameters: {run.config.parameters}")
    for name, step_run in run.steps.items():
        _say(f"  step {name}: {step_run.status}")
        for key, av in step_run.inputs.items():
            _say(f"    in  {key} <- {av.name} v{av.version}")
        for key, av in step_run.outputs.items():
            _say(f"    out {key} -> {av.name} v{av.version} ({av.data_type}) {av.uri}")
    if run.run_metadata:
        from .metadata_cards import print_cards

        print_cards(run.run_metadata)


@step_app.command("why-not-cached")
def step_why_not_cached(
    run: Annotated[str, typer.Argument(help="A run's name, id or id prefix.")],
    step: Annotated[str, typer.Argument(help="The step's name in that run.")],
) -> None:
    """Why a step of a run was not served from cache (what its run's line said)."""
    from cairn import Client
    from cairn.caching import miss_explained
    from cairn.errors import NotFoundError

    found = Client().get_pipeline_run(run)
    step_run = found.steps.get(step)
    if step_run is None:
        steps = ", ".join(found.steps) or "none"
        raise NotFoundError(f"Run {found.name} has no step '{step}'; its steps: {steps}")
    if step_run.status == "cached":
        client = Client()
        original = step_run.original_step_run_id or ""
        source = client.get_run_step(original) if original else None
        of_run = f" of run {client.get_pipeline_run(source.run_id).name}" if source else ""
        _say(
            f"Step {step} of run {found.name} was served from cache: it reused the outputs of "
            f"step run {original}{of_run}."
        )
    elif step_run.cache_miss_reasons:
        why = miss_explained(step_run.cache_miss_reasons, step_run.cache_compared_run)
        _say(f"Step {step} of run {found.name} was not cached: {why}")
    else:
        _say(
            f"Step {step} of run {found.name} ({step_run.status}) has no cache decision "
            "recorded (it ran before caching was recorded, or has not reached it yet)."
        )


@artifact_app.command("list")
def artifact_list() -> None:
    """Artifact names with their latest version."""
    from cairn import Client

    from .listing import Column, print_listing

    print_listing(
        console(),
        [Column("name", whole=True), Column("latest", whole=True), Column("versions")],
        [
            [summary.name, summary.latest_version, str(summary.version_count)]
            for summary in Client().list_artifacts()
        ],
        empty="No artifacts yet.",
    )


@artifact_app.command("describe")
def artifact_describe(
    name_id_or_prefix: Annotated[
        str, typer.Argument(help="An artifact's name, or an artifact version's id or id prefix.")
    ],
    version: str = typer.Option(None, help="Default: latest."),
) -> None:
    """One artifact version: where it is stored and what made it."""
    from cairn import Client

    av = Client().get_artifact_version(name_id_or_prefix, version)
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
        _say(f"{field:22} {getattr(av, field)}")
    from .metadata_cards import print_cards

    print_cards(av.run_metadata)


@artifact_app.command("lineage")
def artifact_lineage(
    name_version: Annotated[
        str,
        typer.Argument(
            metavar="NAME[:VERSION]",
            help="An artifact name (its latest version) or NAME:VERSION; a version id too.",
        ),
    ],
    downstream: Annotated[
        bool,
        typer.Option(
            "--downstream", help="What was computed from it (default: what it was computed from)."
        ),
    ] = False,
    depth: Annotated[
        int | None,
        typer.Option(min=1, help="At most N artifact-version hops (default: all of them)."),
    ] = None,
) -> None:
    """An artifact version's lineage as a tree: the versions it was computed from and the
    step runs that made them, or (--downstream) the step runs that read it and what they made.
    """
    from cairn import Client

    client = Client()
    version = _version_given(client, name_version)
    graph = client.get_lineage(version, "downstream" if downstream else "upstream", depth)
    tree, cut = _lineage_tree(graph, console().width)
    console().print(tree)
    if cut:
        _say(
            f"Branches marked … go on beyond what fits in {console().width} columns; draw one with:"
        )
        for command in cut[:_LISTED_CUTS]:
            _say(f"  {command}")
        if len(cut) > _LISTED_CUTS:
            _say(f"  ... ({len(cut) - _LISTED_CUTS} more)")


def _version_given(client: Client, text: str) -> ArtifactVersion:
    """The version ``text`` names: whole, as a name (latest) or id; else split at its last
    ':' into NAME:VERSION (names may hold ':', as ``pipeline::step::output`` does)."""
    from cairn.errors import NotFoundError

    try:
        return client.get_artifact_version(text)
    except NotFoundError as whole:
        name, colon, version = text.rpartition(":")
        if not (colon and name and version):
            raise
        try:
            return client.get_artifact_version(name, version)
        except NotFoundError as split:
            raise NotFoundError(f"{whole}. Read as NAME:VERSION: {split}") from None


#: How many commands that draw the branches cut to fit the width ``artifact lineage`` lists.
_LISTED_CUTS = 10


def _lineage_tree(graph: LineageGraph, width: int) -> tuple[Tree, list[str]]:
    """``graph`` as a tree of its artifact versions, each line ``key = NAME:VERSION ← the
    step run that made it``: upstream, a version's branches are its producer's inputs (by
    argument); downstream, what the step runs reading it made (by output key, left out when
    it is the artifact's name). A version met again says so instead of repeating its
    branches. A branch deeper than ``width`` leaves room for ends in "…"; the commands
    drawing the rest from there come second.
    """
    from rich.text import Text
    from rich.tree import Tree

    nodes = graph.nodes_by_id()
    downstream = graph.direction == "downstream"
    producer: dict[str, str] = {}  # version id -> the step run that stored it
    inputs: dict[str, list[LineageEdge]] = {}  # step run id -> its input edges
    readers: dict[str, list[LineageEdge]] = {}  # version id -> the input edges reading it
    outputs: dict[str, list[LineageEdge]] = {}  # step run id -> its output edges
    for edge in sorted(graph.edges, key=lambda e: (e.key, e.source, e.target)):
        if edge.kind == "output":
            producer[edge.target] = edge.source
            outputs.setdefault(edge.source, []).append(edge)
        else:
            inputs.setdefault(edge.target, []).append(edge)
            readers.setdefault(edge.source, []).append(edge)

    def step_line(step_id: str, read_as: str | None = None) -> Text:
        step = nodes[step_id]
        line = Text.assemble((step.name, "bold"), " (", _status_text(step.status), ")")
        line.append(f" in run {step.run_name or step.run_id}")
        if step.original_step_run_id:
            line.append(f", reusing step run {step.original_step_run_id}", "dim")
        if read_as is not None:
            line.append(f", reading it as '{read_as}'")
        return line

    def version_line(version_id: str, key: str | None, level: int) -> Text:
        version = nodes[version_id]
        line = Text(f"{key} = " if key is not None and key != version.name else "")
        line.append(f"{version.name}:{version.version}", "bold cyan")
        if downstream:
            return line
        if version_id in producer:
            line.append("  ← ").append_text(step_line(producer[version_id]))
        elif graph.depth is None or level < graph.depth:  # at the depth asked: not looked at
            line.append("  (no step run stored it)", "dim")
        return line

    def lines_under(version_id: str, level: int) -> list[tuple[str | None, Text]]:
        """The ``(version id, line)`` under a version; a step run that made nothing: None."""
        if not downstream:
            step_inputs = inputs.get(producer.get(version_id, ""), [])
            return [(e.source, version_line(e.source, e.key, level + 1)) for e in step_inputs]
        lines: list[tuple[str | None, Text]] = []
        for read in readers.get(version_id, []):
            made = outputs.get(read.target, [])
            for edge in made:
                line = version_line(edge.target, edge.key, level + 1).append("  ← ")
                lines.append((edge.target, line.append_text(step_line(read.target, read.key))))
            if not made:
                lines.append((None, step_line(read.target, read.key).append(", made nothing")))
        return lines

    root_id = graph.artifact_version_id
    root_line = version_line(root_id, None, 0).append(f"  ({root_id})", "dim")
    root = Tree(root_line)
    deepest = max(2, (width - 40) // 4)  # tree guides take 4 columns a level
    expanded: set[str] = set()
    cut: list[str] = []
    stack: list[tuple[Tree, Text, str, int]] = [(root, root_line, root_id, 0)]
    while stack:  # depth first, in drawing order: "above" is above
        branch, label, version_id, level = stack.pop()
        under = lines_under(version_id, level)
        if not under:
            continue
        if version_id in expanded:
            label.append("  (its lineage is shown above)", "dim")
            continue
        expanded.add(version_id)
        if level >= deepest:
            rest = "" if graph.depth is None else f" --depth {graph.depth - level}"
            cut.append(f"cairn artifact lineage {version_id}{' --downstream' * downstream}{rest}")
            branch.add(Text("…", "dim"))
            continue
        pending = []
        for child_id, line in under:
            child = branch.add(line)
            if child_id is not None:
                pending.append((child, line, child_id, level + 1))
        stack.extend(reversed(pending))
    return root, cut


def _status_text(status: object) -> Text:
    from rich.text import Text

    colours = {"completed": "green", "cached": "cyan", "failed": "red", "running": "yellow"}
    return Text(str(status), colours.get(str(status), ""))


@pipeline_app.command("list")
def pipeline_list() -> None:
    """Pipelines with their number of runs and their latest run."""
    from cairn import Client

    from .listing import Column, print_listing

    print_listing(
        console(),
        [
            Column("pipeline", whole=True),
            Column("runs"),
            Column("latest run", whole=True),
            Column("status"),
            Column("started"),
        ],
        [
            [
                p.name,
                str(p.run_count),
                p.latest_run_name,
                p.latest_run_status,
                _when(p.updated_at),
            ]
            for p in Client().list_pipelines()
        ],
        empty="No pipelines have run yet.",
    )


@app.command()
def logs(
    name: Annotated[
        str | None,
        typer.Argument(
            help="nats, postgres, services (or projector, api: the same process), stack "
            "(what cairn up/down did); default: all of them.",
            show_default=False,
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new lines until Ctrl-C.")
    ] = False,
    tail: Annotated[
        int | None,
        typer.Option("-t", "--tail", min=0, help="Only the last N lines of each log."),
    ] = None,
) -> None:
    """The local stack's logs, from the files under CAIRN_HOME/logs."""
    from .stack.errors import StackError
    from .stack.log_files import follow as follow_files
    from .stack.log_files import last_lines, log_files, write_lines
    from .stack.parts import logs_dir

    home = _home()
    files = log_files(home, name)
    present = {key: path for key, path in files.items() if path.exists()}
    if not present and not follow:
        elsewhere = (
            f" The servers {' and '.join(_configured_servers())} name keep their own logs."
            if _configured_servers()
            else ""
        )
        raise StackError(
            f"No {name + ' ' if name else ''}log under {logs_dir(home)}: the local stack has "
            f"not run under {home} (`cairn up` starts it).{elsewhere}"
        )
    prefix = len(files) > 1
    shown = [(key, line) for key, path in present.items() for line in last_lines(path, tail)]
    write_lines(shown, sys.stdout, prefix=prefix, width=max(map(len, files)))
    if follow:
        try:
            follow_files(files, sys.stdout, prefix=prefix)
        except KeyboardInterrupt:
            return  # Ctrl-C is how following ends: no traceback, exit 0


def main() -> None:
    from cairn.errors import CairnError

    from .stack.errors import StackError

    app.pretty_exceptions_show_locals = False  # locals may be tokens and passwords
    try:
        app()
    except (CairnError, StackError) as exc:
        from rich.markup import escape

        console().print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
