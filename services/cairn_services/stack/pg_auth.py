"""How the local Postgres authenticates: a generated password (SCRAM) on TCP, trust on the socket.

The socket lives in the data directory (or a private temp dir), which only the
server's OS user (and root) may enter, so trusting it lets nobody else in; every
TCP client, local users included, needs the password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from cairn_services.stack.errors import StackError
from cairn_services.stack.managed import write_private_file

PG_HBA = """\
# Written by Cairn at every start; edits are overwritten.
# The unix socket is in an owner-only directory: trust it. TCP needs the password.
local   all  all                 trust
host    all  all  127.0.0.1/32   scram-sha-256
host    all  all  ::1/128        scram-sha-256
"""

#: Postgres's own default iteration count for scram-sha-256 verifiers.
_SCRAM_ITERATIONS = 4096


def scram_sha256_verifier(password: str, *, iterations: int = _SCRAM_ITERATIONS) -> str:
    """The ``SCRAM-SHA-256$...`` verifier Postgres stores for ``password`` (RFC 5802/7677).

    Sent in ``ALTER ROLE ... PASSWORD``, it sets the password without the password
    itself ever reaching the server (or its log, should the statement fail).
    """
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def read_password(path: Path) -> str | None:
    """The cluster's password from ``path``, or None if it has none yet."""
    try:
        password = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not password:
        raise StackError(
            f"The Postgres password file {path} is empty. Delete it: the next start "
            "generates a new password and sets it."
        )
    return password


def new_password() -> str:
    return secrets.token_urlsafe(24)


def save_password(path: Path, password: str) -> None:
    write_private_file(path, password + "\n")
