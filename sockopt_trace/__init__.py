"""sockopt-trace: record every getsockopt(2) call with eBPF, analyze the recordings with SQL.

The distribution has two halves that share only the recording format (`sockopt_trace.schema`):
`sockopt_trace.recorder` (source in `recorder/`, needs bcc and root) and
`sockopt_trace.analyzer` (source in `analyzer/`, needs duckdb, runs anywhere).
"""

__version__ = "0.1.0"
