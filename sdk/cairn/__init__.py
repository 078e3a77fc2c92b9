"""Cairn: artifact tracking for ML pipelines.

Write steps and pipelines as Python functions; every value a step returns
becomes a named, versioned artifact whose lineage is recorded as events on
NATS JetStream and read back through ``Client``.
"""

from __future__ import annotations

from .artifact_functions import load_artifact, save_artifact
from .cache_policy import CachePolicy
from .client import Client
from .config import ArtifactConfig
from .context import StepContext, get_step_context
from .errors import (
    AmbiguousError,
    ApiError,
    ArtifactNameError,
    ArtifactVersionError,
    CairnError,
    CallError,
    EventRefusedError,
    NotFoundError,
    ParameterError,
    ServiceUnavailableError,
    StackUnavailableError,
    StepDefinitionError,
    StepTypeError,
)
from .external_artifact import ExternalArtifact
from .metadata_logging import (
    log_artifact_metadata,
    log_metadata,
    log_model_metadata,
    log_step_metadata,
)
from .models import ArtifactVersion, PipelineRun, StepRun
from .pipelines import Pipeline, pipeline
from .steps import Step, step

__version__ = "0.1.0"

__all__ = [
    "AmbiguousError",
    "ApiError",
    "ArtifactConfig",
    "ArtifactNameError",
    "ArtifactVersion",
    "ArtifactVersionError",
    "CachePolicy",
    "CairnError",
    "CallError",
    "Client",
    "EventRefusedError",
    "ExternalArtifact",
    "NotFoundError",
    "ParameterError",
    "Pipeline",
    "PipelineRun",
    "ServiceUnavailableError",
    "StackUnavailableError",
    "Step",
    "StepContext",
    "StepDefinitionError",
    "StepRun",
    "StepTypeError",
    "get_step_context",
    "load_artifact",
    "log_artifact_metadata",
    "log_metadata",
    "log_model_metadata",
    "log_step_metadata",
    "pipeline",
    "save_artifact",
    "step",
]
