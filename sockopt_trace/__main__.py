"""`python -m sockopt_trace` runs the command line."""

from sockopt_trace.cli import main

main()
