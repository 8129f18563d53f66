"""``leadscore worker``: builds the Faust app from the settings and runs it until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import sys

import faust

from streams.app import create_app
from streams.errors import LeadscoreError
from streams.settings import load_settings

log = logging.getLogger(__name__)


def run_worker() -> int:
    try:
        settings = load_settings()
        app = create_app(settings)
    except LeadscoreError as exc:
        print(f"leadscore worker: {exc}", file=sys.stderr)
        return 2
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()  # returns only via SystemExit on shutdown
    return 0
