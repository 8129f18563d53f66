"""Errors of the service shell (the scoring core has its own in ``streams.scoring.errors``).

LeadscoreError
├── SettingsError   a LEADSCORE_* variable is invalid: start-up stops, naming the variable
└── StartupError    the plan or the broker is unusable at start-up: says what to do
"""

from __future__ import annotations


class LeadscoreError(Exception):
    """Root of the service's own errors."""


class SettingsError(LeadscoreError):
    """Invalid settings; the message names each offending environment variable."""


class StartupError(LeadscoreError):
    """The service cannot start; the message says what the operator must fix."""
