"""``leadscore worker --help``: the settings, listed from ``streams.settings.Settings``.

The list is built only when the help is printed: importing the settings (pydantic) costs about
0.2 s, which the other commands do not pay.
"""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Run the stream service: consume the input topics, score, publish every change, serve HTTP.\n"
    "It takes no arguments: every setting is a LEADSCORE_* environment variable, listed below\n"
    "with its default. docs/operations.md (section Settings) has each one in detail."
)
#: Stands for the settings list in the parser's epilog until the help is formatted.
EPILOG = "(the LEADSCORE_* settings)"


class WorkerHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's lines, and writes the settings list in place of ``EPILOG``."""

    def add_text(self, text: str | None) -> None:
        if text == EPILOG:
            from streams.settings import settings_help

            text = settings_help()
        super().add_text(text)
