"""The per-process tracker: publisher, artifact store and what a run needs of them.

Created on first use (the first pipeline run, save or query), not at import.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from cairn_events import ArtifactMaterialized, Event, is_numeric_version, new_id

from .errors import ArtifactVersionError
from .settings import Settings, resolve_settings

if TYPE_CHECKING:
    from .artifact_stores import ArtifactStore
    from .naming import OutputSpec
    from .publishing import EventPublisher
    from .steps import Step


class Tracker:
    """Sends one process's events and stores its artifacts."""

    def __init__(self, settings: Settings) -> None:
        from .artifact_stores.location import store_for
        from .publishing import EventPublisher

        self.settings = settings
        self.store: ArtifactStore = store_for(settings.artifact_store)
        self.publisher: EventPublisher = EventPublisher(
            settings.nats_url, settings.spool_dir
        ).start()
        self.flush_timeout = float(os.environ.get("CAIRN_FLUSH_TIMEOUT", "120"))

    @property
    def last_seq(self) -> int:
        """Stream sequence of the newest acknowledged event this process published."""
        return self.publisher.last_seq

    def publish(self, event: Event) -> None:
        self.publisher.publish(event)

    def claim_version(
        self, template: ArtifactMaterialized, requested: str | None
    ) -> Future[ArtifactMaterialized]:
        return self.publisher.claim(template, requested)

    def flush(self) -> int:
        """Wait until NATS has everything; if it stays away, say where the events are kept."""
        if not self.publisher.flush(self.flush_timeout):
            sys.stderr.write(
                f"cairn: NATS at {self.settings.nats_url} is unreachable; "
                f"events are kept in {self.publisher.spool.path} and will be sent when it is back\n"
            )
        return self.publisher.last_seq

    def save_outputs(
        self,
        step: Step,
        step_run_id: str,
        run_id: str,
        specs: list[OutputSpec],
        values: list[Any],
        names: dict[str, str],
    ) -> list[tuple[ArtifactMaterialized, str | None]]:
        """Store each output; all or none (files of a failed save are removed)."""
        from .materializers import materializer_for, qualified_name

        saved: list[tuple[ArtifactMaterialized, str | None]] = []
        try:
            for spec, value in zip(specs, values, strict=True):
                config = spec.config
                requested = _requested_version(config.version if config else None, names[spec.key])
                materializer_cls = step.materializer_for_output(spec.key) or materializer_for(
                    type(value)
                )
                artifact_version_id = new_id()
                uri = self.store.artifact_uri(names[spec.key], artifact_version_id)
                materializer = materializer_cls(uri, self.store)
                materializer.save(value)
                visualizations = materializer.save_visualizations(value)
                content_hash, size = self.store.digest(uri)
                artifact_type = (
                    (config.artifact_type if config else None)
                    or ("model" if config and config.is_model_artifact else None)
                    or materializer_cls.ASSOCIATED_ARTIFACT_TYPE
                )
                template = ArtifactMaterialized(
                    artifact_version_id=artifact_version_id,
                    name=names[spec.key],
                    version="",
                    numeric_count=0,
                    uri=uri,
                    artifact_type=artifact_type,
                    data_type=qualified_name(type(value)),
                    materializer=qualified_name(materializer_cls),
                    content_hash=content_hash,
                    size=size,
                    producer_run_id=run_id,
                    producer_step_run_id=step_run_id,
                    output_name=spec.key,
                    tags=list(config.tags) if config else [],
                    visualizations=visualizations,
                )
                saved.append((template, requested))
        except BaseException:
            for template, _ in saved:
                self.store.rmtree(template.uri)
            raise
        return saved

    def close(self) -> None:
        self.publisher.close()


def _requested_version(version: str | int | None, name: str) -> str | None:
    if version is None:
        return None
    text = str(version)
    if is_numeric_version(text) or not text.strip():
        raise ArtifactVersionError(
            f"Artifact '{name}' was given the version {version!r}; numbered versions are "
            "assigned by Cairn. Use a label such as 'v3-final' or 'prod', or leave version out."
        )
    return text


_tracker: Tracker | None = None
_tracker_pid: int | None = None
_lock = threading.Lock()


def get_tracker() -> Tracker:
    """This process's tracker, connected on first use (and again after a fork)."""
    global _tracker, _tracker_pid
    with _lock:
        if _tracker is None or _tracker_pid != os.getpid():
            _tracker = Tracker(resolve_settings())
            _tracker_pid = os.getpid()
            atexit.register(_tracker.close)
        return _tracker


def reset_tracker() -> None:
    """Close and forget this process's tracker (tests switch servers with it)."""
    global _tracker
    with _lock:
        if _tracker is not None and _tracker_pid == os.getpid():
            _tracker.close()
        _tracker = None
