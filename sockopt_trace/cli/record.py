"""`sockopt-trace record`: capture every getsockopt(2) call into a recording directory."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from sockopt_trace.cli.app import app
from sockopt_trace.errors import UserError
from sockopt_trace.units import parse_duration, parse_mode, parse_size


@app.command(
    context_settings={"allow_interspersed_args": False},
    epilog="Examples: record -o rec/ --duration 60s | record -o rec/ --pid 1234 --comm envoy | "
    "record -o rec/ -- ./my-server --port 8080",
)
def record(
    command: list[str] = typer.Argument(None, help="After --: a command to start and trace."),
    output: Path = typer.Option(Path("sockopt.rec"), "-o", "--output", help="Recording directory."),
    duration: str = typer.Option(
        None, "--duration", "-d", help="Stop after this long (30s, 5m, 1h)."
    ),
    pid: list[int] = typer.Option([], "--pid", "-p", help="Trace this process (repeatable)."),
    comm: list[str] = typer.Option(
        [], "--comm", "-c", help="Trace threads of this name (repeatable)."
    ),
    cgroup: str = typer.Option(
        "",
        "--cgroup",
        help="Trace tasks in this cgroup v2 and below it: a directory under /sys/fs/cgroup or a "
        "path from its root (/system.slice/nginx.service).",
    ),
    context: bool = typer.Option(
        False,
        "--context/--no-context",
        help="Record each call's cgroup, socket (family, addresses, ports, state), the value "
        "returned and TCP_INFO's fields (costs more per call: docs/benchmarks.md).",
    ),
    probe: str = typer.Option("auto", "--probe", help="auto, tracepoint, kprobe or fentry."),
    callsites: bool = typer.Option(
        True, "--callsites/--no-callsites", help="Record the call site of each call (cheap)."
    ),
    stacks: bool = typer.Option(
        False, "--stacks/--no-stacks", help="Record full user stacks (about 1 us per call)."
    ),
    stack_sample: int = typer.Option(
        1, "--stack-sample", help="With --stacks: a stack for 1 in N calls."
    ),
    max_rate: int = typer.Option(
        0,
        "--max-rate",
        help="Record about N calls per second host-wide, sampled in the kernel (0: every call). "
        "Each row carries its weight, so reports estimate the whole; failed calls and the first "
        "call of each process and call site are always kept.",
    ),
    max_size: str = typer.Option(
        None,
        "--max-size",
        help="Keep at most this much in sealed files (e.g. 2G): the oldest are deleted first, "
        "and `info` says what was removed.",
    ),
    max_files: int = typer.Option(0, "--max-files", help="Keep at most N sealed files."),
    max_age: str = typer.Option(
        None, "--max-age", help="Delete sealed files older than this (e.g. 7d)."
    ),
    flight: str = typer.Option(
        None,
        "--flight",
        help="Flight recorder: keep only the last DURATION in memory (e.g. 60s) and write it "
        "out on SIGUSR1, `sockopt-trace dump DIR` or a --trigger, then go on.",
    ),
    flight_memory: str = typer.Option(
        "256M", "--flight-memory", help="With --flight: memory for the buffer, at most."
    ),
    trigger: list[str] = typer.Option(
        [],
        "--trigger",
        help="With --flight: dump when this holds over the last second: errors>N/s, "
        "calls>N/s, p50|p90|p99|p999|max>DURATION (e.g. 'p99>2ms'). Repeatable.",
    ),
    rotate_size: str = typer.Option(
        "256M", "--rotate-size", help="Start a new file after this many bytes."
    ),
    rotate_interval: str = typer.Option(
        "1m",
        "--rotate-interval",
        help="Start a new file after this long (a killed recorder loses at most this much).",
    ),
    file_mode: str = typer.Option("0640", "--file-mode", help="Permissions of the files."),
    layout: str = typer.Option(
        "flat",
        "--layout",
        help="flat: files in DIR; fleet: DIR/host=NAME/date=YYYY-MM-DD/ (UTC), the layout that "
        "analysis prunes by --where host and --since/--until; copy DIR into a bucket as is.",
    ),
    ringbuf: str = typer.Option("32M", "--ringbuf", help="Kernel ring buffer size (power of two)."),
    force: bool = typer.Option(
        False, "--force", help="Write into a directory that holds files already."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No status line and no messages; errors only."
    ),
    repeat: int = typer.Option(
        1,
        "--repeat",
        help="Run -- COMMAND N times, one recording each in OUTPUT/1 ... OUTPUT/N: replicates "
        "for diff.",
    ),
    log: bool = typer.Option(
        False,
        "--log",
        help="One line on stderr per event worth knowing (file sealed with its counts and "
        "losses, uploads), for the journal; even with --quiet.",
    ),
    upload: str = typer.Option(
        None,
        "--upload",
        help="Copy each sealed file in the background to s3://BUCKET/PREFIX or a directory, "
        "as host=NAME/date=YYYY-MM-DD/FILE; retried with back-off, resumed at the next start.",
    ),
    upload_delete: bool = typer.Option(
        False,
        "--upload-delete",
        help="With --upload: delete each file once its upload is confirmed.",
    ),
) -> None:
    """Record getsockopt(2) calls (needs root). Ctrl-C or SIGTERM stops cleanly.

    Filters (--pid, --comm, --cgroup) are applied in the kernel and combine as a union. With
    -- COMMAND, the command and its children are traced from their first instruction, the
    recording stops when it exits, and its exit status is passed through. --repeat N records N
    runs, one recording each in numbered subdirectories, so that `diff before/ after/` compares
    the runs as replicates; it stops at the first run that fails.
    """
    from sockopt_trace.recorder.flight import FlightConfig, parse_trigger
    from sockopt_trace.recorder.options import RecordOptions
    from sockopt_trace.recorder.probe import ProbeConfig
    from sockopt_trace.recorder.retention import RetentionConfig
    from sockopt_trace.recorder.session import record as run
    from sockopt_trace.recorder.upload import UploadConfig
    from sockopt_trace.recorder.writer import WriterConfig

    if max_files < 0:
        raise UserError("--max-files must be 1 or more")
    if trigger and not flight:
        raise UserError("--trigger needs --flight DURATION")
    if upload_delete and not upload:
        raise UserError("--upload-delete needs --upload URL")

    def options(output: Path) -> RecordOptions:
        return RecordOptions(
            output=output,
            probe=ProbeConfig(
                mode=probe,
                pids=list(pid),
                comms=list(comm),
                cgroup=cgroup,
                context=context,
                callsites=callsites,
                stacks=stacks,
                stack_sample_period=stack_sample,
                max_rate=max_rate,
                ringbuf_bytes=parse_size(ringbuf, "--ringbuf"),
            ),
            writer=WriterConfig(
                directory=output,
                rotate_bytes=parse_size(rotate_size, "--rotate-size"),
                rotate_seconds=parse_duration(rotate_interval, "--rotate-interval"),
                file_mode=parse_mode(file_mode),
                layout=parse_layout(layout),
            ),
            duration=parse_duration(duration, "--duration") if duration else None,
            command=list(command or []),
            force=force,
            status=False if quiet else None,
            quiet=quiet,
            log=log,
            upload=UploadConfig(upload, delete=upload_delete) if upload else None,
            flight=FlightConfig(
                parse_duration(flight, "--flight"),
                parse_size(flight_memory, "--flight-memory"),
                tuple(parse_trigger(t) for t in trigger),
            )
            if flight
            else None,
            retention=RetentionConfig(
                max_bytes=parse_size(max_size, "--max-size") if max_size else 0,
                max_files=max_files,
                max_age_s=parse_duration(max_age, "--max-age") if max_age else 0.0,
            ),
        )

    if repeat < 1:
        raise UserError(f"bad --repeat {repeat}: 1 or more")
    if repeat == 1:
        sys.exit(run(options(output)).exit_code)
    if not command:
        raise UserError("--repeat needs -- COMMAND: each run records one run of the command")
    for i in range(1, repeat + 1):
        run_dir = output / f"{i:0{len(str(repeat))}d}"
        if not quiet:
            print(f"sockopt-trace: run {i} of {repeat} into {run_dir}", file=sys.stderr)
        code = run(options(run_dir)).exit_code
        if code:  # a failed run, or Ctrl-C (passed on to the command): no more runs
            if not quiet:
                print(f"sockopt-trace: run {i} exited with status {code}: stopped", file=sys.stderr)
            sys.exit(code)


def parse_layout(text: str) -> str:
    if text not in ("flat", "fleet"):
        raise UserError(f"bad --layout {text!r}: flat or fleet")
    return text
