"""The analyzer: runs anywhere (duckdb, pyarrow). Never imports bcc.

recording (open and validate files, DuckDB views) -> reports (load and bind queries/*.sql)
-> render (table, csv, json, markdown); diff compares two recordings.
"""
