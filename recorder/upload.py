"""`record --upload URL`: copy every sealed file to a bucket or a directory, in the background.

Files go into the fleet layout (`URL/host=NAME/date=YYYY-MM-DD/FILE`, see
`schema.fleet_prefix`), the layout the analyzer reads many hosts from. One thread does the
uploads; the recording only hands it the path of each file it seals, so a slow or absent server
never holds up recording. A failed upload is retried with exponential back-off (1 s doubling up
to `backoff_max`, with jitter so that a fleet does not retry in step). An upload counts only
once it is confirmed (the object or file is there with the local file's size); only then is it
written to the ledger (`UPLOADED_NAME` in the recording directory) and, with --upload-delete,
the local copy removed. A recorder that starts in a directory uploads whatever sealed file the
ledger does not list: uploads interrupted by a stop, a crash or a long outage resume there.

Each object is written whole under its final key (an S3 object appears only when its upload
completes; a directory copy is renamed into place after fsync), so a file uploaded twice (a
crash between the upload and the ledger) lands on the same key with the same bytes: every
sealed file arrives exactly once.

S3 follows the usual AWS conventions, as the analyzer's bucket support does: credentials from
the environment, ~/.aws or the instance profile; `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` for
an S3-compatible server (MinIO, a test server); the region from `AWS_DEFAULT_REGION`/
`AWS_REGION`. Credentials are never printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sockopt_trace import schema
from sockopt_trace.errors import UserError

UPLOADED_NAME = ".sockopt-trace.uploaded"  # the ledger: one JSON line per confirmed upload
CHUNK = 8 << 20


@dataclass
class UploadConfig:
    url: str
    delete: bool = False  # remove the local copy once its upload is confirmed
    backoff_max: float = 60.0  # seconds between retries, at most
    drain_seconds: float = 10.0  # at stop: keep uploading this long, then leave it to next start


class Destination(Protocol):
    url: str

    def put(self, local: Path, key: str) -> None:
        """Upload `local` under `key` and confirm it is there whole; raise OSError if not."""


class Directory:
    """A local (or mounted) directory: copied beside the final name, fsync'ed, renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def put(self, local: Path, key: str) -> None:
        final = self.root / key
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(final.name + ".uploading")
        with open(local, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, final)
        fd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _confirm(final.stat().st_size, local)


class Bucket:
    """An S3 bucket (or any S3-compatible server), through pyarrow's S3 filesystem."""

    def __init__(self, url: str) -> None:
        from pyarrow import fs

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise UserError(f"bad --upload {url!r}: give s3://BUCKET/PREFIX or a directory")
        self.url = url.rstrip("/")
        self._root = f"{bucket}/{prefix.strip('/')}".rstrip("/")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        options: dict[str, Any] = {
            # bounded calls: a hung server must not hold the uploader (and a stop) for ever
            "connect_timeout": 5,
            "request_timeout": 30,
            # retries are ours (with back-off, logged), not hidden inside each call
            "retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=1),
        }
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            options["region"] = region
        if endpoint:
            options["endpoint_override"] = endpoint
        try:
            self._fs = fs.S3FileSystem(**options)
        except Exception as err:  # pyarrow built without S3, bad endpoint
            raise UserError(f"--upload {url}: {_one_line(err)}") from None
        self._file_type = fs.FileType.File

    def put(self, local: Path, key: str) -> None:
        path = f"{self._root}/{key}"
        with open(local, "rb") as src, self._fs.open_output_stream(path) as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)
        info = self._fs.get_file_info(path)
        if info.type != self._file_type:
            raise OSError(f"{path} is not in the bucket after its upload")
        _confirm(info.size, local)


def _confirm(size: int | None, local: Path) -> None:
    expected = local.stat().st_size
    if size != expected:
        raise OSError(f"uploaded {size} bytes of {local.name}, expected {expected}")


def destination(url: str) -> Destination:
    """Parse --upload: s3://BUCKET/PREFIX or a local directory (created if missing)."""
    if url.startswith("s3://"):
        return Bucket(url)
    if "://" in url and not url.startswith("file://"):
        raise UserError(f"bad --upload {url!r}: give s3://BUCKET/PREFIX or a local directory")
    root = Path(url.removeprefix("file://"))
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--upload {url}: cannot create it: {err.strerror}") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise UserError(f"--upload {url}: not writable")
    return Directory(root.resolve())


