"""What may be an artifact name, an explicit version or a run name.

Names and versions travel base64url-encoded in subjects (see :mod:`._subjects`), so
their length bounds a subject's: at :data:`MAX_LABEL_BYTES` each, a claim's subject
and headers stay far below nats-server's 4,096-byte control line. The other rules
keep every stored name reachable again: by URL (no ``.``/``..`` path segments), by
terminal and by log line (no control characters).
"""

from __future__ import annotations

import re

#: The most UTF-8 bytes an artifact name, an explicit version or a run name may have.
MAX_LABEL_BYTES = 255

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def label_problem(text: object) -> str | None:
    """Why ``text`` cannot name an artifact, a version or a run; None when it can.

    The reason completes a sentence such as "Artifact name 'x' ...".
    """
    if not isinstance(text, str):
        return f"is a {type(text).__name__}, not a string"
    if not text.strip():
        return "is empty or blank"
    if text in (".", ".."):
        return "is '.' or '..', which cannot be looked up by URL"
    if control := _CONTROL.search(text):
        return (
            f"contains the control character {control.group()!r} at position {control.start()}"
            "; names may not hold newlines, tabs, NUL or other control characters"
        )
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        return "is not valid Unicode (it holds a lone surrogate)"
    if size > MAX_LABEL_BYTES:
        return f"is {size} bytes long in UTF-8; the limit is {MAX_LABEL_BYTES} bytes"
    return None
