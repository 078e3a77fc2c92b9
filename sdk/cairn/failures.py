"""How a failed step is recorded and handed on: its error as events can hold it.

A step's exception travels from the step executor to the runner as a
:class:`StepFailure` (which step, which error), so the runner can record the
run as failed and re-raise the step's own exception. The text of an error and
its traceback are kept within bounds (events stay far below 1 MB) and free of
NUL, which Postgres refuses.
"""

from __future__ import annotations

import traceback

#: What a failed step's event keeps of its error and traceback.
MAX_ERROR_CHARS = 8_000
MAX_TRACEBACK_CHARS = 64_000


class StepFailure(Exception):
    """Step ``step_name`` raised ``error`` (step.failed is already published)."""

    def __init__(self, step_name: str, error: BaseException) -> None:
        super().__init__(step_name, error)
        self.step_name, self.error = step_name, error


def recordable(text: str, limit: int) -> str:
    """``text`` as an event can hold it: NUL escaped, at most about ``limit`` characters."""
    text = text.replace("\x00", "\\x00")
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}\n... ({len(text):,} characters in all) ...\n{text[-limit // 2 :]}"


def error_summary(error: BaseException) -> str:
    """``Type: message`` of ``error``, as run.finished records why a run failed."""
    return recordable(f"{type(error).__name__}: {error}", MAX_ERROR_CHARS)


def error_message(error: BaseException) -> str:
    """The message of ``error``, as step.failed records it."""
    return recordable(str(error), MAX_ERROR_CHARS)


def traceback_text(error: BaseException) -> str:
    """The formatted traceback of ``error``, as step.failed records it."""
    return recordable("".join(traceback.format_exception(error)), MAX_TRACEBACK_CHARS)
