"""Where Cairn's servers are: environment variables, or the local stack's record.

``CAIRN_NATS_URL``, ``CAIRN_API_URL`` and ``CAIRN_ARTIFACT_STORE`` point at
external servers; without them the SDK uses the local stack that ``cairn up``
records in ``$CAIRN_HOME/stack.json`` (``~/.cairn`` by default), starting it
if none runs, or having ``cairn up`` restart just the parts of it that are down
(on their recorded ports, so processes connected to the rest carry on).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from .errors import StackUnavailableError


class StackRecord(msgspec.Struct, kw_only=True):
    """What ``cairn up`` writes: where each part of the local stack listens."""

    nats_url: str
    api_url: str
    database_url: str
    artifact_store: str
    pids: dict[str, int] = msgspec.field(default_factory=dict)
    api_token: str | None = None

    def urls(self) -> dict[str, str]:
        """Where each part listens, keyed like ``pids``."""
        return {"nats": self.nats_url, "postgres": self.database_url, "services": self.api_url}


#: The parts of the local stack as messages name them, keyed like ``StackRecord.pids``.
PART_TITLES = {"nats": "nats-server", "postgres": "Postgres", "services": "services"}
#: How long the SDK lets ``cairn up`` take (it may wait for another one to finish first).
_UP_TIMEOUT_S = 240.0


class Settings(msgspec.Struct, kw_only=True):
    """The endpoints one SDK process talks to."""

    home: Path
    nats_url: str
    api_url: str | None
    artifact_store: str
    api_token: str | None = None

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"


def cairn_home() -> Path:
    return Path(os.environ.get("CAIRN_HOME") or Path.home() / ".cairn").expanduser()


def stack_file(home: Path) -> Path:
    return home / "stack.json"


def read_stack(home: Path) -> StackRecord | None:
    try:
        return msgspec.json.decode(stack_file(home).read_bytes(), type=StackRecord)
    except (FileNotFoundError, msgspec.DecodeError):
        return None


def write_stack(home: Path, record: StackRecord) -> None:
    home.mkdir(parents=True, exist_ok=True)
    tmp = stack_file(home).with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # may hold credentials
    with os.fdopen(fd, "wb") as f:
        f.write(msgspec.json.format(msgspec.json.encode(record)))
    tmp.replace(stack_file(home))


def redact_url(url: str) -> str:
    """``url`` with any user and password replaced by ``***``, for messages and logs."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}" if "@" in rest else url


def reachable(url: str, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections where ``url`` points."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout):
            return True
    except OSError:
        return False


def resolve_settings(*, start_if_missing: bool = True) -> Settings:
    """The endpoints to use, starting the local stack if needed and allowed."""
    home = cairn_home()
    env = os.environ
    if env.get("CAIRN_NATS_URL"):
        return Settings(
            home=home,
            nats_url=env["CAIRN_NATS_URL"],
            api_url=env.get("CAIRN_API_URL"),
            artifact_store=env.get("CAIRN_ARTIFACT_STORE") or str(home / "artifacts"),
            api_token=env.get("CAIRN_API_TOKEN"),
        )
    record = read_stack(home)
    down = [part for part, url in record.urls().items() if not reachable(url)] if record else []
    if record is None or "nats" in down:
        if not start_if_missing:
            raise StackUnavailableError(
                f"No Cairn stack is running under {home}. Start one with `cairn up`, or set "
                "CAIRN_NATS_URL and CAIRN_API_URL to running servers."
            )
        record = start_local_stack(home, record, down)
    elif down and start_if_missing:
        try:
            record = start_local_stack(home, record, down)
        except StackUnavailableError as exc:  # NATS is up: tracking works without the rest
            sys.stderr.write(f"cairn: {exc}\n")
    return Settings(
        home=home,
        nats_url=record.nats_url,
        api_url=env.get("CAIRN_API_URL") or record.api_url,
        artifact_store=env.get("CAIRN_ARTIFACT_STORE") or record.artifact_store,
        api_token=env.get("CAIRN_API_TOKEN") or record.api_token,
    )


def configured_artifact_store() -> str | None:
    """The artifact store location this process is configured with, without connecting.

    ``CAIRN_ARTIFACT_STORE``, else the local stack's recorded one; None if neither is set.
    """
    if location := os.environ.get("CAIRN_ARTIFACT_STORE"):
        return location
    record = read_stack(cairn_home())
    return record.artifact_store if record else None


def unreachable_advice(variable: str, server: str) -> str:
    """What to do about a server the SDK could not reach, given the variable that may name it.

    With ``variable`` set, that server is the user's: say so, and do not offer the local
    stack, which is not involved. Unset, the server is the local stack's.
    """
    if os.environ.get(variable):
        return f"{variable} names that server: start it there, or correct {variable}."
    return f"Start the local stack with `cairn up`, or point {variable} at a running {server}."


def start_local_stack(
    home: Path, record: StackRecord | None = None, down: list[str] | None = None
) -> StackRecord:
    """Run ``cairn up`` in a child process (the SDK never imports the services).

    ``record`` and ``down`` (the parts found not answering) say what to tell the
    user: ``cairn up`` itself decides, under its lock, what to (re)start.
    """
    sys.stderr.write(_what_cairn_up_does(home, record, down or []))
    command = [sys.executable, "-m", "cairn_services.cli", "up"]
    env = {**os.environ, "CAIRN_HOME": str(home)}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=_UP_TIMEOUT_S
        )
        # `cairn up` prints its summary, or its error, on stdout; its log goes to a file
        output = f"{done.stdout}\n{done.stderr}".strip()
        failure = output[-2000:] if done.returncode != 0 else None
        if failure is None:
            sys.stderr.write(done.stdout)  # the summary: where each part listens, the logs
    except subprocess.TimeoutExpired:
        failure = f"`cairn up` did not finish within {_UP_TIMEOUT_S:.0f} s"
    new = read_stack(home)
    if failure is not None or new is None:
        raise StackUnavailableError(
            f"Could not start the local Cairn stack under {home}:\n{failure}\n"
            "Start it yourself with `cairn up`, or set CAIRN_NATS_URL and CAIRN_API_URL."
        )
    if record is not None:
        for part, url in record.urls().items():
            old_port, new_port = urlsplit(url).port, urlsplit(new.urls()[part]).port
            if old_port != new_port:
                sys.stderr.write(
                    f"cairn: port {old_port} was taken, so the local stack's "
                    f"{PART_TITLES[part]} listens on port {new_port} now\n"
                )
    return new


def _what_cairn_up_does(home: Path, record: StackRecord | None, down: list[str]) -> str:
    if record is None:
        return f"cairn: no local stack is running; starting one under {home} (cairn up)\n"
    if len(down) == len(PART_TITLES):
        return (
            f"cairn: none of the local stack's servers under {home} answers; starting it "
            "again, on its recorded ports where they are free (cairn up)\n"
        )
    titles = " and ".join(PART_TITLES[part] for part in down)
    ports = " and ".join(str(urlsplit(record.urls()[part]).port) for part in down)
    if len(down) == 1:
        return f"cairn: the local stack's {titles} is down; restarting it on port {ports}\n"
    return f"cairn: the local stack's {titles} are down; restarting them on ports {ports}\n"
