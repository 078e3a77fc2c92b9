"""Stream and subject names: where each event family lives on JetStream.

Artifact versions of one name share the prefix ``cairn.artifact.<name key>``
so a version claim can compare-and-set over ``<prefix>.*`` in one round trip.
Name and version keys are base64url (no padding), so any name is a valid,
reversible subject token.
"""

from __future__ import annotations

import base64
import functools
import re
from enum import IntEnum, StrEnum

STREAM = "CAIRN"
STREAM_SUBJECTS = ["cairn.>"]
DEAD_LETTER_STREAM = "CAIRN_DEAD_LETTERS"
DEAD_LETTER_SUBJECTS = ["cairn-dead-letter.>"]
#: How long JetStream remembers a Nats-Msg-Id, so a retried publish is dropped.
DUPLICATE_WINDOW_S = 120.0
#: The oldest nats-server Cairn works with: version claims compare-and-set over the name's
#: wildcard subject with Nats-Expected-Last-Subject-Sequence-Subject, new in 2.11.
NATS_SERVER_REQUIRED = (2, 11)
#: The first nats-server release that takes fast-ingest batches (streams with allow_batched).
FAST_INGEST_SINCE = (2, 14)

#: The longest subject Cairn publishes on. Artifact names and versions of at most
#: MAX_LABEL_BYTES make subjects under 700 bytes; nats-server's control line is 4,096.
MAX_SUBJECT_BYTES = 1024

_NUMERIC = re.compile(r"[1-9][0-9]*")


class Header(StrEnum):
    """NATS headers Cairn sets or reads."""

    MSG_ID = "Nats-Msg-Id"
    EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence"
    EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
    DEAD_LETTER_REASON = "Cairn-Dead-Letter-Reason"


class JetStreamError(IntEnum):
    """JetStream API error codes (``err_code``) Cairn acts on."""

    CLUSTER_NOT_AVAILABLE = 10008
    STREAM_NAME_IN_USE = 10058
    WRONG_LAST_SEQUENCE = 10071  # a compare-and-set expectation was stale
    BATCH_NOT_ENABLED = 10205  # the stream does not take fast-ingest batches


@functools.lru_cache(maxsize=4096)  # names recur: every version, every check of its subject
def token(text: str) -> str:
    """A subject token for arbitrary text (base64url, no padding)."""
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode("ascii")


def untoken(tok: str) -> str:
    """The text a :func:`token` was made from."""
    return base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)).decode()


def run_subject(run_id: str) -> str:
    return f"cairn.run.{run_id}"


def step_subject(run_id: str) -> str:
    return f"cairn.step.{run_id}"


def artifact_name_prefix(name: str) -> str:
    return f"cairn.artifact.{token(name)}"


def artifact_versions_filter(name: str) -> str:
    """The wildcard subject covering every version of ``name``."""
    return f"{artifact_name_prefix(name)}.*"


def artifact_version_subject(name: str, version: str) -> str:
    return f"{artifact_name_prefix(name)}.{token(version)}"


def dead_letter_subject(consumer: str) -> str:
    return f"cairn-dead-letter.{consumer}"


#: The highest version number an artifact version can have: numbers are stored as
#: Postgres bigint, and the next unnumbered version must still fit.
MAX_VERSION_NUMBER = 2**63 - 1


def is_numeric_version(version: str) -> bool:
    """Whether ``version`` is written as a version number: ``"1"``, ``"2"``, ``"44"``, ...

    Only the canonical decimal form counts (no sign, blanks or leading zeros), so one
    number has one version text and one subject. The range is checked separately
    (see :data:`MAX_VERSION_NUMBER`).
    """
    return _NUMERIC.fullmatch(version) is not None
