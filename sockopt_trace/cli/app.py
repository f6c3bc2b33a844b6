"""The typer application that every command module registers itself on."""

from __future__ import annotations

import typer

from sockopt_trace.errors import ExitCode

# "\b" keeps click from re-wrapping the table
EXIT_CODES = "Exit codes:\n\n\b\n" + "\n".join(
    f"  {code:>3}  {meaning}" for code, meaning in ExitCode.describe()
)

app = typer.Typer(
    name="sockopt-trace",
    help="Record every getsockopt(2) call with eBPF into Parquet; report and diff with SQL.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich costs ~0.2 s of start-up for every command
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _group() -> None:
    """Record every getsockopt(2) call with eBPF into Parquet; report and diff with SQL."""
