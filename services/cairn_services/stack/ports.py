"""Ports and processes: free-port picking, waiting for a listener, stopping a pid."""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from cairn_services.stack.errors import StackError

log = structlog.get_logger(__name__)

_POLL_S = 0.02


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that was free a moment ago (the OS picks it).

    Another process may still grab it before the caller binds it; callers that
    can, retry on "address already in use".
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    """Whether a server could bind `host`:`port` now (SO_REUSEADDR, as servers bind)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # Without it a port whose old connections linger in TIME_WAIT would look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def connect_host(host: str) -> str:
    """The address to connect to for a server listening on `host` (wildcards -> loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def wait_for_port(
    host: str, port: int, timeout: float, *, check: Callable[[], None] | None = None
) -> None:
    """Block until a TCP connect to host:port succeeds.

    `check` is called before each attempt; it may raise to abort the wait (e.g.
    when the server process has died). Raises TimeoutError after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    target = (connect_host(host), port)
    while True:
        if check is not None:
            check()
        try:
            with socket.create_connection(target, timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"nothing accepted TCP connections on {target[0]}:{port} within {timeout:.1f}s"
            )
        time.sleep(_POLL_S)


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        # Reap it if it is our own child, so a zombie does not look alive.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno != errno.EPERM:
            return False
    # A detached server's zombie waits for an init that may never reap it: it is not alive.
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (or it just went): kill(0) is all we know
    return stat_line.rpartition(")")[2].split()[:1] not in (["Z"], ["X"])


def pid_runs(pid: int, marker: str) -> bool:
    """True if `pid` is alive and its command line contains `marker` (guards against pid reuse)."""
    if pid <= 0 or not pid_alive(pid):
        return False
    if not Path("/proc/self").exists():
        return True  # no /proc on this system: the pid is all we know
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False  # it went meanwhile
    return marker.encode() in cmdline.replace(b"\0", b" ")


def terminate_pid(pid: int, signals: Sequence[int], timeout: float) -> bool:
    """Send each signal in turn, waiting up to `timeout` s after each, then SIGKILL.

    Returns True if the process is gone (or never existed), False if even SIGKILL
    did not end it within `timeout`.
    """
    for sig in [*signals, signal.SIGKILL]:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return True
            time.sleep(_POLL_S)
        log.warning("process.signal_ignored", pid=pid, signal=signal.Signals(sig).name)
    return not pid_alive(pid)


def start_with_port_retry(
    launch: Callable[[int], None], host: str, port: int | None, what: str, tries: int = 3
) -> int:
    """Call `launch(port)`; with no fixed `port`, pick free ones and retry on a clash.

    Returns the port the server was started on. `launch` raises StackError whose
    message contains "address already in use" when the port was taken meanwhile.
    """
    for attempt in range(tries):
        chosen = port if port is not None else free_port(host)
        try:
            launch(chosen)
            return chosen
        except StackError as exc:
            # Another process may have taken the free port between pick and bind.
            if port is not None or "address already in use" not in str(exc).lower():
                raise
            log.warning("process.port_taken", server=what, port=chosen, attempt=attempt)
    raise StackError(f"could not find a free port for {what} after {tries} tries")


def log_tail(path: Path | None, lines: int = 20) -> str:
    """The last `lines` lines of a log file, or a note saying there is none."""
    if path is None or not path.exists():
        return "(no log file)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(log file is empty)"
