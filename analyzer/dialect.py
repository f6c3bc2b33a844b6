"""DuckDB SQL -> Spark SQL: sqlglot's transpiler, plus what it gets wrong for our queries.

The canned queries are written once, in DuckDB's dialect; on Spark they run as sqlglot makes
them (`read="duckdb", write="spark"`), after these repairs (each one tested in
tests/unit/test_dialect.py against what sqlglot alone produces):

- our DuckDB macros (`ns_to_time`, `level_label`, ... from `views.macros()`) are inlined, since
  Spark SQL has no macros; `ns_to_time` gives a TIMESTAMP_NTZ on Spark, a UTC wall-clock time
  like DuckDB's TIMESTAMP, whatever the time zone of the Python process that collects it;
- decimal literals (`100.0`) become DOUBLE: DuckDB computes `100.0 * calls / total` in DOUBLE,
  Spark in DECIMAL, which rounds differently and comes back as Decimal;
- list indexing with a computed index (`names[lv + 1]`): sqlglot shifts only literal indices
  to Spark's 0-based `[]`; every index becomes `try_element_at(list, i)`, 1-based and NULL out of
  range as in DuckDB (Spark's `[]` raises there in ANSI mode);
- `row(a, b)` becomes `struct(a, b)` (Spark has no `row`);
- `quantile_cont(x, p)` and `percentile_cont(p) WITHIN GROUP (ORDER BY x)` become Spark's exact
  `percentile(x, p)`: sqlglot writes a `percentile_cont(x, p)` Spark rejects, and an approximate
  `percentile_approx` for the second;
- constructs with no faithful Spark form (ordered `list()`/`array_agg`, `quantile_disc`) raise,
  rather than run as something else.
"""

from __future__ import annotations

import functools
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from sockopt_trace.errors import UserError

# Spark's own definition of a macro whose DuckDB body does not carry over.
SPARK_MACROS = {"ns_to_time": "CAST(timestamp_micros(ns DIV 1000) AS TIMESTAMP_NTZ)"}
_MACRO = re.compile(r"CREATE OR REPLACE MACRO (\w+)\(([^)]*)\) AS (.*)", re.DOTALL)


class NotPortable(UserError):
    """SQL that has no faithful Spark form."""

    def __init__(self, what: str) -> None:
        super().__init__(f"no faithful Spark form for this SQL: {what}")


@functools.cache
def spark_macros() -> dict[str, tuple[list[str], exp.Expr]]:
    """name -> (parameters, body) of every macro the views define, in Spark's terms."""
    from sockopt_trace.analyzer.views import macros

    found = {}
    for text in macros():
        m = _MACRO.fullmatch(text.strip())
        if not m:
            raise ValueError(f"not a macro definition: {text[:60]}")
        name, params, body = m.group(1), m.group(2), m.group(3)
        read = "spark" if name in SPARK_MACROS else "duckdb"
        parsed = sqlglot.parse_one(SPARK_MACROS.get(name, body), read=read)
        found[name] = ([p.strip() for p in params.split(",")], parsed)
    return found


def to_spark(sql: str, *, user: bool = False) -> str:
    """One DuckDB statement as Spark SQL; NotPortable (a UserError) when it has no such form.

    `user`: SQL a user typed (query, --where), which must only read: one query, and none of
    Spark's functions that reach the JVM or files (the session also refuses file tables,
    spark.sql.runSQLOnFiles is off), as DuckDB's sandbox does for the default engine.
    """
    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except SqlglotError as err:
        raise UserError(f"cannot read the SQL to run it on Spark: {_first(err)}") from None
    if len(statements) != 1 or statements[0] is None:
        raise UserError("give one SQL statement")
    tree = statements[0]
    if user:
        _only_reads(tree)
    tree = tree.transform(_repair)
    try:
        return tree.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as err:
        raise NotPortable(_first(err)) from None


