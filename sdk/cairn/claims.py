"""Claiming artifact versions by compare-and-set on the name's subjects.

The event for a new version of name N is published on N's own subject with
``Nats-Expected-Last-Subject-Sequence`` over every version subject of N; a
stale expectation (another writer got there first) is refused with
:attr:`JetStreamError.WRONG_LAST_SEQUENCE`, and the claim re-reads and retries.
A version number is therefore a fact of the log, and no two writers share one.

As in ZenML, a claim without a version takes one more than the name's highest
number so far (each event carries it as ``numeric_count``), and a claim of an
explicit number or label takes it if no version of the name has it yet.

:class:`VersionClaims` is the compare-and-set; :class:`Claimer` runs claims on the
publisher's loop: a claim NATS refuses is quarantined and fails its caller, one NATS
is away for is spooled and made again from the spool when it is back.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any

import msgspec
import structlog
from cairn_events import (
    ArtifactMaterialized,
    EventDecodeError,
    EventStream,
    Header,
    JetStreamError,
    artifact_version_path,
    artifact_versions_path,
    decode,
    encode,
    is_numeric_version,
)

from .connection import Link
from .errors import ArtifactVersionError, EventRefusedError
from .outbox import ClaimRequest, Outbox
from .quarantine import Quarantine
from .refusals import Refused, refusal_before_sending, refusal_of
from .spool import SpoolEntry, claim_entry

log = structlog.get_logger(__name__)


class Claimed(msgspec.Struct, frozen=True):
    """The stored version event and the stream sequence JetStream stored it at."""

    event: ArtifactMaterialized
    seq: int


class VersionClaims:
    """Claims versions on ``stream``'s subjects; remembers each name's last claim.

    A writer that remembers the sequence of its own last claim skips the read
    until it meets a conflict. Claims of one name are made one at a time.
    """

    def __init__(self, stream: EventStream, ack_timeout: float) -> None:
        self.stream = stream
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

        name, stream = template.name, self.stream
        every_version = stream.subject(artifact_versions_path(name))
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
                            stream.name, stream.subject(artifact_version_path(name, requested))
                        )
                    except NotFoundError:
                        pass
                    else:
                        if (held.headers or {}).get(Header.MSG_ID) == template.event_id:
                            return Claimed(version_event(held.data), held.seq)  # an earlier attempt
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
                    Header.EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT: every_version,
                }
                try:
                    ack = await js.publish(
                        stream.subject(artifact_version_path(name, event.version)),
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
                    event = version_event((await js.get_msg(stream.name, seq=ack.seq)).data)
                self._last[name] = (ack.seq, event.numeric_count, event.claim_order)
                return Claimed(event, ack.seq)

    async def _read_last(
        self, js: Any, template: ArtifactMaterialized
    ) -> tuple[tuple[int, int, int], Claimed | None]:
        """The newest version of the name (seq, count, order), and it if it is ours already."""
        from nats.js.errors import NotFoundError

        try:
            msg = await js.get_last_msg(
                self.stream.name, self.stream.subject(artifact_versions_path(template.name))
            )
        except NotFoundError:
            return (0, 0, 0), None
        latest = version_event(msg.data)
        mine = Claimed(latest, msg.seq) if latest.event_id == template.event_id else None
        return (msg.seq, latest.numeric_count, latest.claim_order), mine


def version_event(data: bytes) -> ArtifactMaterialized:
    """The artifact version in ``data``: nothing else belongs on a name's claim subjects."""
    event = decode(data)
    if not isinstance(event, ArtifactMaterialized):
        raise EventDecodeError(f"a {event.tag} event where only artifact versions belong")
    return event


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


class Claimer:
    """Runs version claims on the publisher's loop, over its link, tracked in its outbox."""

    def __init__(
        self, link: Link, outbox: Outbox, quarantine: Quarantine, *, ack_timeout: float
    ) -> None:
        self._link = link
        self._outbox = outbox
        self._quarantine = quarantine
        self._versions = VersionClaims(link.stream, ack_timeout)

    def forget(self) -> None:
        """Re-read every name on its next claim (a new connection: the stream may have moved)."""
        self._versions.forget()

    def start(self, claim: ClaimRequest) -> None:
        """Claim in a task of its own (claims of other names need not wait for it)."""
        task = asyncio.get_running_loop().create_task(self._run(claim))
        claiming = self._outbox.claiming
        claiming[task] = claim
        task.add_done_callback(claiming.pop)

    async def _run(self, claim: ClaimRequest) -> None:
        try:
            await self._claim(claim.template, claim.requested, claim.future)
        except ArtifactVersionError as exc:
            _settle(claim.future, exc)
        except Refused as refused:
            entry = claim_entry(claim.template, claim.requested, self._link.stream)
            self._quarantine.keep(entry, refused.reason)
            _settle(claim.future, self._refused_error(claim.template, refused.reason))
        except Exception as exc:  # NATS went away mid-claim: redo it from the spool
            log.info("publisher.claim_deferred", name=claim.template.name, error=str(exc))
            self._outbox.spool_items([claim])

    async def redo(self, entry: SpoolEntry) -> int:
        """Make a spooled claim again, settling its caller's future if it is still waiting.

        Returns 1 if the version was stored, 0 if the claim was quarantined; raises when
        NATS is away (the drain waits and redoes it).
        """
        try:
            template = version_event(bytes(entry.event))
        except Exception as exc:
            self._quarantine.keep(entry, f"the spooled claim cannot be read: {exc}")
            return 0
        spooled = self._outbox.spooled_claims
        future = spooled.get(template.event_id)
        try:
            await self._claim(template, entry.requested_version, future)
        except ArtifactVersionError as exc:
            self._quarantine.keep(entry, str(exc))
            reason: BaseException = exc
        except Refused as refused:
            self._quarantine.keep(entry, refused.reason)
            reason = self._refused_error(template, refused.reason)
        else:
            spooled.pop(template.event_id, None)
            return 1
        spooled.pop(template.event_id, None)
        if future is not None:
            _settle(future, reason)
        return 0

    async def _claim(
        self,
        template: ArtifactMaterialized,
        requested: str | None,
        future: Future[ArtifactMaterialized] | None,
    ) -> None:
        """Claim a version; raises Refused when NATS refuses it, anything else when it is away."""
        # The size is left to nats-py (MaxPayloadError) and JetStream: a claim waits for its answer.
        stream = self._link.stream
        subject = stream.subject(artifact_version_path(template.name, requested or "0"))
        reason = refusal_before_sending(subject, 0, self._link.max_payload, stream)
        if reason is not None:
            raise Refused(reason)
        try:
            claimed = await self._versions.claim(self._link.js, template, requested)
        except ArtifactVersionError:
            raise
        except Exception as exc:
            if (reason := refusal_of(exc)) is not None:
                raise Refused(reason) from exc
            raise
        self._outbox.acknowledged(claimed.seq)
        if future is not None:
            _settle(future, claimed.event)

    def _refused_error(self, template: ArtifactMaterialized, reason: str) -> EventRefusedError:
        return EventRefusedError(
            f"NATS refused the version claim of artifact '{template.name}': {reason}. "
            f"It is kept in {self._quarantine.directory}; see `cairn spool status`."
        )


def _settle(
    future: Future[ArtifactMaterialized], outcome: ArtifactMaterialized | BaseException
) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
