"""leadscore: Kafka-native lead scoring.

``streams.scoring`` is the pure scoring core (no I/O); everything else is the shell around it.
"""

__version__ = "0.1.0"