class Ledger:
    """The uploads confirmed from one recording directory, kept in a file there."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / UPLOADED_NAME
        self.done: set[tuple[str, str]] = set()  # (file name, destination url)
        lines = []
        with contextlib.suppress(FileNotFoundError):
            lines = self.path.read_text().splitlines()
        kept = []
        for line in lines:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                if (directory / entry["file"]).exists():  # forget what retention removed
                    self.done.add((entry["file"], entry["destination"]))
                    kept.append(line)
        if len(kept) < len(lines):  # compact, atomically
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(f"{line}\n" for line in kept))
            os.replace(tmp, self.path)

    def add(self, name: str, url: str, key: str, size: int) -> None:
        entry = {"file": name, "destination": url, "key": key, "bytes": size}
        with open(self.path, "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done.add((name, url))


class Uploader(threading.Thread):
    """Uploads sealed files in the order they were sealed; `add` never blocks."""

    def __init__(
        self,
        config: UploadConfig,
        directory: Path,
        log: Callable[[str], None],
        dest: Destination | None = None,
    ) -> None:
        super().__init__(name="sockopt-upload", daemon=True)
        self.config = config
        self.dest = dest or destination(config.url)
        self.directory = directory
        self.log = log
        self.ledger = Ledger(directory)
        self.uploaded = 0
        self.failures = 0  # failed attempts, all told
        self._queue: queue.Queue[tuple[Path, str]] = queue.Queue()
        self._stop_at: float | None = None
        self._wake = threading.Event()
        self._pending = 0
        self._lock = threading.Lock()
        self.unfinished = self._add_unfinished()

    def add(self, path: Path, meta: schema.RecordingMetadata) -> None:
        """A file was sealed: queue it (its key comes from its own metadata)."""
        with self._lock:
            self._pending += 1
        self._queue.put((path, f"{schema.fleet_prefix(meta.host, meta.start_ns)}/{path.name}"))

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def _add_unfinished(self) -> int:
        """Queue the sealed files of the directory the ledger does not list (oldest first):
        what an earlier run could not upload. Done before this run seals anything."""
        found = []
        for path in self.directory.glob(f"*{schema.FILE_SUFFIX}"):
            if (path.name, self.dest.url) in self.ledger.done:
                continue
            try:
                meta = schema.read_file_metadata(str(path))
            except Exception:  # not one of ours (or damaged): not ours to upload
                continue
            found.append((meta.start_ns, path, meta))
        for _, path, meta in sorted(found, key=lambda f: (f[0], f[1].name)):
            self.add(path, meta)
        return len(found)

    def finish(self, seconds: float | None = None) -> None:
        """Recording ends: keep uploading for up to `seconds` (the config's drain time), then
        stop; what is left stays for the next start in this directory."""
        wait = self.config.drain_seconds if seconds is None else seconds
        self._stop_at = time.monotonic() + wait
        self._queue.put((Path(), ""))  # wakes a thread waiting for work
        self._wake.set()  # and one waiting out a back-off
        self.join(wait + 35)  # one call in flight ends within the S3 request timeout
        left = self.pending
        if left:
            self.log(
                f"{left:,} sealed files not uploaded yet to {self.dest.url}: "
                "uploaded when the recorder next starts in this directory"
            )

    def run(self) -> None:
        try:
            self._run()
        except Exception as err:  # never silently: the recording goes on, uploads do not
            self.log(f"uploads to {self.dest.url} stopped: {_one_line(err)}")

    def _run(self) -> None:
        streak = 0
        while True:
            item = self._next()
            if item is None:
                return
            path, key = item
            while True:
                try:
                    self.dest.put(path, key)
                    break
                except FileNotFoundError:  # removed meanwhile (retention): nothing to upload
                    self.log(f"{path.name} was removed (retention) before it could be uploaded")
                    key = ""
                    break
                except Exception as err:
                    streak += 1
                    self.failures += 1
                    delay = min(self.config.backoff_max, 2.0 ** (streak - 1))
                    delay *= random.uniform(0.8, 1.2)
                    if streak == 1:
                        self.log(
                            f"upload of {path.name} to {self.dest.url} failed: {_one_line(err)}; "
                            f"retrying with back-off (at most {self.config.backoff_max:g} s apart)"
                        )
                    if not self._pause(delay):
                        return
            if key:
                self._done(path, key, streak)
            streak = 0
            with self._lock:
                self._pending -= 1

    def _next(self) -> tuple[Path, str] | None:
        while True:
            if self._stop_at is not None:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    return None
                if time.monotonic() >= self._stop_at:
                    return None
            else:
                item = self._queue.get()
            if item[1]:
                return item

    def _pause(self, delay: float) -> bool:
        """Wait out a back-off (cut short once, by `finish`); False if the stop deadline comes
        first."""
        if self._stop_at is None:
            self._wake.wait(delay)
            return True
        if time.monotonic() + delay >= self._stop_at:
            return False
        time.sleep(delay)
        return True

    def _done(self, path: Path, key: str, failed: int) -> None:
        size = path.stat().st_size
        note = f" after {failed} failed attempts" if failed else ""
        try:
            self.ledger.add(path.name, self.dest.url, key, size)
        except OSError as err:  # uploaded all the same; a later start uploads it again, same key
            note += f"; not noted in {UPLOADED_NAME}: {err.strerror}"
        self.uploaded += 1
        if self.config.delete:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            note += ", local copy deleted"
        self.log(f"uploaded {path.name} to {self.dest.url}/{key} ({size:,} bytes{note})")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:240] or type(err).__name__
