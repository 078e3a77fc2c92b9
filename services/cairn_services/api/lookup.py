"""Finding what a request names, in ZenML's order: id, then name, then id prefix.

A whole UUID is looked up as an id first (a name that looks like an id still works after
it). Any other text is a name; if nothing has that name and the text can begin an id
(:data:`~cairn_projections.ids.MIN_ID_PREFIX` hex digits or more, dashes where a UUID
has them), it is tried as an id prefix. A prefix several ids share is an
:class:`.errors.AmbiguousError` listing them; finding nothing is a
:class:`.errors.NotFoundError` saying what exists.

Artifacts and pipelines have ids derived from their names (see ``ids.artifact_id``),
so their ids are matched against every name's derived id.
"""

from __future__ import annotations

import asyncio
import difflib
import heapq
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cairn_projections import artifact_versions, ids, runs
from cairn_projections.artifact_versions import (
    ArtifactVersionRow,
    ArtifactWithVersions,
    VersionMatch,
)
from cairn_projections.runs import PipelineWithRuns, RecordedRun

from .errors import AmbiguousError, NotFoundError

#: How many entities a message lists at most.
MAX_LISTED = 10
_SIMILAR = 0.6  # difflib's own default cutoff for a close match


async def find_run(conn: Any, name_id_or_prefix: str) -> RecordedRun:
    """The run with this id, else the newest run with this name, else the one id prefix."""
    text = name_id_or_prefix
    whole_id = ids.is_uuid(text)
    run = await runs.get_run(conn, text.lower() if whole_id else text)
    if run is None and whole_id:
        run = await runs.get_run(conn, text)  # a run named like an id
    if run is not None:
        return run
    prefix = None if whole_id else ids.id_prefix(text)
    if prefix is not None:
        total, matches = await runs.find_runs_by_id_prefix(conn, prefix, limit=MAX_LISTED)
        if total > 1:
            listed = [f"{m.name} ({m.id})" for m in matches]
            raise AmbiguousError(_ambiguous("pipeline runs", text, total, listed))
        if matches and (found := await runs.get_run(conn, matches[0].id)) is not None:
            return found
    latest = await runs.list_runs(conn, limit=MAX_LISTED, include_steps=False)
    known = f"latest runs: {listing(r.name for r in latest)}" if latest else "no runs yet"
    if whole_id:
        raise NotFoundError(f"No pipeline run has id '{text}', nor is one named so; {known}")
    if prefix is not None:
        raise NotFoundError(
            f"No pipeline run is named '{text}' or has an id starting with '{text}'; {known}"
        )
    raise NotFoundError(f"No pipeline run with name or id '{text}'{_too_short(text)}; {known}")


async def find_artifact_version(
    conn: Any, name_id_or_prefix: str, version: str | None
) -> ArtifactVersionRow:
    """The version with this id, else ``version`` (latest if None) of this name, else the one
    version whose id starts with this. As in ZenML, ``version`` is ignored for an id or prefix.
    """
    text = name_id_or_prefix
    whole_id = ids.is_uuid(text)
    if whole_id and (found := await artifact_versions.get_artifact_version(conn, text.lower())):
        return found
    found = await version_named(conn, text, version or "latest")
    if found is not None:
        return found
    if version is not None and await artifact_versions.get_latest_artifact_version(conn, text):
        raise NotFoundError(await no_such_version(conn, text, version))
    prefix = None if whole_id else ids.id_prefix(text)
    if prefix is not None and (found := await _version_by_prefix(conn, text, prefix)):
        return found
    if whole_id:
        raise NotFoundError(
            f"No artifact version has id '{text}', nor is an artifact named so; check the id "
            "(an artifact's own id is not a version's: use get_artifact for it)"
        )
    also = f" and no artifact version id starts with '{text}'" if prefix else _too_short(text)
    raise NotFoundError(await no_such_name(conn, text, also=also))


async def _version_by_prefix(conn: Any, text: str, prefix: str) -> ArtifactVersionRow | None:
    """The one version whose id starts with ``prefix``; None if none; AmbiguousError if several."""
    total, matches = await artifact_versions.find_artifact_versions_by_id_prefix(
        conn, prefix, limit=MAX_LISTED
    )
    if total > 1:
        listed = [_version_label(m) for m in matches]
        raise AmbiguousError(_ambiguous("artifact versions", text, total, listed))
    return await artifact_versions.get_artifact_version(conn, matches[0].id) if matches else None


def _version_label(match: VersionMatch) -> str:
    return f"{match.name} version {match.version} ({match.id})"


async def version_named(conn: Any, name: str, version: str) -> ArtifactVersionRow | None:
    """``version`` of artifact ``name`` (``"latest"``: the newest claim)."""
    if version == "latest":
        return await artifact_versions.get_latest_artifact_version(conn, name)
    return await artifact_versions.get_artifact_version_by_name(conn, name, version)


N = TypeVar("N")


@dataclass(frozen=True)
class _Named(Generic[N]):
    """A kind of entity the events know only by name, with an id derived from the name."""

    singular: str
    plural: str
    names: Callable[[Any], Awaitable[list[str]]]
    derive_id: Callable[[str], str]
    get: Callable[[Any, str], Awaitable[N | None]]


