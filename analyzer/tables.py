"""The small tables the analyzer builds in Python (files, recordings, names, symbols) and puts
on a DuckDB connection, hands to Spark or renders.

They are plain typed lists, not Arrow tables: importing pyarrow (and numpy with it) cost a
third of a report's start-up over a small recording, for a few hundred rows at most. DuckDB
gets each column as one list parameter (`unnest`), so the rows are never spliced into SQL text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

SqlType = Literal["INTEGER", "BIGINT", "DOUBLE", "VARCHAR", "TIMESTAMP"]

# The Arrow type of each (for Spark and callers that want Arrow); TIMESTAMP is naive UTC, us.
_ARROW = {
    "INTEGER": "int32",
    "BIGINT": "int64",
    "DOUBLE": "float64",
    "VARCHAR": "string",
    "TIMESTAMP": "timestamp[us]",
}


@dataclass(frozen=True)
class Column:
    type: SqlType
    values: list[Any]  # None for NULL; datetime.datetime (naive, UTC) for TIMESTAMP


@dataclass(frozen=True)
class Table:
    """Named columns of equal length, in order."""

    columns: dict[str, Column]

    def __post_init__(self) -> None:
        lengths = {len(c.values) for c in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")

    @property
    def num_rows(self) -> int:
        return next((len(c.values) for c in self.columns.values()), 0)

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def column(self, name: str) -> list[Any]:
        return self.columns[name].values

    def select(self, names: Sequence[str]) -> Table:
        return Table({n: self.columns[n] for n in names})

    def rows(self) -> list[tuple[Any, ...]]:
        return list(zip(*(c.values for c in self.columns.values()), strict=True))

    def create(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        """(Re)create this table as `name` on `con`."""
        select = ", ".join(
            f'unnest(${i}::{c.type}[]) AS "{n}"'
            for i, (n, c) in enumerate(self.columns.items(), start=1)
        )
        con.execute(f"DROP TABLE IF EXISTS {name}")
        con.execute(
            f"CREATE TABLE {name} AS SELECT {select}", [c.values for c in self.columns.values()]
        )

    def to_arrow(self) -> pa.Table:
        import pyarrow as pa  # only for Spark and tests: the reports never need it

        return pa.table(
            {
                n: pa.array(c.values, pa.type_for_alias(_ARROW[c.type]))
                for n, c in self.columns.items()
            }
        )


def integers(values: Sequence[int | None], big: bool = True) -> Column:
    return Column("BIGINT" if big else "INTEGER", list(values))


def strings(values: Sequence[str | None]) -> Column:
    return Column("VARCHAR", list(values))


def doubles(values: Sequence[float | None]) -> Column:
    return Column("DOUBLE", list(values))


def timestamps(values: Sequence[dt.datetime | None]) -> Column:
    return Column("TIMESTAMP", list(values))
