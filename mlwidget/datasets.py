"""Sources that workers read themselves: named Parquet or CSV datasets.

A :class:`Dataset` is a file, a folder or a glob on a local or shared path, or any fsspec URL
(``s3://bucket/sales/*.parquet``). It is a small, picklable description: a job carries it to
whichever process runs the work (a worker process, a Dask worker), and that process reads the
rows, partition by partition (:meth:`Dataset.parts`, :func:`read_part`). The process that
coordinates (the Jupyter server) sees the files' names, columns and row counts, never the rows.

Names come from the server's owner (``MLWidgetApp.data_sources``) or from Python
(:func:`configure`); a request may only *name* a configured source (:func:`from_request`): a path
or a URL from a request is refused with a 403, as a ``data`` option from a request is.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .errors import BadRequest, Forbidden, MLWidgetError, NotFound, reason

FORMATS = ("parquet", "csv")
PART_ROWS = 50_000  # rows a partition of a Parquet source holds, about (whole row groups)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Part:
    """One partition of a source: a file, or some row groups of a Parquet file."""

    path: str
    row_groups: tuple[int, ...] | None = None
    rows: int | None = None


@dataclass(frozen=True)
class Dataset:
    """A source: ``url`` (a path, folder, glob or fsspec URL), its ``format`` (parquet or csv;
    from the files' extension when not given) and fsspec ``storage_options`` (an S3 endpoint,
    credentials). ``name`` is what requests and answers call it."""

    url: str
    format: str = ""
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.strip():
            raise BadRequest(
                f"A source needs a url (a path, folder, glob or URL), got {self.url!r}."
            )
        # a folder or a glob without an extension: Parquet, the format partitions come in
        fmt = (self.format or guess_format(self.url) or "parquet").lower()
        if fmt not in FORMATS:
            raise BadRequest(
                f"Expected a source of {' or '.join(FORMATS)} files, got {self.url!r}"
                f" (format {self.format!r}). Give format='parquet' or format='csv'."
            )
        object.__setattr__(self, "format", fmt)
        object.__setattr__(self, "storage_options", dict(self.storage_options or {}))
        # unnamed (given in Python or a YAML data.url): its last part, never a whole path
        object.__setattr__(self, "name", self.name or last_part(self.url))

    def describe(self) -> dict[str, Any]:
        """What a model's info and a job's answer say of the source: its name and format."""
        return {"source": self.name, "format": self.format}

    def filesystem(self) -> tuple[Any, str]:
        """The fsspec filesystem and the path within it."""
        import fsspec.core

        return fsspec.core.url_to_fs(self.url, **self.storage_options)

    def files(self) -> list[str]:
        """The source's files, sorted: the glob's matches, the folder's files of its format
        (hidden files and ``_``-prefixed ones, such as ``_SUCCESS``, skipped), or the file."""
        fs, path = self.filesystem()
        try:
            if GLOB.search(path):
                found = fs.glob(path)
            elif fs.isdir(path):
                found = [p for p in fs.find(path) if p.lower().endswith(f".{self.format}")]
            else:
                found = [path] if fs.exists(path) else []
        except Exception as exc:  # a network or permission error of the filesystem
            raise MLWidgetError(
                f"Could not list source {self.name!r}: {why(exc)}. Check that the workers and "
                "the server can reach it.",
                status=422,
            ) from None
        files = sorted(p for p in found if not p.rsplit("/", 1)[-1].startswith((".", "_")))
        if not files:
            raise NotFound(
                f"Source {self.name!r} has no {self.format} files. Check its url, that the "
                "files exist where the workers read them, and its format (a folder or a glob "
                "without an extension is read as parquet unless format='csv' is given)."
            )
        return files

    def parts(self, rows: int = PART_ROWS) -> list[Part]:
        """The partitions workers read: every CSV file whole; a Parquet file's row groups,
        grouped to about ``rows`` rows (a file of one large row group is one part)."""
        if self.format == "csv":
            return [Part(path) for path in self.files()]
        import pyarrow.parquet as pq

        fs, _ = self.filesystem()
        out: list[Part] = []
        for path in self.files():
            with fs.open(path, "rb") as handle:
                meta = pq.ParquetFile(handle).metadata
            groups: list[int] = []
            count = 0
            for index in range(meta.num_row_groups):
                groups.append(index)
                count += meta.row_group(index).num_rows
                if count >= rows:
                    out.append(Part(path, tuple(groups), count))
                    groups, count = [], 0
            if groups or not out or out[-1].path != path:
                out.append(Part(path, tuple(groups), count))
        return out

    def columns(self) -> list[str]:
        """The columns, from the first file's Parquet schema or CSV header (no rows read)."""
        first = self.files()[0]
        fs, _ = self.filesystem()
        with fs.open(first, "rb") as handle:
            if self.format == "parquet":
                import pyarrow.parquet as pq

                return [str(n) for n in pq.ParquetFile(handle).schema_arrow.names]
            return [str(c) for c in pd.read_csv(handle, nrows=0).columns]


