"""Load generator for chatd (docs/benchmarks.md)."""
