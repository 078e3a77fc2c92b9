"""The subject grammar: where each event family lives on JetStream.

Every subject is ``<root>.<family>.<token>...``. ``<root>`` is the stream's own first
token (``cairn`` for the stream ``CAIRN``; a test may make its own stream with another
root). A ``<family>`` is one :class:`Family` value; the tokens after it are:

==========================================  =================================================
``<root>.run.<run id>``                     ``run.started``, ``run.finished``
``<root>.step.<run id>``                    ``step.started``, ``step.finished``,
                                            ``step.failed``, ``cache.hit``, ``cache.missed``
                                            (one subject per run: in order)
``<root>.artifact.<name key>.<version key>``  ``artifact.materialized`` **and nothing else**
``<root>.metadata.<entity kind>.<entity key>``  metadata logged on a run, step run, artifact
                                            version or model version (issue 12)
``<root>.tag.<name key>``                   tags added to or removed from versions of a name
``<root>.prune.<name key>``                 a version pruned or deleted (issue 13)
``<root>.cache.<cache key>``                a key's entries and leases: ``cache.stored``,
                                            ``cache.leased``, ``cache.released``
``<root>.model.<name key>.<version key>``   model versions, claimed as artifact versions are
==========================================  =================================================

A version claim of name N compare-and-sets over ``<root>.artifact.<key of N>.*``: the
last sequence on that wildcard must be the one the claimer read. Anything else published
there would move that sequence and make every claim of N retry, or, worse, look like a
version. So facts *about* an artifact (its metadata, tags, prunes, cache entries) have
families of their own and never share the ``artifact`` family.

Keys are :func:`token` s: base64url without padding, so any text (dots, spaces,
wildcards, NUL) makes one valid, reversible subject token, and two names never share
a key. Run ids are UUIDs and used as they are.
"""

from __future__ import annotations

import base64
import functools
import re
from enum import StrEnum
from typing import Any

import msgspec


class Family(StrEnum):
    """The second token of every subject: which kind of fact lives there."""

    RUN = "run"
    STEP = "step"
    ARTIFACT = "artifact"  # version claims only
    METADATA = "metadata"
    TAG = "tag"
    PRUNE = "prune"
    CACHE = "cache"
    MODEL = "model"


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
_ROOT = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@functools.lru_cache(maxsize=4096)  # names recur: every version, every check of its subject
def token(text: str) -> str:
    """A subject token for arbitrary text (base64url, no padding)."""
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode("ascii")


def untoken(tok: str) -> str:
    """The text a :func:`token` was made from."""
    return base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)).decode()


# -- paths: a subject less its root --------------------------------------------------


def run_path(run_id: str) -> str:
    return f"{Family.RUN}.{run_id}"


def step_path(run_id: str) -> str:
    return f"{Family.STEP}.{run_id}"


def artifact_version_path(name: str, version: str) -> str:
    return f"{Family.ARTIFACT}.{token(name)}.{token(version)}"


def artifact_versions_path(name: str) -> str:
    """The wildcard covering every version of ``name``: what a claim compares and sets over."""
    return f"{Family.ARTIFACT}.{token(name)}.*"


#: What metadata can be about (the entity kinds of ``metadata_path``).
_ENTITY_KIND = re.compile(r"[a-z][a-z_]{0,39}")


def metadata_path(entity_kind: str, entity_id: str) -> str:
    """Where metadata about one entity goes; ``entity_kind`` is a word such as
    ``artifact_version``, ``step_run``, ``run`` or ``model_version``."""
    if not _ENTITY_KIND.fullmatch(entity_kind):
        raise ValueError(
            f"metadata entity kind {entity_kind!r} must be a lowercase word (letters and '_', "
            "e.g. 'artifact_version'): it is one subject token"
        )
    return f"{Family.METADATA}.{entity_kind}.{token(entity_id)}"


def tag_path(name: str) -> str:
    return f"{Family.TAG}.{token(name)}"


def prune_path(name: str) -> str:
    return f"{Family.PRUNE}.{token(name)}"


def cache_path(cache_key: str) -> str:
    return f"{Family.CACHE}.{token(cache_key)}"


def model_version_path(name: str, version: str) -> str:
    return f"{Family.MODEL}.{token(name)}.{token(version)}"


# -- streams ---------------------------------------------------------------------------


class EventStream(msgspec.Struct, frozen=True):
    """One event stream and its dead-letter stream: names, subjects and configuration.

    Declared once; the SDK's publisher and the projector both set streams up from it
    (see ``cairn.stream_setup``), so they always agree on what the stream holds.
    """

    name: str = "CAIRN"
    root: str = "cairn"
    duplicate_window_s: float = DUPLICATE_WINDOW_S

    def __post_init__(self) -> None:
        if not _STREAM_NAME.fullmatch(self.name):
            raise ValueError(f"stream name {self.name!r} must be 1-64 letters, digits, '-' or '_'")
        if not _ROOT.fullmatch(self.root):
            raise ValueError(
                f"subject root {self.root!r} must be a lowercase letter, then at most 31 "
                "lowercase letters, digits, '-' or '_'"
            )

    @classmethod
    def named(cls, name: str) -> EventStream:
        """The stream ``name`` with its root made from it: ``CAIRN`` -> ``cairn``,
        ``T_1f3a`` -> ``t_1f3a``. Names that differ only in case would share a root (and
        JetStream refuses the second stream); pass ``root=`` to ``EventStream`` for those."""
        root = name.lower()
        if not _ROOT.fullmatch(root):
            raise ValueError(
                f"stream name {name!r} makes no subject root: a root is a letter, then at most "
                "31 letters, digits, '-' or '_'; give one: EventStream(name=..., root=...)"
            )
        return cls(name=name, root=root)

    @property
    def subjects(self) -> list[str]:
        return [f"{self.root}.>"]

    @property
    def dead_letter_name(self) -> str:
        return f"{self.name}_DEAD_LETTERS"

    @property
    def dead_letter_subjects(self) -> list[str]:
        return [f"{self.root}-dead-letter.>"]

    def subject(self, path: str) -> str:
        """The whole subject for ``path`` (a ``*_path`` result) on this stream."""
        return f"{self.root}.{path}"

    def subject_of(self, event: Any) -> str:
        """The subject ``event`` belongs on in this stream (its class's subject rule)."""
        return f"{self.root}.{event.subject_path()}"

    def dead_letter_subject(self, consumer: str) -> str:
        return f"{self.root}-dead-letter.{consumer}"

    def config(self, *, allow_batched: bool | None = None) -> dict[str, Any]:
        """The JetStream stream configuration (nats-py ``StreamConfig`` keywords).

        ``allow_batched`` None leaves the field out, for servers that predate it.
        """
        return {
            "name": self.name,
            "subjects": self.subjects,
            "storage": "file",
            "duplicate_window": self.duplicate_window_s,
            "allow_batched": allow_batched,
        }

    def dead_letter_config(self) -> dict[str, Any]:
        return {
            "name": self.dead_letter_name,
            "subjects": self.dead_letter_subjects,
            "storage": "file",
            "duplicate_window": self.duplicate_window_s,
        }


#: The stream Cairn records to unless told otherwise.
DEFAULT_STREAM = EventStream()


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