_ARTIFACTS = _Named[ArtifactWithVersions](
    "artifact",
    "artifacts",
    artifact_versions.list_artifact_names,
    ids.artifact_id,
    artifact_versions.get_artifact,
)
_PIPELINES = _Named[PipelineWithRuns](
    "pipeline", "pipelines", runs.list_pipeline_names, ids.pipeline_id, runs.get_pipeline
)


async def find_artifact(conn: Any, name_id_or_prefix: str) -> ArtifactWithVersions:
    """The artifact with this id, else this name, else the one id prefix; with its versions."""
    return await _find_named(conn, name_id_or_prefix, _ARTIFACTS)


async def find_pipeline(conn: Any, name_id_or_prefix: str) -> PipelineWithRuns:
    """The pipeline with this id, else this name, else the one id prefix; with its runs."""
    return await _find_named(conn, name_id_or_prefix, _PIPELINES)


async def _find_named(conn: Any, text: str, kind: _Named[N]) -> N:
    whole_id = ids.is_uuid(text)
    if whole_id:
        for _, name in await _ids_starting_with(conn, text.lower(), kind):
            if (found := await kind.get(conn, name)) is not None:
                return found
    if (found := await kind.get(conn, text)) is not None:
        return found
    prefix = None if whole_id else ids.id_prefix(text)
    if prefix is not None:
        matches = await _ids_starting_with(conn, prefix, kind)
        if len(matches) == 1 and (found := await kind.get(conn, matches[0][1])) is not None:
            return found
        if len(matches) > 1:
            listed = [f"{name} ({id_})" for id_, name in matches[:MAX_LISTED]]
            raise AmbiguousError(_ambiguous(kind.plural, text, len(matches), listed))
    if whole_id:
        raise NotFoundError(f"No {kind.singular} has id '{text}', nor is one named so")
    also = f" and no {kind.singular} id starts with '{text}'" if prefix else _too_short(text)
    raise NotFoundError(await _no_such(conn, text, kind, also))


async def _ids_starting_with(conn: Any, prefix: str, kind: _Named[N]) -> list[tuple[str, str]]:
    """The ``(id, name)`` of every ``kind`` whose derived id starts with ``prefix``, by id."""
    names = await kind.names(conn)
    # Deriving every name's id is CPU work (some ms per 10k names): keep it off the loop.
    return await asyncio.to_thread(_derived_ids_starting_with, prefix, names, kind.derive_id)


def _derived_ids_starting_with(
    prefix: str, names: list[str], derive_id: Callable[[str], str]
) -> list[tuple[str, str]]:
    return sorted((i, name) for name in names if (i := derive_id(name)).startswith(prefix))


def _too_short(text: str) -> str:
    """What to add to a miss when ``text`` could be an id prefix but is too short for one."""
    hexish = text and all(c in "0123456789abcdefABCDEF-" for c in text)
    if hexish and len(text) < ids.MIN_ID_PREFIX:
        return f" (an id prefix needs at least {ids.MIN_ID_PREFIX} characters)"
    return ""


def _ambiguous(plural: str, prefix: str, total: int, listed: list[str]) -> str:
    more = f", ... ({total - len(listed)} more)" if total > len(listed) else ""
    return (
        f"'{prefix}' is no name, and the ids of {total} {plural} start with it: "
        f"{', '.join(listed)}{more}. Give more characters of the id, or the whole id."
    )


async def no_such_version(conn: Any, name: str, version: str) -> str:
    """Why artifact ``name`` has no ``version``, listing the versions it has."""
    versions = await artifact_versions.list_artifact_versions(conn, name)
    if not versions:
        return await no_such_name(conn, name)
    latest = await artifact_versions.get_latest_artifact_version(conn, name)
    assert latest is not None
    listed = listing((v.version for v in versions), limit=20)
    return f"Artifact '{name}' has no version '{version}'; versions: {listed} (latest {latest.version})"


async def no_such_name(conn: Any, name: str, *, also: str = "") -> str:
    """That no artifact is named ``name`` (``also``: what else was tried), and similar names."""
    return await _no_such(conn, name, _ARTIFACTS, also)


async def _no_such(conn: Any, name: str, kind: _Named[Any], also: str) -> str:
    names = await kind.names(conn)
    missing = f"No {kind.singular} named '{name}'{also}"
    if not names:
        return f"{missing}; there are no {kind.plural} yet"
    # Scoring every name is CPU work (about a second over 20k names): keep it off the loop.
    closest = await asyncio.to_thread(_closest, name, names)
    similar = [candidate for score, candidate in closest if score >= _SIMILAR]
    if similar:
        return f"{missing}; similar names: {listing(similar)}"
    listed = listing(candidate for _, candidate in closest)
    return f"{missing}; {kind.singular} names (closest first): {listed}"


def _closest(word: str, candidates: list[str]) -> list[tuple[float, str]]:
    """The candidates most like ``word``, best first, with their difflib ratio."""
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(word)
    scored = []
    for candidate in candidates:
        matcher.set_seq1(candidate)
        scored.append((matcher.ratio(), candidate))
    return heapq.nlargest(MAX_LISTED, scored)


def listing(items: Any, limit: int = MAX_LISTED) -> str:
    """Items joined for a message: at most ``limit``, saying how many were left out."""
    items = list(items)
    shown = ", ".join(str(i) for i in items[:limit])
    return f"{shown}, ... ({len(items) - limit} more)" if len(items) > limit else shown
