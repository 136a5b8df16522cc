"""Helpers for settings read from the environment."""

from __future__ import annotations

from typing import Any


def split_list(value: Any) -> Any:
    """Accept ``a,b`` from the environment as well as a real list (a ``mode="before"`` hook)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value
