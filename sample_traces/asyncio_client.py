"""A plain asyncio HTTP/1.1 client, run by Debian's /usr/bin/python3 for the sample recordings.

Opens one TCP connection per request (asyncio.open_connection, `Connection: close`), with bounded
concurrency and a bounded rate, and reads each response to the end. CPython's event loop asks
SO_ERROR once per non-blocking connect: that is the getsockopt traffic recorded. Only loopback
addresses are accepted. Standard library only, so it runs on any python3.

    python3 asyncio_client.py --port 18101 --requests 400 --concurrency 8 --rate 100
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
import time


def loopback(host: str) -> str:
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise argparse.ArgumentTypeError(f"{host} is not a loopback address")
    return host


async def fetch(host: str, port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    status_line = response.split(b"\r\n", 1)[0].split()
    return int(status_line[1]) if len(status_line) > 1 else 0


async def run(args: argparse.Namespace) -> int:
    gate = asyncio.Semaphore(args.concurrency)
    start = time.monotonic()
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        # pace the starts: request i begins no earlier than i / rate seconds in
        await asyncio.sleep(max(0.0, start + i / args.rate - time.monotonic()))
        async with gate:
            status = await fetch(args.host, args.port, f"/{i}")
        if status != 200:
            failures += 1

    await asyncio.gather(*(one(i) for i in range(args.requests)))
    elapsed = time.monotonic() - start
    print(f"{args.requests} requests, {failures} failed, {elapsed:.1f} s", file=sys.stderr)
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", type=loopback, default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=100.0, help="request starts per second")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
