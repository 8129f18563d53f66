"""What goes over the wire: codecs, records, the schema registry, outputs, dead letters, topics."""
