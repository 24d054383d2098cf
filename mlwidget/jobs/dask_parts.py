"""The partitions of a data-parallel fit on Dask (see dask_fit.py): how the training rows are laid
over the cluster's workers, and the functions the workers run on them, one task per partition.

- A **source** (``datasets.Dataset``): each partition (``Dataset.parts``) is read by a worker
  (``datasets.read_part``), the partitions dealt round-robin over all the workers. Each sends
  back a summary (its rows, a fingerprint, a random sample of its rows); the preprocessing is
  fitted on the samples put together (at most ``SAMPLE_ROWS`` rows), then every worker
  transforms its own partitions. No process holds all the rows.
- A **table** (a frame the server sent with the job): it is already in the job's process, so
  the preprocessing is fitted on all of it, exactly as a local fit does, and the transformed
  rows are split into partitions of at most ``PART_ROWS`` rows (at least one per worker) and
  sent to the workers, round-robin.

Either way a partition ends as ``(X, y)``: the transformed matrix (float64) and the labels,
held by its worker, where XGBoost's training reads it (one training task per worker that
holds partitions).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import datasets, schema, training
from ..errors import BadRequest

PART_ROWS = 50_000  # rows of a partition of a table split over the cluster
SAMPLE_ROWS = 50_000  # rows drawn from a source's partitions to fit the preprocessing on


@dataclass
class Laid:
    """The training rows, laid over the workers: ``parts`` (futures of ``(X, y)``), and what
    the job's process knows of them. ``ready`` is the prepared pipeline, its preprocessing
    fitted; ``X``, ``y``, ``Xt`` are the rows it was fitted on (all of a table, the sample
    of a source): the training score is computed on them."""

    ready: training.Prepared
    parts: list[Any]
    X: pd.DataFrame
    y: Any
    Xt: np.ndarray
    fingerprint: str
    data_rows: int | None = None  # a source's rows and columns (a table's are known already)
    data_columns: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list)


def name(what: str) -> str:
    """A fresh key prefix for the tasks of one fit: ``mlwidget-fit-<token>-<what>``."""
    return f"mlwidget-fit-{uuid.uuid4().hex[:10]}-{what}"


def same(value: Any) -> Any:
    """A partition moved to the worker that runs this task."""
    return value


def from_table(
    client: Any,
    workers: list[str],
    options: Any,
    table: pd.DataFrame,
    allowed: tuple[str, ...],
    ceilings: Any,
    metric: str | None,
    known_hash: str | None,
) -> Laid:
    """A table in the job's process: preprocessing fitted on all of it, then its transformed
    rows sent to the workers in partitions."""
    from distributed import get_worker, wait

    ready = training.prepare(options, table, allowed, ceilings, metric, known_hash)
    Xt = np.asarray(ready.pipeline[:-1].fit_transform(ready.X, ready.y), dtype=np.float64)
    y = np.asarray(ready.y)
    count = max(len(workers), -(-len(Xt) // PART_ROWS))
    bounds = np.linspace(0, len(Xt), count + 1).astype(int)
    here, key = get_worker().address, name("part")
    local, parts = [], []
    for i, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if stop <= start:
            continue
        # a scatter from a worker keeps the data on that worker: a task placed on another
        # worker then fetches it from here, worker to worker
        (piece,) = client.scatter([(Xt[start:stop], y[start:stop])], hash=False)
        target = workers[i % len(workers)]
        if target == here:
            parts.append(piece)
            continue
        local.append(piece)
        moved = client.submit(
            same, piece, key=f"{key}-{i}", workers=[target], allow_other_workers=True, pure=False
        )
        parts.append(moved)
    wait(parts)
    for piece in local:
        piece.release()
    fingerprint = known_hash or training.data_hash(table)
    return Laid(ready, parts, ready.X, ready.y, Xt, fingerprint)


def from_source(
    client: Any,
    workers: list[str],
    options: Any,
    source: datasets.Dataset,
    allowed: tuple[str, ...],
    ceilings: Any,
    metric: str | None,
) -> Laid:
    """A source: its partitions read by the workers, the preprocessing fitted on a sample of
    every partition, each partition transformed where it was read."""
    from distributed import wait

    pieces = source.parts()
    key = name("read")
    raw = [
        client.submit(
            datasets.read_part,
            source,
            part,
            key=f"{key}-{i}",
            workers=[workers[i % len(workers)]],
            allow_other_workers=True,
            pure=False,
        )  # fmt: skip
        for i, part in enumerate(pieces)
    ]
    share = -(-SAMPLE_ROWS // len(raw))
    summaries = client.gather(
        client.map(summarize, raw, [share] * len(raw), range(len(raw)), key=name("summary"))
    )
    sample = pd.concat([s["sample"] for s in summaries], ignore_index=True)
    ready = training.prepare(options, sample, allowed, ceilings, metric)
    transformer = ready.pipeline[:-1]
    Xt = np.asarray(transformer.fit_transform(ready.X, ready.y), dtype=np.float64)
    parts = client.map(
        transform, raw, options=options, features=ready.features, transformer=transformer,
        key=name("transform"),
    )  # fmt: skip
    wait(parts)
    for future in raw:  # the transformed partitions stay; the rows as read go
        future.release()
    rows = sum(int(s["rows"]) for s in summaries)
    digest = hashlib.sha256("".join(s["digest"] for s in summaries).encode())
    laid = Laid(ready, parts, ready.X, ready.y, Xt, digest.hexdigest()[:16])
    laid.data_rows, laid.data_columns = rows, tuple(summaries[0]["columns"])
    if len(sample) < rows:
        laid.notes.append(
            f"The imputers, scaling and one-hot categories were fitted on a sample of "
            f"{len(sample):,} of the {rows:,} rows (drawn from every partition) and the "
            "training score is on that sample; the model was trained on every row, over the "
            "Dask cluster. A category missing from the sample is treated as an unknown one."
        )
    return laid


# ------------------------------------------------------------- tasks, on the workers


def summarize(frame: pd.DataFrame, share: int, seed: int) -> dict[str, Any]:
    """A partition as read: its rows, columns, a fingerprint, and a random sample of ``share``
    rows (all of them when it has fewer)."""
    columns = [str(c) for c in frame.columns]
    digest = hashlib.sha256(repr(columns).encode())
    try:
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    except TypeError:  # unhashable cells (lists): their text
        digest.update(frame.astype(str).to_csv(index=False).encode())
    sample = frame.sample(n=share, random_state=seed) if len(frame) > share else frame
    return {"rows": len(frame), "columns": columns, "digest": digest.hexdigest(), "sample": sample}


def transform(
    frame: pd.DataFrame, options: Any, features: list[dict[str, Any]], transformer: Any
) -> tuple[np.ndarray, np.ndarray]:
    """A partition's training rows as ``(X, y)``: the rows a local fit keeps (a target, and with
    ``dropna`` / ``deduplicate`` no missing values / no duplicates, within the partition), cast
    as the sample's schema says, through the fitted preprocessing."""
    names = [f["name"] for f in features]
    target = str(options.get("target_col"))
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    missing = [c for c in [*names, target] if c not in frame.columns]
    if missing:
        raise BadRequest(
            f"A partition of the source has no column {', '.join(map(repr, missing))}, which "
            "the others have. Expected the same columns in every file of a source."
        )
    frame = frame[[*names, target]]
    frame = frame[frame[target].notna()]
    if options.get("dropna", True):
        frame = frame.dropna()
    if options.get("deduplicate", True):
        frame = frame.drop_duplicates()
    y = frame[target].to_numpy()
    if frame.empty:
        return np.empty((0, 0), dtype=np.float64), y
    X = schema.cast(frame[names].reset_index(drop=True), features)
    return np.asarray(transformer.transform(X), dtype=np.float64), y


