"""The command-line tools, one module each (dispatched by ``streams.cli``)."""
