"""NATS and JetStream protocol values Cairn sets or acts on: headers, status codes, error codes.

One enum each, so no module spells a header or compares a bare number.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Header(StrEnum):
    """NATS headers Cairn sets or reads."""

    MSG_ID = "Nats-Msg-Id"
    EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence"
    EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
    #: On a pull consumer's status messages: the NatsStatus, its description, what is left.
    STATUS = "Status"
    DESCRIPTION = "Description"
    PENDING_MESSAGES = "Nats-Pending-Messages"
    DEAD_LETTER_REASON = "Cairn-Dead-Letter-Reason"


class NatsStatus(StrEnum):
    """The ``Status`` header of the status messages a server sends to an inbox: to a pull
    consumer's (heartbeats, ended pulls) and to a publish's reply subject (no responders)."""

    HEARTBEAT = "100"
    REQUEST_TIMEOUT = "408"  # the pull request expired
    CONFLICT = "409"  # the pull ended early: consumer deleted, server shutdown, limits
    NO_RESPONDERS = "503"  # nothing serves the consumer (JetStream not up yet)


class JetStreamError(IntEnum):
    """JetStream API error codes (``err_code``) Cairn acts on."""

    CLUSTER_NOT_AVAILABLE = 10008
    STREAM_NAME_IN_USE = 10058
    SUBJECTS_OVERLAP = 10065  # another stream takes these subjects
    WRONG_LAST_SEQUENCE = 10071  # a compare-and-set expectation was stale
    BATCH_NOT_ENABLED = 10205  # the stream does not take fast-ingest batches
