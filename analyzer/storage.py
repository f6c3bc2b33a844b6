"""Recordings in object storage (s3://, gs://, az://) and Hive-style fleet layouts.

Reading goes through pyarrow's own filesystems (in the pyarrow wheel: nothing to download at
run time, unlike DuckDB's httpfs extension, which these machines cannot fetch): pyarrow lists
the files and opens them for `footer.read_footer`, and DuckDB reads the rows through the same
filesystem, registered on its connection as an fsspec filesystem. Credentials come from the
usual places (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, AWS_PROFILE and
~/.aws/credentials, instance roles: the AWS SDK's chain) and are never printed; the endpoint of
an S3-compatible server (MinIO, a test server) from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL.

Fleet layout: `.../host=NAME/date=YYYY-MM-DD/*.parquet` (`record --layout fleet` writes it, and
rotates files at midnight UTC so that a file holds calls of its directory's date only). Such
directories are pruned by `Prune` before any file in them is opened.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sockopt_trace.errors import UserError

if TYPE_CHECKING:
    from typing import TypeAlias

    import pyarrow as pa
    import pyarrow.fs as pafs

    Buffer: TypeAlias = bytes | pa.Buffer  # a block: pyarrow's read_at result, kept uncopied

SCHEMES = ("s3", "gs", "gcs", "az", "abfs")
_URL = re.compile(r"^([a-z0-9]+)://(.*)$")
_PARTITION = re.compile(r"^(host|date)=(.+)$")


@dataclass(frozen=True, order=True)
class ObjectPath:
    """A file or prefix in object storage, `scheme://bucket/key`; behaves enough like a Path
    for the analyzer (str, name, resolve) that the rest of it need not care."""

    scheme: str
    key: str  # bucket/key, no leading slash

    def __str__(self) -> str:
        return f"{self.scheme}://{self.key}"

    @property
    def name(self) -> str:
        return self.key.rstrip("/").rsplit("/", 1)[-1]

    def resolve(self) -> ObjectPath:
        return self


def is_url(spec: str) -> bool:
    m = _URL.match(spec)
    return bool(m) and m.group(1) in SCHEMES if m else False


def parse_url(spec: str) -> ObjectPath:
    m = _URL.match(spec)
    if not m or m.group(1) not in SCHEMES:
        raise UserError(f"{spec}: not a storage URL (s3://bucket/prefix/, gs://..., az://...)")
    scheme = "gs" if m.group(1) == "gcs" else "az" if m.group(1) == "abfs" else m.group(1)
    key = m.group(2).lstrip("/")
    if not key:
        raise UserError(f"{spec}: give a bucket, e.g. {scheme}://bucket/prefix/")
    return ObjectPath(scheme, key)


@functools.cache
def filesystem(scheme: str) -> pafs.FileSystem:
    """pyarrow's filesystem for `scheme`, configured from the environment (one per process).
    pyarrow is imported here, for object storage only: local reports start without it."""
    import pyarrow.fs as pafs

    try:
        if scheme == "s3":
            return pafs.S3FileSystem(**s3_options(os.environ))
        if scheme == "gs":
            return pafs.GcsFileSystem()
        if scheme == "az":
            account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
            if not account:
                raise UserError("az:// needs AZURE_STORAGE_ACCOUNT_NAME (and credentials)")
            return pafs.AzureFileSystem(account_name=account)
    except (OSError, ValueError, ImportError) as err:
        raise UserError(f"cannot use {scheme}:// storage here: {_first(err)}") from None
    raise UserError(f"{scheme}:// storage is not supported")


def s3_options(env: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    """S3FileSystem arguments from the environment: the endpoint and region (credentials are
    left to the AWS SDK's own chain, which reads the same variables and profiles)."""
    options: dict[str, Any] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options["endpoint_override"] = parts.netloc + parts.path.rstrip("/")
        options["scheme"] = parts.scheme or "https"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    return options


def list_files(prefix: ObjectPath, suffixes: tuple[str, ...]) -> list[ObjectPath]:
    """Every object under `prefix` (a "directory") or `prefix` itself, ending in a suffix."""
    import pyarrow.fs as pafs

    fs = filesystem(prefix.scheme)
    try:
        info = fs.get_file_info(prefix.key.rstrip("/"))
        if info.type == pafs.FileType.File:
            return [prefix]
        if info.type == pafs.FileType.NotFound:
            raise UserError(f"{prefix}: no such object or prefix")
        found = fs.get_file_info(pafs.FileSelector(prefix.key.rstrip("/"), recursive=True))
    except OSError as err:
        raise UserError(f"{prefix}: cannot list: {_first(err)}") from None
    return sorted(
        ObjectPath(prefix.scheme, i.path)
        for i in found
        if i.type == pafs.FileType.File and i.path.endswith(suffixes)
    )


def open_input(path: ObjectPath) -> Any:
    """A random-access file (what footers are read from: footer.read_footer)."""
    return filesystem(path.scheme).open_input_file(path.key)


def size(path: ObjectPath) -> int:
    return int(filesystem(path.scheme).get_file_info(path.key).size or 0)


def fsspec_filesystems(schemes: Iterable[str]) -> list[Any]:
    """fsspec wrappers of our pyarrow filesystems, to register on a DuckDB connection so that
    `read_parquet('s3://...')` reads through them (no httpfs extension needed). Files open as
    `PositionalFile`s."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    wrappers = []
    cache = BlockCache()
    for scheme in sorted(set(schemes)):

        class Wrapper(ArrowFSWrapper):
            protocol = (scheme,)

            def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
                if mode != "rb":
                    return super()._open(path, mode, *args, **kwargs)
                name = f"{self.protocol[0]}://{path}"
                return PositionalFile(self.fs.open_input_file(path), cache, name)

        wrappers.append(Wrapper(filesystem(scheme)))
    return wrappers


BLOCK = 8 << 20  # bytes fetched at once for a smaller read: AWS's advice for ranged GETs (8-16 MB)
KEEP_BLOCKS = 8  # blocks a connection keeps (64 MiB): row groups in flight on a few threads


class BlockCache:
    """Aligned blocks of remote files, shared by every handle on them: DuckDB opens a file
    again for each part of a scan, so a cache per handle would fetch each block again. A block
    asked for by several threads at once is fetched once; the least recently used goes first."""

    def __init__(self, keep: int = KEEP_BLOCKS) -> None:
        self.keep = keep
        self._blocks: OrderedDict[tuple[str, int], Buffer] = OrderedDict()
        self._pending: dict[tuple[str, int], threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int], fetch: Callable[[], Buffer]) -> Buffer:
        while True:
            with self._lock:
                block = self._blocks.get(key)
                if block is not None:
                    self._blocks.move_to_end(key)
                    return block
                pending = self._pending.get(key)
                mine = pending is None
                if pending is None:
                    pending = self._pending[key] = threading.Event()
            if not mine:
                pending.wait()  # another thread fetches it (if that failed, try again here)
                continue
            try:
                block = fetch()  # outside the lock: other threads read other blocks meanwhile
                with self._lock:
                    self._blocks[key] = block
                    while len(self._blocks) > self.keep:
                        self._blocks.popitem(last=False)
                return block
            finally:
                with self._lock:
                    del self._pending[key]
                pending.set()


class PositionalFile(io.RawIOBase):
    """A remote file for DuckDB's threads: each keeps its own position, and reads at it with the
    file's positional read (`read_at`), never the shared one.

    DuckDB shares one handle per file between its threads, each doing `seek(at)` then
    `read(n)`; pyarrow's `read` releases the GIL while it fetches, and the shared position moves
    under it when another thread seeks meanwhile: a read could return another range's bytes,
    which DuckDB reports as damaged data ("don't know what type"). Seen in CI on a 37 MB object
    read by two threads (tests/unit/test_storage.py) and in a 100M-event bench before.

    Reads smaller than BLOCK are served from aligned blocks of BLOCK bytes in `cache` (shared by
    a connection's handles; `name` tells files apart in it): DuckDB asks for each column chunk
    of each row group on its own (tens of KB), and a request to object storage costs its
    latency whatever its size (S3: tens of ms to the first byte; the moto server of the tests
    ~60 ms for 4 KB and 4 MB alike). Blocks fetch the columns a report skips too, in a fraction
    of the requests: a latency report over 25M events in five 91 MB objects read 91 MB in 412
    requests (20 s through moto), and now 519 MB in 64 (3.7 s; 1, 2, 4 MiB blocks: 21, 15,
    6.6 s; docs/benchmarks.md, fleet).
    """

    def __init__(self, stream: Any, cache: BlockCache | None = None, name: str = "") -> None:
        super().__init__()
        self._stream = stream
        self._size = int(stream.size())
        self._pos: dict[int, int] = {}  # thread id -> its position
        self._cache = cache if cache is not None else BlockCache()
        self._name = f"{name}:{self._size}"  # a replaced object is another file

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def size(self) -> int:
        return self._size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        me = threading.get_ident()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos.get(me, 0), io.SEEK_END: self._size}
        self._pos[me] = max(0, base[whence] + offset)
        return self._pos[me]

    def tell(self) -> int:
        return self._pos.get(threading.get_ident(), 0)

    def read(self, size: int | None = -1) -> bytes:
        me = threading.get_ident()
        at = self._pos.get(me, 0)
        n = self._size - at if size is None or size < 0 else min(size, self._size - at)
        if n <= 0:
            data = b""
        elif n >= BLOCK:
            data = bytes(self._stream.read_at(n, at))
        else:
            first, last = at // BLOCK, (at + n - 1) // BLOCK
            blocks = [self._block(i) for i in range(first, last + 1)]
            joined = blocks[0] if first == last else b"".join(blocks)
            start = at - first * BLOCK
            data = bytes(memoryview(joined)[start : start + n])
        self._pos[me] = at + len(data)
        return data

    def _block(self, index: int) -> Buffer:
        at = index * BLOCK
        return self._cache.get(
            (self._name, index),
            lambda: self._stream.read_at(min(BLOCK, self._size - at), at),  # no copy: a Buffer
        )

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


# A date=D directory may hold calls a little outside day D (UTC): rows drained just after the
# file that held them was sealed at midnight; pruning keeps this margin on both sides.
DATE_SLACK_NS = 3600 * 10**9


@dataclass(frozen=True)
class Prune:
    """What a fleet layout's directories can be skipped for: hosts not asked for (--where
    host = '...' or host IN (...)), dates wholly outside absolute --since/--until (by more
    than DATE_SLACK_NS)."""

    hosts: frozenset[str] | None = None
    since_ns: int | None = None
    until_ns: int | None = None

    def keeps(self, path: str) -> bool:
        parts: dict[str, str] = {}
        for part in path.split("/"):
            if m := _PARTITION.match(part):
                parts[m.group(1)] = m.group(2)
        if self.hosts is not None and "host" in parts and parts["host"] not in self.hosts:
            return False
        if "date" in parts and (self.since_ns is not None or self.until_ns is not None):
            try:
                day = dt.datetime.strptime(parts["date"], "%Y-%m-%d").replace(
                    tzinfo=dt.timezone.utc
                )
            except ValueError:
                return True
            start = int(day.timestamp()) * 10**9 - DATE_SLACK_NS
            end = start + 86_400 * 10**9 + 2 * DATE_SLACK_NS
            if self.since_ns is not None and end <= self.since_ns:
                return False
            if self.until_ns is not None and start >= self.until_ns:
                return False
        return True


def hosts_in_where(where: str | None) -> frozenset[str] | None:
    """The hosts a --where allows, when it is `host = 'x'`, `host IN ('x', 'y')` or such a
    condition AND-ed with others; None when it does not say (then nothing is pruned)."""
    if not where:
        return None
    try:
        import sqlglot
        from sqlglot import exp
    except ImportError:
        return None
    try:
        tree = sqlglot.parse_one(where, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return None
    conjuncts = list(tree.flatten()) if isinstance(tree, exp.And) else [tree]
    for c in conjuncts:
        c = c.unnest()
        if isinstance(c, exp.EQ) and _is_host(c.this) and isinstance(c.expression, exp.Literal):
            return frozenset([c.expression.this])
        if isinstance(c, exp.In) and _is_host(c.this) and not c.args.get("query"):
            values = c.expressions
            if values and all(isinstance(v, exp.Literal) and v.is_string for v in values):
                return frozenset(v.this for v in values)
    return None


def _is_host(node: Any) -> bool:
    from sqlglot import exp

    return isinstance(node, exp.Column) and node.name == "host" and not node.table


def _first(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