# Spark functions that run Java or read files: never in SQL a user gives.
DENIED = frozenset(
    {"reflect", "java_method", "try_reflect", "read_files", "input_file_name", "read_text"}
)


def _only_reads(tree: exp.Expr) -> None:
    if not isinstance(tree, exp.Query):
        raise UserError("only a query (SELECT or WITH) runs on Spark here")
    for node in tree.walk():
        name = node.name.lower() if isinstance(node, (exp.Anonymous, exp.Func)) else ""
        if isinstance(node, exp.Anonymous) and name in DENIED:
            raise UserError(f"{name}() is not allowed: SQL here reads only the recording")
        if isinstance(node, exp.Table) and (
            not isinstance(node.this, exp.Identifier) or "/" in node.name or "." in node.name
        ):
            raise UserError("SQL here reads only the recording's views, not files")


def _repair(node: exp.Expr) -> exp.Expr:
    """One node in Spark's terms; a node it replaces has its children repaired first (sqlglot's
    transform does not visit the children of a replacement)."""
    macro = _macro_call(node)
    if macro is not None:
        return macro
    if isinstance(node, exp.Literal) and node.is_number and _is_decimal(node.this):
        return exp.cast(node.copy(), exp.DataType.build("DOUBLE"))
    if isinstance(node, exp.Bracket) and len(node.expressions) == 1:
        return exp.func("try_element_at", _r(node.this), _one_based(node.expressions[0]))
    if isinstance(node, exp.Anonymous) and node.name.lower() == "row":
        return exp.func("struct", *(_r(e) for e in node.expressions))
    if isinstance(node, exp.WithinGroup) and isinstance(node.this, exp.PercentileCont):
        order = node.expression
        column = order.expressions[0].this if isinstance(order, exp.Order) else None
        if column is None:
            raise NotPortable("percentile_cont ... WITHIN GROUP needs an ORDER BY column")
        return exp.func("percentile", _r(column), _r(node.this.this))
    if isinstance(node, exp.PercentileCont):  # quantile_cont(x, p): x, then p or a list of p
        if node.expression is None:
            raise NotPortable("quantile_cont needs a fraction")
        return exp.func("percentile", _r(node.this), _r(node.expression))
    if isinstance(node, exp.PercentileDisc) or (
        isinstance(node, exp.Anonymous) and node.name.lower() == "quantile_disc"
    ):
        raise NotPortable("quantile_disc/percentile_disc has no exact Spark form here")
    if isinstance(node, (exp.ArrayAgg, exp.GroupConcat)) and node.find(exp.Order):
        raise NotPortable("an ordered list()/array_agg becomes unordered on Spark")
    return node


def _r(node: exp.Expr) -> exp.Expr:
    return node.copy().transform(_repair)


def _one_based(index: exp.Expr) -> exp.Expr:
    """sqlglot turns DuckDB's 1-based literal index k into k - 1, and leaves a computed index
    (`lv + 1`) as DuckDB wrote it, 1-based: undo the first."""
    if isinstance(index, exp.Literal) and index.is_int:
        return exp.Literal.number(int(index.this) + 1)
    return exp.cast(_r(index), exp.DataType.build("INT"))  # Spark indexes with INT only


def _macro_call(node: exp.Expr) -> exp.Expr | None:
    name = node.name.lower() if isinstance(node, exp.Anonymous) else None
    macros = spark_macros()
    if name not in macros:
        return None
    params, body = macros[name]
    args = node.expressions
    if len(args) != len(params):
        raise UserError(f"{name}() takes {len(params)} arguments, not {len(args)}")
    values = dict(zip(params, args, strict=True))

    def substitute(n: exp.Expr) -> exp.Expr:
        if isinstance(n, exp.Column) and not n.table and n.name in values:
            return exp.paren(values[n.name].copy())
        return n

    return exp.paren(body.copy().transform(substitute).transform(_repair))


def _is_decimal(text: str) -> bool:
    return "." in text and "e" not in text.lower()


def _first(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
