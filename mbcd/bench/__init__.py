"""Benchmarks: one module per benchmark with ``main(argv)``."""
