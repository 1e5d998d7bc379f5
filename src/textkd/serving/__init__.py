"""Serving: a FastAPI app around a saved model, with micro-batching and request limits (`textkd serve`)."""

from __future__ import annotations

from textkd.serving.app import MicroBatcher, ServeLimits, create_app, serve

__all__ = ["MicroBatcher", "ServeLimits", "create_app", "serve"]
