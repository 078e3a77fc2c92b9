"""The local stack's credentials: where ``cairn up`` takes them from, and what a stack runs with.

A secret given as a command-line value is readable by every local user
(``ps -eo args``), so ``cairn up`` takes secrets from the environment or from
files only, and passes them on through files and environments too.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import msgspec
from cairn.settings import StackRecord

from cairn_services.stack.errors import StackError

API_TOKEN_ENV = "CAIRN_API_TOKEN"
NATS_PASSWORD_ENV = "CAIRN_NATS_PASSWORD"


class StackCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """What the API and NATS of a local stack require; None: nothing."""

    api_token: str | None = None
    nats_user: str | None = None
    nats_password: str | None = None

    @classmethod
    def of_record(cls, record: StackRecord) -> StackCredentials:
        """The credentials a recorded stack runs with (NATS's are in its URL)."""
        url = urlsplit(record.nats_url)
        return cls(api_token=record.api_token, nats_user=url.username, nats_password=url.password)

    def overridden_by(self, requested: StackCredentials | None) -> StackCredentials:
        """These credentials with every part ``requested`` names replaced by it."""
        if requested is None:
            return self
        nats_given = requested.nats_user is not None
        return StackCredentials(
            api_token=requested.api_token if requested.api_token is not None else self.api_token,
            nats_user=requested.nats_user if nats_given else self.nats_user,
            nats_password=requested.nats_password if nats_given else self.nats_password,
        )

    def changes_from(self, running: StackCredentials) -> list[str]:
        """What would differ from ``running``, in words ("the API token", ...)."""
        changed = []
        if self.api_token != running.api_token:
            changed.append("the API token")
        if (self.nats_user, self.nats_password) != (running.nats_user, running.nats_password):
            changed.append("the NATS user and password")
        return changed


def read_secret_file(path: Path, option: str) -> str:
    """The secret in ``path`` (one line; a trailing newline is dropped)."""
    try:
        secret = path.read_text().rstrip("\r\n")
    except OSError as exc:
        raise StackError(f"{option} {path}: cannot read it ({exc.strerror}).") from None
    if not secret:
        raise StackError(f"{option} {path}: the file is empty; put the secret on its first line.")
    return secret


def refuse_secret_on_command_line(option: str, env_var: str, file_option: str) -> StackError:
    """The error for a secret given as a command-line value, saying why and what to use."""
    return StackError(
        f"{option} takes no value on the command line: every local user can read a "
        f"command line (ps -eo args). Put it in the environment ({env_var}=...) or in a "
        f"file only you can read ({file_option} PATH)."
    )
