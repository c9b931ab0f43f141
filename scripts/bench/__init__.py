"""Helpers of ``scripts/bench_stream.py``: traffic, and the bare contenders it measures."""
