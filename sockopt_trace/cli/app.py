"""The typer application that every command module registers itself on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="sockopt-trace",
    help="Record every getsockopt(2) call with eBPF into Parquet; report and diff with SQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _group() -> None:
    """Record every getsockopt(2) call with eBPF into Parquet; report and diff with SQL."""
