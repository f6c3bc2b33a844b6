"""The canned reports and ad hoc SQL on Apache Spark, through PySpark, with DuckDB's answers.

Nothing is written twice: the files are validated as for DuckDB (`recording`), the views have
the same columns (the name decoding comes from the same macros, inlined by `dialect`), and each
query is the DuckDB SQL transpiled by `dialect.to_spark`. `SparkConnection` answers the part of
DuckDB's connection API that `reports.run_report` and `render.Result.from_cursor` use, so the
reports and renderers do not know which engine ran them.

Where Spark runs: `SPARK_REMOTE` (Spark Connect, e.g. sc://host:15002) or `--spark-master`
(local[4], spark://host:7077, yarn, ...), local[*] by default (a JVM started by PySpark: Java
17 or newer). Percentiles need no whole group in one task (queries/lib/percentiles.sql).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

from sockopt_trace import schema
from sockopt_trace.analyzer.database import DAMAGED_TEXT, RECOPY, Loaded, Source, where_clause
from sockopt_trace.analyzer.dialect import to_spark
from sockopt_trace.analyzer.filters import Filters, Window
from sockopt_trace.analyzer.info import files_table
from sockopt_trace.analyzer.load import prune_for
from sockopt_trace.analyzer.recording import Recording, RecordingFile, first_line, open_recording
from sockopt_trace.analyzer.span import RecordingSpan, recording_spans
from sockopt_trace.analyzer.storage import ObjectPath
from sockopt_trace.analyzer.views import (
    ViewNames,
    decoded_sql,
    name_tables,
    recordings_table,
    span_seconds,
)
from sockopt_trace.errors import UserError

DEFAULT_MASTER = "local[*]"


class SparkCursor:
    """The rows of one Spark query, collected (canned reports are small; `query` streams them
    through `toLocalIterator`)."""

    def __init__(self, frame: Any) -> None:
        self.description = [(name, None) for name in frame.columns]
        self._rows: Iterator[tuple[Any, ...]] = _rows(frame)

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        return [row for _, row in zip(range(size), self._rows, strict=False)]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def fetchnumpy(self) -> dict[str, Any]:
        """Columns as numpy arrays, as DuckDB's `fetchnumpy` gives them (NULLs as None)."""
        import numpy as np

        rows = self.fetchall()
        return {
            name: np.array([r[i] for r in rows], dtype=object)
            for i, (name, _) in enumerate(self.description)
        }


@dataclass
class SparkConnection:
    spark: Any  # pyspark.sql.SparkSession (classic or Connect)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> SparkCursor:
        """Run DuckDB-dialect SQL on Spark; a Spark error is a one-line UserError."""
        return SparkCursor(self.sql(to_spark(sql, user=True), params))

    def union_view(self, name: str, views: Sequence[str]) -> None:
        """`name` as the rows of `views` matched by column name (DuckDB's UNION ALL BY NAME)."""
        frames = [self.spark.table(v) for v in views]
        union = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
        union.createOrReplaceTempView(name)

    def close(self) -> None:
        """Nothing to close: the session serves the whole process (a JVM start costs seconds)."""

    def sql(self, spark_sql: str, params: Mapping[str, Any] | None = None) -> Any:
        used = {k: v for k, v in (params or {}).items() if f":{k}" in spark_sql}
        with spark_errors():
            frame = self.spark.sql(spark_sql, args=used or None)
            frame.schema  # noqa: B018 (analysis errors surface here, not at the first fetch)
        return frame


def _rows(frame: Any) -> Iterator[tuple[Any, ...]]:
    """The frame's rows as they come; a failure while Spark runs the query (a file that cannot
    be read, say) is a one-line UserError, as on DuckDB."""
    with spark_errors():
        for row in frame.toLocalIterator():
            yield tuple(row)


