"""The dimensions reports and diff may group by (`--by`): an allow-list, so nothing the user
types is pasted into SQL. Kept free of heavy imports: the CLI's help texts list them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sockopt_trace.analyzer.symbolviews import (
    CALLSITE_KEYS,
    CALLSITE_LABEL,
    STACK_KEYS,
    STACK_LABEL,
)
from sockopt_trace.errors import UserError


@dataclass(frozen=True)
class Dimension:
    keys: tuple[str, ...]  # columns of the events view to group by
    label: str  # expression over the keys that shows the dimension


def _plain(column: str) -> Dimension:
    return Dimension((column,), column)


DIMENSIONS: dict[str, Dimension] = {
    **{c: _plain(c) for c in ("host", "comm", "pid", "tid", "uid", "fd")},
    "level": Dimension(("level",), "level_label(level)"),
    "optname": Dimension(("level", "optname"), "optname_label(level, optname)"),
    "errno": Dimension(("errno",), "errno_label(errno)"),
    # grouped by what the recorder wrote, named after grouping by the symbols sidecar
    "callsite": Dimension(CALLSITE_KEYS, CALLSITE_LABEL),
    "stack": Dimension(STACK_KEYS, STACK_LABEL),
    **{c: _plain(c) for c in ("optlen_in", "optlen_out")},
    # what the call was about: the container or service, the socket, the value returned
    **{c: _plain(c) for c in ("cgroup", "unit", "pod", "container")},
    **{c: Dimension((c,), f"{c}_label({c})") for c in ("family", "sock_type", "protocol", "state")},
    **{c: _plain(c) for c in ("local_addr", "local_port", "peer_addr", "peer_port")},
    "peer": Dimension(("peer_addr", "peer_port"), "endpoint_label(peer_addr, peer_port)"),
    "local": Dimension(("local_addr", "local_port"), "endpoint_label(local_addr, local_port)"),
    "value": Dimension(
        ("level", "optname", "value"),
        "coalesce(value_label(level, optname, value), CAST(value AS VARCHAR))",
    ),
}


def parse_by(text: str | Sequence[str]) -> list[str]:
    """Dimension names from 'comm,optname' (or a list of such strings), each allow-listed."""
    items = [text] if isinstance(text, str) else list(text)
    dims = [d.strip() for item in items for d in item.split(",") if d.strip()]
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown or not dims:
        bad = ", ".join(unknown) if unknown else "(none)"
        raise UserError(f"bad --by dimension {bad}: choose from {', '.join(DIMENSIONS)}")
    return list(dict.fromkeys(dims))
