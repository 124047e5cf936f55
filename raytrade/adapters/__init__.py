"""The edges: Kafka, market data, ledger stores, broker models."""
