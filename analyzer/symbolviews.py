"""How the views show symbolized call sites and stacks: SQL macros over the sidecar's rows.

`callsite_label(callsite)` and `stack_label(stack, locations)` give the sidecar's names where it
has them and what the recorder wrote elsewhere: a call site by the text the recorder wrote for
it (unique within a recording: module+offset, unless two builds of one program share a name),
which makes the `callsite` dimension a single column to group by (4 columns were measured 1.7x
slower on the callsites report), a stack by the location of each frame. They are scalar
macros with the symbols inlined as a MAP, not a join: a join in the `events` view would cost
every query a probe per row (measured: a 50-row LEFT JOIN made a 20M-row sum 30x slower), while
a macro nobody selects costs nothing. Looking up per row is slow (4x a plain group-by, measured)
so the reports group by the raw columns and label only their result rows (`reports.DIMENSIONS`,
`stacks.folded_sql`); the view's `callsite` and `stack` use the macros per row, for ad hoc SQL.
The recorder's own text stays in `callsite_recorded` and `stack_recorded`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # kept light: dimensions.py, which the CLI's help reads, imports this
    from collections.abc import Callable

    import duckdb

    from sockopt_trace.analyzer.tables import Table

CALLSITE_KEYS = ("callsite_recorded",)
STACK_KEYS = ("stack_recorded", "stack_locations")
CALLSITE_LABEL = f"callsite_label({', '.join(CALLSITE_KEYS)})"
STACK_LABEL = f"stack_label({', '.join(STACK_KEYS)})"


def _string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _map(keys: list[str], values: list[str]) -> str:
    pairs = (f"{_string(k)}: {_string(v)}" for k, v in zip(keys, values, strict=True))
    return "MAP {" + ", ".join(pairs) + "}"


def _unambiguous(recorded: list[str | None], names: list[str]) -> dict[str, str]:
    """Recorded call site text -> name, leaving out a text that names two different things
    (two builds of one program at one offset): those keep what was recorded."""
    seen: dict[str, set[str]] = {}
    for text, name in zip(recorded, names, strict=True):
        if text is not None:
            seen.setdefault(text, set()).add(name)
    return {text: next(iter(found)) for text, found in seen.items() if len(found) == 1}


def macros(symbols: Table | None) -> list[str]:
    """The label macros: the identity without symbols."""
    if symbols is None or not symbols.num_rows:
        return [
            "CREATE OR REPLACE MACRO callsite_label(c) AS c",
            "CREATE OR REPLACE MACRO stack_label(s, l) AS s",
        ]
    keys = symbols.column("key")
    frames = _map(keys, symbols.column("frames"))
    texts = _unambiguous(symbols.column("recorded"), symbols.column("callsite"))
    callsites = _map(list(texts), list(texts.values())) if texts else "MAP {}"
    return [
        f"CREATE OR REPLACE MACRO callsite_label(c) AS coalesce({callsites}[c], c)",
        # a stack_locations frame KEY:0xOFFSET:0xADDRESS -> KEY:0xADDRESS
        "CREATE OR REPLACE MACRO frame_key(t) AS "
        "regexp_replace(t, ':0x[0-9a-f]+:(0x[0-9a-f]+)$', ':\\1')",
        "CREATE OR REPLACE MACRO stack_label(s, l) AS CASE WHEN l IS NULL THEN s ELSE "
        "array_to_string(list_transform(list_zip(string_split(s, ';'), string_split(l, ';')), "
        f"lambda x: coalesce({frames}[frame_key(x[2])], x[1])), ';') END",
    ]


def setup(symbols: Table) -> Callable[..., list[str]]:
    """A connection setup hook (database.Setup) that puts `symbols` on the connection: the
    `symbols` table and the label macros over it. Nothing is read after sealing."""

    def register(con: duckdb.DuckDBPyConnection, _loaded: object) -> list[str]:
        symbols.create(con, "symbols")
        for macro in macros(symbols):
            con.execute(macro)
        return []

    return register


def view_columns() -> str:
    """The select list (DuckDB) that puts the labels in place of the recorded text, which
    `views.decoded_sql` keeps as `callsite_recorded` and `stack_recorded`."""
    return f"* REPLACE ({CALLSITE_LABEL} AS callsite, {STACK_LABEL} AS stack)"
