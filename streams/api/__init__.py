"""The HTTP side of a worker: scores, explanations, health, and top lists."""
