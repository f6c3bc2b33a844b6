"""The recorder: runs on the traced host (root, bcc, numpy, pyarrow). Never imports duckdb.

probe (BPF program, attach modes) -> consumer (ring buffer read in bulk) -> symbols (call sites,
stacks) -> writer (rotated Parquet files), driven by session. environment finds bcc, kernel
headers and tracefs; doctor reports on all of it.
"""
