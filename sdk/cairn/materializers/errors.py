"""Errors raised by materializers: defined wrongly, not found by name, or given a wrong type."""

from __future__ import annotations

__all__ = ["MaterializerError", "MaterializerNotFoundError", "MaterializerTypeError"]


class MaterializerError(Exception):
    """A materializer is defined wrongly or could not save or load an artifact."""


class MaterializerNotFoundError(MaterializerError, LookupError):
    """A materializer recorded by name could not be imported."""


class MaterializerTypeError(MaterializerError, TypeError):
    """A materializer was asked to save or load a type its ASSOCIATED_TYPES do not cover."""
