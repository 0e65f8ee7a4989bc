"""Hypothesis profiles for the property-based tests.

``ci`` (the default) runs few examples with a fixed seed, so a run of the suite is
reproducible and stays fast; ``thorough`` runs many random examples, for hunting bugs
by hand: ``HYPOTHESIS_PROFILE=thorough pytest tests/properties``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,  # file system and libwkw timings vary too much for per-example deadlines
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}
settings.register_profile("ci", max_examples=25, derandomize=True, database=None, print_blob=True, **_COMMON)
settings.register_profile("thorough", max_examples=500, print_blob=True, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
