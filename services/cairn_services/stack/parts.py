"""The parts of the local stack, and whether each is up: its recorded process runs and answers."""

from __future__ import annotations

import enum
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
from cairn.settings import PART_TITLES, StackRecord, reachable

from cairn_services.stack.ports import pid_runs

#: A string in each part's command line, so a recycled pid is not taken for ours.
SERVICES_MODULE = "cairn_services.serve"


class Part(enum.StrEnum):
    """A part of the local stack; the value is its key in ``StackRecord.pids``."""

    NATS = "nats"
    POSTGRES = "postgres"
    SERVICES = "services"

    @property
    def label(self) -> str:
        """The name messages use ("nats-server", "Postgres", "services")."""
        return PART_TITLES[self.value]


class PartState(msgspec.Struct, frozen=True, kw_only=True):
    part: Part
    up: bool
    url: str  # may hold credentials: redact it before showing it
    pid: int

    @property
    def port(self) -> int | None:
        return urlsplit(self.url).port


def data_dir(home: Path, part: Part) -> Path:
    """Where a server part keeps its data (JetStream store, Postgres cluster)."""
    return home / part.value


def logs_dir(home: Path) -> Path:
    """Where the stack's processes (and ``cairn up``/``down`` themselves) write their logs."""
    return home / "logs"


def log_file(home: Path, part: Part) -> Path:
    """The file a part's process writes its output to."""
    return logs_dir(home) / f"{part.value}.log"


def part_url(record: StackRecord, part: Part) -> str:
    return record.urls()[part.value]


def api_healthy(api_url: str, timeout: float = 1.0) -> bool:
    import httpx  # here, not at the top: `cairn down` never asks, and httpx takes a while to import

    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def process_runs(home: Path, record: StackRecord, part: Part) -> bool:
    """Whether the part's recorded pid is alive and is that part's program."""
    marker = SERVICES_MODULE if part is Part.SERVICES else str(data_dir(home, part))
    return pid_runs(record.pids.get(part.value, 0), marker)


def part_states(home: Path, record: StackRecord) -> dict[Part, PartState]:
    """Each part: up when its recorded process runs and answers where the record says."""
    states = {}
    for part in Part:
        url = part_url(record, part)
        answers = api_healthy(url) if part is Part.SERVICES else reachable(url)
        up = answers and process_runs(home, record, part)
        states[part] = PartState(part=part, up=up, url=url, pid=record.pids.get(part.value, 0))
    return states
