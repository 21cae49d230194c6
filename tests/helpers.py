"""Kept for the imports of tests/api: the actions live in harness.api_actions."""

from harness.api_actions import Api

__all__ = ["Api"]
