"""Local state of the entity stage: a RocksDB store per owned partition and a cache above them.

One concern per layer (Kafka Streams' caching store over its change-logging store over RocksDB):
:mod:`streams.state.cache` holds decoded states and knows what is dirty; :mod:`streams.state.store`
holds committed bytes, the due index and the changelog position; :mod:`streams.state.restore`
rebuilds a store from the changelog topic.
"""
