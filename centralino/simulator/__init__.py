"""Asterisk peer for tests, the demo, benchmarks and load runs; never part of the call path."""
