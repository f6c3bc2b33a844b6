"""Columns for Arrow from numpy rows, without a Python object per row: grouping rows by
value (each distinct call site resolved once) and dictionary-typed columns from one value per
group."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def group_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group rows by the tuple of their values: (group index per row, first row of each group).

    Runs on every batch of the hot path, so: one hash-based pass (Arrow dictionary encoding) over
    a 64-bit mix of the columns, then a vectorized check that every row equals its group's first
    row; only if two different tuples collided in the mix is the exact, slower path taken.
    """
    n = len(columns[0])
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    mixed = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, column in enumerate(columns):
            mixed = mixed * np.uint64(0x9E3779B97F4A7C15 + 2 * i) + column.astype(np.uint64)
    index, _ = _encode(mixed)
    first = _first_rows(index)
    if all((column == column[first][index]).all() for column in columns):
        return index, first
    combined = np.zeros(n, dtype=np.int64)
    for column in columns:
        idx, uniq = _encode(column)
        combined, _ = _encode(combined * len(uniq) + idx)
        combined = combined.astype(np.int64)
    return combined, _first_rows(combined)


def _first_rows(index: np.ndarray) -> np.ndarray:
    first = np.empty(int(index.max()) + 1, dtype=np.int64)
    first[index[::-1]] = np.arange(len(index) - 1, -1, -1)
    return first


def dictionary(index: np.ndarray, values: list[str | None]) -> pa.DictionaryArray:
    """A dictionary-typed string column (None values become nulls): Parquet writes it without
    hashing every row again."""
    missing = np.array([v is None for v in values], dtype=bool)
    mask = missing[index] if missing.any() else None
    return pa.DictionaryArray.from_arrays(
        pa.array(index.astype(np.int32), mask=mask),
        pa.array(["" if v is None else v for v in values], pa.string()),
    )


def ints(index: np.ndarray, values: list[int | None]) -> pa.Array:
    """An int64 column from one value per group (None values become nulls)."""
    missing = np.array([v is None for v in values], dtype=bool)
    numbers = np.array([0 if v is None else v for v in values], dtype=np.int64)
    return pa.array(numbers[index], mask=missing[index] if missing.any() else None)


def _encode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index per row, distinct values) by hashing: O(n), no sort."""
    encoded = pa.array(values).dictionary_encode()
    return (
        encoded.indices.to_numpy(zero_copy_only=False),
        encoded.dictionary.to_numpy(zero_copy_only=False),
    )