@contextlib.contextmanager
def spark_errors(what: str = "query failed on Spark") -> Iterator[None]:
    """Spark's errors (the JVM's, through Py4J, or Spark Connect's) as one-line UserErrors: a
    file Spark could not read is named first, with DuckDB's words for damaged data."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        yield
    except (PySparkException, Py4JError) as err:
        raise spark_failure(err, what) from None


_READ_FAILED = re.compile(
    r"FAILED_READ_FILE\S*\]? Encountered error while reading file (\S+?)\.?\s"
)
_NOT_FOUND = re.compile(r"PATH_NOT_FOUND\]? Path does not exist: (\S+?)\.?\s")
_CAUSE = re.compile(r"Caused by: (?:[\w.$]+\.)?(\w+(?:Exception|Error)): ([^\n]*)")


def spark_failure(err: Exception, what: str = "query failed on Spark") -> UserError:
    """One line for a Spark error: the file when one could not be read, the missing s3a
    filesystem, else Spark's first line."""
    text = str(err)
    if "S3AFileSystem not found" in text:
        return UserError(
            "Spark here cannot read s3:// (no s3a filesystem: hadoop-aws is not on its "
            "classpath): run on a cluster that has it, or add org.apache.hadoop:hadoop-aws to "
            "spark.jars.packages; --engine duckdb reads buckets as is"
        )
    if m := _READ_FAILED.search(text):
        cause = _CAUSE.search(text)
        why = f"{cause.group(1)}: {cause.group(2).strip()}"[:200] if cause else "unreadable"
        return UserError(f"{_user_path(m.group(1))}: {DAMAGED_TEXT} ({why}); {RECOPY}")
    if m := _NOT_FOUND.search(text + " "):
        return UserError(f"{_user_path(m.group(1))}: no such file or directory")
    return UserError(f"{what}: {_spark_error(err)}")


def _user_path(uri: str) -> str:
    """The path as the user gave it, from Spark's URI of it (`_uri` in reverse)."""
    if uri.startswith("s3a://"):
        return "s3://" + uri.removeprefix("s3a://")
    return uri.removeprefix("file://").removeprefix("file:")


@functools.cache
def session(master: str | None = None) -> Any:
    """One SparkSession per process (a JVM start costs seconds): Spark Connect when
    SPARK_REMOTE is set and no master is given, else a classic session on `master`."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UserError(
            "--engine spark needs PySpark: pip install 'sockopt-trace[spark]' (and Java 17+)"
        ) from None
    builder = SparkSession.builder.appName("sockopt-trace")
    remote = os.environ.get("SPARK_REMOTE")
    if remote and not master:
        builder = builder.remote(remote)
    else:
        builder = (
            builder.master(master or DEFAULT_MASTER)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", str(os.cpu_count() or 2))
        )
    # UTC like DuckDB's TIMESTAMPs; no `parquet.\`/any/path\`` tables in SQL (a sandbox)
    builder = builder.config("spark.sql.session.timeZone", "UTC").config(
        "spark.sql.runSQLOnFiles", "false"
    )
    try:
        spark = builder.getOrCreate()
    except Exception as err:  # the JVM did not start: no Java, or a bad master URL
        raise UserError(f"cannot start Spark ({master or remote}): {first_line(err)}") from None
    if not remote or master:
        spark.sparkContext.setLogLevel("ERROR")
    return spark


def load(
    specs: Sequence[str | Path],
    filters: Filters = Filters(),
    *,
    master: str | None = None,
    skip_bad: bool = False,
) -> Loaded[SparkConnection]:
    """`load.load` on Spark: validate the files, register the views, filter `events`."""
    rec = open_recording(specs, skip_bad=skip_bad, prune=prune_for(filters))
    [loaded] = connect([Source(rec, filters)], master=master)
    return loaded


def connect(
    sources: Sequence[Source], *, master: str | None = None
) -> list[Loaded[SparkConnection]]:
    """`database.connect` on Spark: each source's views under its names, `events` filtered;
    one `Loaded` per source, all on the process's session."""
    con = SparkConnection(session(master))
    loaded = []
    for source in sources:
        rec, names = source.recording, source.names
        window = source.filters.window(rec.start_ns)
        spans = recording_spans(rec.files, window)
        register(con, rec, names, spans)
        filter_events(con, source.filters.where, window, names)
        loaded.append(Loaded(rec, con, source.filters, window, names, spans))
    return loaded


