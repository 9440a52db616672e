"""Shared pieces of every job: configuration, the Spark session, the table registry, ticks."""