def last_part(url: str) -> str:
    """The last part of a url or path (``s3://b/sales/`` -> ``sales``)."""
    return url.rstrip("/").rsplit("/", 1)[-1] or url


# fsspec's remote protocols a configured data.url may use (other "scheme://" urls are
# SQLAlchemy databases, which Gramex's data sources read in the server)
REMOTE = ("s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "hdfs", "webhdfs", "file")


def worker_source(spec: Any, base_dir: str | None = None) -> Dataset | None:
    """The source a configured model's ``data`` names, when workers should read it: ``{source:
    NAME}`` (a configured source), or ``{url: ...}`` that is a remote fsspec URL (``s3://...``)
    or a local folder or glob. None for anything else (a file or a database, which the server
    reads as Gramex does)."""
    if not isinstance(spec, Mapping):
        return None
    if set(spec) == {"source"}:
        return resolve(spec["source"])
    url = spec.get("url")
    if not isinstance(url, str):
        return None
    fmt = str(spec.get("format") or spec.get("ext") or "").lstrip(".")
    options = dict(spec.get("storage_options") or {})
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme:
        return Dataset(url, fmt, options) if scheme in REMOTE else None
    path = url if os.path.isabs(url) or not base_dir else os.path.join(base_dir, url)
    if GLOB.search(path) or os.path.isdir(path):
        return Dataset(path, fmt, options)
    return None


def why(exc: BaseException) -> str:
    """An error of a filesystem, without the paths an OSError names (a response never shows
    the server's paths)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return reason(exc) if not isinstance(exc, OSError) else type(exc).__name__


def guess_format(url: str) -> str:
    """The format the url's extension says (``parquet``, ``csv``, or another extension, which
    is refused); '' when the last part has none (a folder, a ``data/*`` glob)."""
    tail = url.rstrip("/").rsplit("/", 1)[-1].lower()
    if tail.endswith(".gz"):
        tail = tail[:-3]
    return tail.rsplit(".", 1)[-1] if "." in tail.lstrip(".") else ""


def read_part(source: Dataset, part: Part, columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of one partition (in the process that works on them)."""
    fs, _ = source.filesystem()
    with fs.open(part.path, "rb") as handle:
        if source.format == "csv":
            return pd.read_csv(handle, usecols=columns)
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(handle)
        groups = list(part.row_groups) if part.row_groups is not None else None
        if groups is None:
            table = parquet.read(columns=columns)
        else:
            table = parquet.read_row_groups(groups, columns=columns)
        return table.to_pandas()


def read_all(source: Dataset) -> pd.DataFrame:
    """Every row of ``source`` as one frame (a worker that fits on the whole table)."""
    frames = [read_part(source, part) for part in source.parts()]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def iter_parts(source: Dataset) -> Iterator[tuple[int, Part, pd.DataFrame]]:
    """Each partition's index, description and rows, in order."""
    for index, part in enumerate(source.parts()):
        yield index, part, read_part(source, part)


def output_folder(output: Dataset, folder: str) -> str:
    """Where a job writes its answer's partitions: ``folder`` inside the output source."""
    return output.url.rstrip("/") + "/" + folder


def write_part(output: Dataset, folder: str, index: int, frame: pd.DataFrame) -> str:
    """Write one partition of answers as ``part-NNNNN.parquet`` in ``folder`` of ``output``;
    returns the file's name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, base = output.filesystem()
    target = base.rstrip("/") + "/" + folder
    fs.makedirs(target, exist_ok=True)
    name = f"part-{index:05d}.parquet"
    with fs.open(f"{target}/{name}", "wb") as handle:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), handle)
    return name


# ------------------------------------------------------------------ the names of sources

ENV_SOURCES = "MLWIDGET_DATA_SOURCES"  # JSON: {"name": "url" or {url, format, ...}}
_LOCK = threading.Lock()
_NAMED: dict[str, Dataset] = {}
_CONFIGURED: list[bool] = []  # whether configure() ran (else named() reads the environment)


def parse(name: str, spec: Any) -> Dataset:
    """A configured source: ``spec`` is a url, or ``{url, format, storage_options}``."""
    if not isinstance(name, str) or not NAME.match(name):
        raise BadRequest(
            f"Expected a source name of letters, digits, '_', '-' or '.' (at most 64, not "
            f"starting with a digit), got {name!r}."
        )
    if isinstance(spec, Dataset):
        return Dataset(spec.url, spec.format, spec.storage_options, name)
    if isinstance(spec, str):
        return Dataset(spec, name=name)
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"url", "format", "storage_options"})
        if unknown:
            raise BadRequest(
                f"Source {name!r}: expected the keys url, format, storage_options, got "
                f"{', '.join(map(str, unknown))} too."
            )
        return Dataset(
            str(spec.get("url") or ""),
            str(spec.get("format") or ""),
            dict(spec.get("storage_options") or {}),
            name,
        )
    raise BadRequest(f"Source {name!r}: expected a url or {{url, format}}, got {spec!r}.")


def configure(sources: Mapping[str, Any]) -> dict[str, Dataset]:
    """Name the sources requests may use (replacing the names known before); all are checked
    first, so a bad one changes nothing."""
    parsed = {name: parse(name, spec) for name, spec in sources.items()}
    restore(Naming(parsed, configured=True))
    return dict(parsed)


def add(name: str, source: Dataset) -> Dataset:
    """Name one more source (a configured model's ``data`` that workers read); returns it
    under that name."""
    named_source = parse(name, source)
    named()  # the environment's, if nothing was configured yet
    with _LOCK:
        _NAMED[name] = named_source
    return named_source


@dataclass(frozen=True)
class Naming:
    """The process's names of sources at one moment (a server gives them back when it stops)."""

    sources: dict[str, Dataset]
    configured: bool  # False: named() reads $MLWIDGET_DATA_SOURCES when first asked


def current_naming() -> Naming:
    with _LOCK:
        return Naming(dict(_NAMED), bool(_CONFIGURED))


def restore(naming: Naming) -> None:
    """Name the sources as ``naming`` did (a stopped server's names and their storage options
    no longer resolve in the process that ran it)."""
    with _LOCK:
        _NAMED.clear()
        _NAMED.update(naming.sources)
        _CONFIGURED[:] = [True] if naming.configured else []


def from_environment() -> dict[str, Any]:
    """The sources $MLWIDGET_DATA_SOURCES names (JSON), or none."""
    text = os.environ.get(ENV_SOURCES, "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"Expected ${ENV_SOURCES} to be a JSON object: {exc}.") from None
    if not isinstance(value, dict):
        raise BadRequest(
            f"Expected ${ENV_SOURCES} to be a JSON object, got {type(value).__name__}."
        )
    return value


def named() -> dict[str, Dataset]:
    """The configured sources, by name (until :func:`configure` runs in this process: those
    of $MLWIDGET_DATA_SOURCES)."""
    with _LOCK:
        if _CONFIGURED:
            return dict(_NAMED)
    return configure(from_environment())


def looks_like_location(value: str) -> bool:
    """Whether a request's ``source=`` value is a path or a URL rather than a name."""
    return bool(re.search(r"[/\\:~*?\[]", value)) or value.startswith(".")


def from_request(value: Any, key: str = "source") -> Dataset:
    """The configured source a request names (``source=NAME`` or ``output=NAME``): a path or a
    URL is a 403 (only the server's owner says which files workers read); an unknown name, 404."""
    text = str(value or "").strip()
    if not text:
        raise BadRequest(f"Expected {key}=<name of a configured source>, got nothing.")
    if looks_like_location(text):
        raise Forbidden(
            f"{key}= names a configured source; a path or URL is not accepted from a request "
            "(the server's owner names sources: MLWidgetApp.data_sources)."
        )
    return resolve(text, key)


def resolve(value: Any, key: str = "source") -> Dataset:
    """A :class:`Dataset` as given (Python), or the configured source of that name."""
    if isinstance(value, Dataset):
        return value
    known = named()
    if value not in known:
        names = ", ".join(sorted(known)) or "none are configured (MLWidgetApp.data_sources)"
        raise NotFound(f"Unknown {key} {str(value)[:80]!r}. Sources: {names}.")
    return known[value]


def materialize(table: Any) -> Any:
    """``table`` itself, or the rows of a source (read where this runs)."""
    return read_all(table) if isinstance(table, Dataset) else table


def reference(source: Dataset) -> dict[str, Any]:
    """What a model's state keeps of the source it trains on: its name, url and format, never
    its storage options (credentials stay in the server's configuration)."""
    return {"source": source.name, "url": source.url, "format": source.format}


def from_reference(ref: Mapping[str, Any]) -> Dataset:
    """The source a model's state names: the configured one of that name, if any (with its
    storage options), else the url it was trained from."""
    known = named().get(str(ref.get("source")))
    if known is not None and known.url == ref.get("url"):
        return known
    return Dataset(str(ref["url"]), str(ref.get("format") or ""), {}, str(ref.get("source") or ""))