def filter_events(
    con: SparkConnection, where: str | None, window: Window, names: ViewNames
) -> None:
    """`database.filter_events` on Spark: `events` is `events_all` within the filters."""
    clause = where_clause(where, window)
    view = f"CREATE OR REPLACE TEMPORARY VIEW {names.events} AS SELECT * FROM {names.events_all}"
    try:
        if where:
            to_spark(f"SELECT * FROM {names.events_all} WHERE (\n{where}\n)", user=True)
        con.sql(to_spark(view + clause))
        con.sql(f"SELECT * FROM {names.events} LIMIT 0").schema  # noqa: B018 (bind now)
    except UserError as err:
        if where:
            raise UserError(f"bad --where {where!r}: {err}") from None
        raise


def register(
    con: SparkConnection, rec: Recording, names: ViewNames, spans: dict[str, RecordingSpan]
) -> None:
    """The views and tables of `views.register` on Spark: `events_all` (the same columns),
    `files`, `recordings`, and the name tables."""
    from pyspark.sql import functions as F

    spark = con.spark
    by_part: dict[tuple[int, str], list[RecordingFile]] = {}
    for f in rec.files:
        period = max(1, f.meta.stack_sample_period) if f.meta.stacks == "full" else 1
        by_part.setdefault((period, f.meta.recording_id), []).append(f)
    parts = []
    for (period, recording_id), part in sorted(by_part.items()):
        with spark_errors("cannot read the recording on Spark"):
            frame = spark.read.option("mergeSchema", "true").parquet(*(_uri(f) for f in part))
        weight = F.when(F.col("stack").isNull(), F.lit(None)).otherwise(F.lit(period))
        seconds = F.expr(span_seconds(spans.get(recording_id)))
        parts.append(
            frame.withColumn("stack_weight", weight.cast("int"))
            .withColumn("recording_id", F.lit(recording_id))
            .withColumn("recording_span_s", seconds)
        )
    union = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)
    for column, (typ, _) in schema.optional_columns().items():  # absent: NULL, as on DuckDB
        neutral = schema.NEUTRAL_VALUES.get(column)  # or its neutral value (weight: 1)
        if column not in union.columns:
            union = union.withColumn(column, F.lit(neutral).cast(_SPARK_TYPES[str(typ)]))
        elif neutral is not None:
            union = union.withColumn(column, F.coalesce(F.col(column), F.lit(neutral)))
    union.createOrReplaceTempView(f"{names.events_all}_raw")
    decoded = decoded_sql(f"{names.events_all}_raw")
    con.sql(to_spark(f"CREATE OR REPLACE TEMPORARY VIEW {names.events_all} AS {decoded}"))
    spark.createDataFrame(files_table(rec).to_arrow()).createOrReplaceTempView(names.files)
    recordings = recordings_table(spans).to_arrow()
    spark.createDataFrame(recordings).createOrReplaceTempView(names.recordings)
    for name, table in name_tables().items():
        spark.createDataFrame(table.to_arrow()).createOrReplaceTempView(name)


_SPARK_TYPES = {"int32": "int", "int64": "bigint", "string": "string"}


def _uri(f: RecordingFile) -> str:
    """Spark's name for a file: file:///..., and s3a:// for S3 (Hadoop's S3 filesystem).
    Not `Path.as_uri()`: it escapes `=` as %3D, and Hadoop takes the string unescaped, so a
    Hive-style directory (host=NAME/) would not be found."""
    if isinstance(f.path, ObjectPath):
        return str(f.path).replace("s3://", "s3a://", 1)
    return "file://" + str(f.path.resolve())


def _spark_error(err: Exception) -> str:
    text = first_line(err)
    return text.split("SQLSTATE")[0].strip().rstrip(".") if "SQLSTATE" in text else text
