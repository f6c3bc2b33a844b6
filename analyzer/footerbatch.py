"""A recording's local footers, read at once by DuckDB on the connection the report will use.

Checking footers one by one cost more than the answer: a thousand small files, pyarrow's import
and its reader ~0.3 s; ten files of 10M events, the Python reader 0.1 s (it walks every row
group's column chunks). DuckDB reads them all in three queries (0.2 s and 0.01 s there), and
its metadata cache (database.py) hands them on to the views' first read and to the scan. Only
footers it names exactly as `footer.read_footer` would (plain int32, int64 and UTF-8 columns,
none nested: what recorders write) are given back; any other file, or all of them if DuckDB
fails on one, is left to the reader of one file, which names what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from sockopt_trace.analyzer.footer import Footer, FooterBatch
from sockopt_trace.analyzer.footerindex import indexed

# (physical type, converted type) -> the type name read_footer gives (logical type aside)
_TYPES = {("INT32", None): "int32", ("INT64", None): "int64", ("BYTE_ARRAY", "UTF8"): "string"}


def duckdb_footers(con: duckdb.DuckDBPyConnection) -> FooterBatch:
    """A batch footer reader for recording.open_recording, on `con`, through the index of
    footers it read before (footerindex.py)."""
    return indexed(lambda paths: read_footers(con, paths), f"duckdb {duckdb.__version__}")


def read_footers(con: duckdb.DuckDBPyConnection, paths: Sequence[Path]) -> dict[Path, Footer]:
    """The footers of `paths` that DuckDB reads and names as read_footer does ({} if it cannot
    read one of them)."""
    if not paths:
        return {}
    by_name = {str(p): p for p in paths}
    names = list(by_name)
    try:
        rows = con.execute(
            "SELECT file_name, num_rows FROM parquet_file_metadata(?)", [names]
        ).fetchall()
        kv = con.execute(
            "SELECT file_name, key, value FROM parquet_kv_metadata(?)", [names]
        ).fetchall()
        elements = con.execute(
            "SELECT file_name, name, type, converted_type, num_children, repetition_type "
            "FROM parquet_schema(?)",
            [names],
        ).fetchall()
    except duckdb.Error:
        return {}
    metadata: dict[str, dict[bytes, bytes]] = {n: {} for n in names}
    for name, key, value in kv:
        metadata[name][bytes(key)] = bytes(value) if value is not None else b""
    columns: dict[str, dict[str, str]] = {}
    unusual: set[str] = set()
    for name, column, physical, converted, children, repetition in elements:
        if name not in columns:  # a file's first element is its schema's root
            columns[name] = {}
            if physical is not None:
                unusual.add(name)
            continue
        typ = _TYPES.get((physical, converted))
        if typ is None or children or repetition == "REPEATED" or column in columns[name]:
            unusual.add(name)
            continue
        columns[name][column] = typ
    return {
        by_name[name]: Footer(int(n), metadata[name], columns[name])
        for name, n in rows
        if name in by_name and name in columns and name not in unusual
    }
