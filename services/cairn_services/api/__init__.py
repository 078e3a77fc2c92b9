"""The HTTP query API over Cairn's read models."""

from __future__ import annotations

from .app import create_app, serve_api

__all__ = ["create_app", "serve_api"]
