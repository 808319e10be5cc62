"""Benchmarks (`make bench`): figures printed and saved to bench/results/latest.json; loopback
only, bounded in time. Never timed assertions in tests."""