def labels(part: tuple[np.ndarray, np.ndarray]) -> tuple[int, np.ndarray, np.ndarray]:
    """A partition's rows, distinct labels and their counts."""
    values, counts = np.unique(part[1], return_counts=True)
    return len(part[1]), values, counts


def features_of(part: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return part[0]


def codes_of(part: tuple[np.ndarray, np.ndarray], classes: np.ndarray | None) -> np.ndarray:
    """A partition's labels as XGBoost learns them: a classifier's codes 0..k-1 (positions in
    the sorted ``classes``), a regressor's numbers."""
    if classes is None:
        return np.asarray(part[1], dtype=np.float64)
    return np.searchsorted(classes, part[1]).astype(np.int64)


def arrays(
    parts: list[Any], rows: list[int], width: int, classes: np.ndarray | None
) -> tuple[Any, Any]:
    """The partitions as Dask arrays ``(X, y)``, each chunk computed where its partition is."""
    import dask
    import dask.array as da

    ytype = np.float64 if classes is None else np.int64
    X = da.concatenate(
        [
            da.from_delayed(dask.delayed(features_of)(p), shape=(n, width), dtype=np.float64)
            for p, n in zip(parts, rows, strict=True)
        ]
    )
    y = da.concatenate(
        [
            da.from_delayed(dask.delayed(codes_of)(p, classes), shape=(n,), dtype=ytype)
            for p, n in zip(parts, rows, strict=True)
        ]
    )
    return X, y
