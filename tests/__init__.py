"""
Tests of TwistedPACS, run with C{python -m twisted.trial tests}.

Hypothesis runs derandomized in CI (C{CI} set in the environment), so a CI run
is repeatable and its duration bounded.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
