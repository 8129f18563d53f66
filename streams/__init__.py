"""leadscore: Kafka-native lead scoring.

``streams.scoring`` is the pure scoring core (no I/O); everything else is the shell around it.
Which build of the core runs (mypyc-compiled or pure Python) is chosen here, before anything
imports it: see ``streams.native`` and ``LEADSCORE_CORE``.
"""

from streams import native

__version__ = "0.1.0"

native.select()
