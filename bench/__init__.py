"""Benchmarks: each measures ours and a comparison in the same run, prints a markdown table
and writes ``bench/results/<name>.json``. Not tests: no assertions on timings."""
