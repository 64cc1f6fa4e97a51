"""How long the fuzz tests run: a bounded number of examples in the normal suite.

``BLOCKSPACE_FUZZ_SCALE=20`` multiplies every example count (a longer hunt, by hand or in a
nightly job); the default keeps the whole of ``tests/fuzz`` to a few tens of seconds.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = float(os.environ.get("BLOCKSPACE_FUZZ_SCALE", "1"))


def fuzz(max_examples: int) -> settings:
    """Settings for one fuzz test: ``max_examples`` (scaled), no per-example deadline (time is
    bounded by the properties themselves), fixtures shared across examples allowed."""
    return settings(
        max_examples=max(1, int(max_examples * SCALE)),
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )


def timeout_s(seconds: float) -> float:
    """A test's pytest-timeout, scaled with its examples."""
    return seconds * max(1.0, SCALE)
