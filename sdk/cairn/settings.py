"""Where Cairn's servers are: environment variables, or the local stack's record.

``CAIRN_NATS_URL``, ``CAIRN_API_URL`` and ``CAIRN_ARTIFACT_STORE`` point at
external servers; without them the SDK uses the local stack that ``cairn up``
records in ``$CAIRN_HOME/stack.json`` (``~/.cairn`` by default), starting it
if none runs.
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
    if record is None or not reachable(record.nats_url):
        if not start_if_missing:
            raise StackUnavailableError(
                f"No Cairn stack is running under {home}. Start one with `cairn up`, or set "
                "CAIRN_NATS_URL and CAIRN_API_URL to running servers."
            )
        record = start_local_stack(home)
    return Settings(
        home=home,
        nats_url=record.nats_url,
        api_url=env.get("CAIRN_API_URL") or record.api_url,
        artifact_store=env.get("CAIRN_ARTIFACT_STORE") or record.artifact_store,
        api_token=env.get("CAIRN_API_TOKEN") or record.api_token,
    )


def start_local_stack(home: Path) -> StackRecord:
    """Run ``cairn up`` in a child process (the SDK never imports the services)."""
    sys.stderr.write(f"cairn: no local stack is running; starting one under {home} (cairn up)\n")
    command = [sys.executable, "-m", "cairn_services.cli", "up", "--quiet"]
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "CAIRN_HOME": str(home)}
    )
    record = read_stack(home)
    if done.returncode != 0 or record is None:
        raise StackUnavailableError(
            f"Could not start the local Cairn stack under {home}:\n{done.stderr.strip()[-2000:]}\n"
            "Start it yourself with `cairn up`, or set CAIRN_NATS_URL and CAIRN_API_URL."
        )
    return record
