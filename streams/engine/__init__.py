"""The worker's engine: the loop, its stages, transactions, partitions, Kafka clients."""
