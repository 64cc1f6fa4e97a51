"""Shared fixtures. Redis fixtures live in tests/redis_server.py (a real server per test run)."""

from __future__ import annotations

pytest_plugins = ["tests.redis_server"]
