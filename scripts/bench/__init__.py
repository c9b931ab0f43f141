"""Helpers of the benchmarks in ``scripts/``: traffic, the bare contenders ``bench_stream.py``
measures, and the ingest core the in-process ones build."""
