"""Claiming artifact versions by compare-and-set on the name's subjects.

The event for a new version of name N is published on N's own subject with
``Nats-Expected-Last-Subject-Sequence`` over every version subject of N; a
stale expectation (another writer got there first) is refused with
:attr:`JetStreamError.WRONG_LAST_SEQUENCE`, and the claim re-reads and retries.
A version number is therefore a fact of the log, and no two writers share one.

As in ZenML, a claim without a version takes one more than the name's highest
number so far (each event carries it as ``numeric_count``), and a claim of an
explicit number or label takes it if no version of the name has it yet.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from cairn_events import (
    STREAM,
    ArtifactMaterialized,
    Header,
    JetStreamError,
    artifact_version_subject,
    artifact_versions_filter,
    decode,
    encode,
    is_numeric_version,
)

from .errors import ArtifactVersionError


class Claimed(msgspec.Struct, frozen=True):
    """The stored version event and the stream sequence JetStream stored it at."""

    event: ArtifactMaterialized
    seq: int


class VersionClaims:
    """Claims versions over one JetStream context; remembers each name's last claim.

    A writer that remembers the sequence of its own last claim skips the read
    until it meets a conflict. Claims of one name are made one at a time.
    """

    def __init__(self, ack_timeout: float) -> None:
        self.ack_timeout = ack_timeout
        self._locks: dict[str, asyncio.Lock] = {}
        # name -> (stream seq, numeric count, claim order) of its newest version
        self._last: dict[str, tuple[int, int, int]] = {}

    def forget(self) -> None:
        """Re-read every name on its next claim (the stream may have moved meanwhile)."""
        self._last.clear()

    async def claim(
        self, js: Any, template: ArtifactMaterialized, requested: str | None
    ) -> Claimed:
        """Store ``template`` as the next numbered version of its name, or as ``requested``.

        Raises ArtifactVersionError if ``requested`` is taken; anything NATS raises
        propagates (the caller tells an outage from a refusal). A claim made again
        after an outage finds its own earlier attempt and returns it.
        """
        from nats.js.errors import APIError, NotFoundError

        name = template.name
        async with self._locks.setdefault(name, asyncio.Lock()):
            while True:
                last = self._last.get(name)
                if last is None:
                    last, mine = await self._read_last(js, template)
                    if mine is not None:
                        return mine
                last_seq, count, order = last
                if requested is not None:
                    try:
                        held = await js.get_last_msg(
                            STREAM, artifact_version_subject(name, requested)
                        )
                    except NotFoundError:
                        pass
                    else:
                        if (held.headers or {}).get(Header.MSG_ID) == template.event_id:
                            return Claimed(decode(held.data), held.seq)  # an earlier attempt
                        raise ArtifactVersionError(
                            f"Artifact '{name}' already has version '{requested}'; an explicit "
                            "version can be used once per name. Choose another version, or leave "
                            f"it out to get the next number ({count + 1})."
                        )
                version, count = _next(name, requested, count)
                event = msgspec.structs.replace(
                    template, version=version, numeric_count=count, claim_order=order + 1
                )
                headers = {
                    Header.MSG_ID: event.event_id,
                    Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(last_seq),
                    Header.EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT: artifact_versions_filter(name),
                }
                try:
                    ack = await js.publish(
                        artifact_version_subject(name, event.version),
                        encode(event),
                        headers=headers,
                        timeout=self.ack_timeout,
                    )
                except APIError as exc:
                    if exc.err_code != JetStreamError.WRONG_LAST_SEQUENCE:
                        raise
                    self._last.pop(name, None)  # another writer got there: re-read
                    continue
                if ack.duplicate:  # an earlier attempt of ours was stored: take its version
                    event = decode((await js.get_msg(STREAM, seq=ack.seq)).data)
                self._last[name] = (ack.seq, event.numeric_count, event.claim_order)
                return Claimed(event, ack.seq)

    async def _read_last(
        self, js: Any, template: ArtifactMaterialized
    ) -> tuple[tuple[int, int, int], Claimed | None]:
        """The newest version of the name (seq, count, order), and it if it is ours already."""
        from nats.js.errors import NotFoundError

        try:
            msg = await js.get_last_msg(STREAM, artifact_versions_filter(template.name))
        except NotFoundError:
            return (0, 0, 0), None
        latest: ArtifactMaterialized = decode(msg.data)
        mine = Claimed(latest, msg.seq) if latest.event_id == template.event_id else None
        return (msg.seq, latest.numeric_count, latest.claim_order), mine


def _next(name: str, requested: str | None, highest: int) -> tuple[str, int]:
    """The version a claim takes, and the name's highest number after it.

    ``highest`` is the name's highest version number so far: an unnumbered claim takes
    the one after it, an explicit number (checked free) may lie above or below it.
    """
    if requested is None:
        if highest >= ArtifactMaterialized.MAX_NUMBER:
            raise ArtifactVersionError(
                f"Artifact '{name}' already has the highest version number, {highest}; "
                "there is no next number. Give this output a label such as 'v3-final', or "
                "store it under another name."
            )
        return str(highest + 1), highest + 1
    if is_numeric_version(requested):
        return requested, max(highest, int(requested))
    return requested, highest
