"""SQL templates shared by the canned queries: `queries/lib/*.sql`, expanded as text.

A query writes `{name(arg, arg, ...)}`; the loader replaces it with the template's SQL, each
`{param}` replaced by its argument. The last parameter may end in `...` and then takes the
remaining arguments (a list of group columns such as `comm, level, optname`). Expansion happens
after the report's own placeholders (`{keys}` may be an argument), before any engine sees the
SQL, so DuckDB and Spark run one and the same definition (percentiles: queries/lib/percentiles.sql).

Template file: a header like a report's (`-- name:`, `-- answers:`, `-- columns:`), then one
`-- define: name(param, ...)` line per template, its SQL on the lines that follow.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from dataclasses import dataclass

_DEFINE = re.compile(r"--\s*define:\s*(\w+)\(([^()]*)\)\s*")
_CALL = re.compile(r"\{(\w+)\(([^{}()]*)\)\}")


@dataclass(frozen=True)
class Template:
    name: str
    params: tuple[str, ...]  # the last may end in "...": it takes the remaining arguments
    sql: str
    source: str

    def expand(self, args: list[str]) -> str:
        variadic = bool(self.params) and self.params[-1].endswith("...")
        fixed = len(self.params) - variadic
        if len(args) < fixed + variadic or (not variadic and len(args) != fixed):
            raise ValueError(
                f"{{{self.name}(...)}} takes {', '.join(self.params)}, got {', '.join(args)}"
            )
        values = dict(zip(self.params[:fixed], args, strict=False))
        if variadic:
            values[self.params[-1].removesuffix("...")] = ", ".join(args[fixed:])
        sql = self.sql
        for name, value in values.items():
            sql = sql.replace("{" + name + "}", value)
        return sql


def parse_templates(text: str, source: str) -> dict[str, Template]:
    """The templates of one library file; ValueError on a malformed one (a bug in the file)."""
    templates: dict[str, Template] = {}
    current: tuple[str, tuple[str, ...]] | None = None
    lines: list[str] = []

    def close() -> None:
        if current is not None:
            body = "\n".join(lines).strip()
            if not body:
                raise ValueError(f"{source}: template {current[0]} is empty")
            templates[current[0]] = Template(current[0], current[1], body, source)

    for line in text.splitlines():
        m = _DEFINE.fullmatch(line.strip())
        if m:
            close()
            params = tuple(p.strip() for p in m.group(2).split(",") if p.strip())
            current, lines = (m.group(1), params), []
        elif current is not None:
            lines.append(line)
    close()
    if not templates:
        raise ValueError(f"{source}: no '-- define: name(params)' line")
    return templates


@functools.cache
def load_templates() -> dict[str, Template]:
    """Every template of the package's `queries/lib/*.sql`, by name."""
    root = importlib.resources.files("sockopt_trace.queries") / "lib"
    found: dict[str, Template] = {}
    for item in sorted(root.iterdir(), key=lambda i: i.name):
        if item.name.endswith(".sql"):
            for name, template in parse_templates(item.read_text(), f"lib/{item.name}").items():
                if name in found:
                    raise ValueError(f"template {name} is defined twice")
                found[name] = template
    return found


def expand(sql: str) -> str:
    """`sql` with every `{template(args)}` replaced by the template's SQL."""
    templates = load_templates()

    def one(m: re.Match[str]) -> str:
        if m.group(1) not in templates:
            raise ValueError(f"unknown SQL template {m.group(1)!r}")
        args = [a.strip() for a in m.group(2).split(",")]
        return templates[m.group(1)].expand(args)

    return _CALL.sub(one, sql)
