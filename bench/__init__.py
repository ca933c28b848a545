"""Benchmarks of the service: scripts, not tests. Run `python -m bench --help`."""
