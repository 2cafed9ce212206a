"""Benchmarks: figures and plots, never assertions (``python -m bench``)."""
