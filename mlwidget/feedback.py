"""Feedback on logged predictions (docs/monitoring.md): ``POST ?_action=feedback``,
``MLModel.feedback``, and its files. The labelled rows it gives the training data
(``?_action=append&from=feedback``) are feedback_rows.py's; reading and deleting it
(``GET ?_feedback``, ``DELETE ?_feedback``) feedback_read.py's.

An item names a prediction id of the log and says what the answer should have been
(``actual``), or flags it (``right`` / ``wrong``, with a ``note``). Every id must be in the log
(else a 400 listing a few, nothing stored). What the log holds of the prediction (its version,
time, input row and prediction) is copied into the feedback record, so feedback outlives the
log's retention and ``?_monitor`` and appends need no join.

Records are Parquet segments in ``<store>/<model>/feedback/``, ``fb-<seq>.parquet``, ``seq``
counting up (a file lock hands out the numbers; each segment is written whole under a
temporary name and renamed). Appending labels to the training data records the last segment
appended in the model's state (``feedback_appended``), in the same commit as the rows: a
second append adds only the labels that arrived since, each id once (its latest ``actual``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from . import access, predicting, predlog, predlog_files
from .errors import BadRequest, Busy, Forbidden
from .jsonable import dumps

FEEDBACK_DIR = "feedback"
SEGMENT = re.compile(r"fb-(\d{10})\.parquet")  # fullmatch
REMOVED = ".removed"  # the number of the last segment removed (DELETE ?_feedback)
FLAGS = ("right", "wrong")
KEYS = ("id", "actual", "flag", "note")
MAX_ITEMS = 10_000  # items in one request
MAX_NOTE = 2000  # characters of a note
SHOWN = 5  # unknown ids named in an error
LOCK_TIMEOUT = 10.0
COLUMNS = (
    "id", "time", "caller", "actual", "flag", "note", "version", "predicted_at", "prediction",
    "input",
)  # fmt: skip


def arrow_schema() -> Any:
    import pyarrow as pa

    stamp = pa.timestamp("ms", tz="UTC")
    return pa.schema(
        [
            ("id", pa.string()),
            ("time", stamp),
            ("caller", pa.string()),
            ("actual", pa.string()),  # JSON text, typed as the target; null: a flag only
            ("flag", pa.string()),
            ("note", pa.string()),
            ("version", pa.int64()),
            ("predicted_at", stamp),
            ("prediction", pa.string()),  # JSON text, as in the log
            ("input", pa.string()),  # JSON text, as in the log
        ]
    )


# ------------------------------------------------------------------------------ the items


def parse_body(body: bytes) -> Any:
    """A request body's JSON (a list of items, or one), or a 400 saying what to send."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest(
            'Expected a JSON body for _action=feedback: [{"id": "<prediction id>", '
            '"actual": <value>}] or {"id": ..., "flag": "wrong", "note": "..."}, got '
            f"{body[:40]!r}. The ids are in the answers' X-Prediction-Id header."
        ) from None


def parse_items(given: Any) -> list[dict[str, Any]]:
    """The feedback items asked for: ``{"id", "actual"?, "flag"?, "note"?}`` each, checked
    (a 400 naming the first wrong item and what it should be)."""
    items = [given] if isinstance(given, Mapping) else given
    if not isinstance(items, list) or not items:
        raise BadRequest(
            "Expected feedback as a JSON object or a non-empty list of them, such as "
            f'[{{"id": "3f9a1c2b7d4e-0", "actual": 1}}], got {_show(given)}.'
        )
    if len(items) > MAX_ITEMS:
        raise BadRequest(f"Expected at most {MAX_ITEMS:,} feedback items, got {len(items):,}.")
    return [_item(i, item) for i, item in enumerate(items)]


def _item(i: int, item: Any) -> dict[str, Any]:
    where = f"feedback item {i}"
    if not isinstance(item, Mapping):
        raise BadRequest(f"Expected {where} to be an object with an id, got {_show(item)}.")
    extra = sorted(str(k) for k in item if k not in KEYS)
    if extra:
        raise BadRequest(
            f"Expected {where} to have the keys {', '.join(KEYS)}; got also {', '.join(extra)}."
        )
    ident, actual = item.get("id"), item.get("actual")
    flag, note = item.get("flag"), item.get("note")
    if not isinstance(ident, str) or not ident.strip():
        raise BadRequest(
            f"Expected {where} to have an id (text from X-Prediction-Id), got {_show(ident)}."
        )
    if actual is not None and not isinstance(actual, str | int | float | bool):
        raise BadRequest(f"Expected {where}'s actual to be one value, got {_show(actual)}.")
    if flag is not None and flag not in FLAGS:
        raise BadRequest(f"Expected {where}'s flag to be right or wrong, got {_show(flag)}.")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise BadRequest(f"Expected {where}'s note to be text of at most {MAX_NOTE} characters.")
    if actual is None and flag is None:
        raise BadRequest(
            f"Expected {where} ({ident[:40]!r}) to give the actual value or a flag (right or "
            "wrong), got neither."
        )
    return {"id": ident.strip(), "actual": actual, "flag": flag, "note": note}


def _show(value: Any) -> str:
    return repr(value)[:60]


# ------------------------------------------------------------------------------ recording


def record(model: Any, items: list[dict[str, Any]], own: str | None = None) -> dict[str, Any]:
    """Store ``items`` (parse_items) for ``model``'s logged predictions; ``own``: the caller
    may only name predictions answered to this caller (a viewer's feedback). Every id must be
    in the log and every actual a value of the target; else nothing is stored."""
    snap = model.snapshot()
    found = logged(snap.folder, {item["id"] for item in items})
    unknown = list(dict.fromkeys(i["id"] for i in items if i["id"] not in found))
    if unknown:
        shown = ", ".join(repr(i[:40]) for i in unknown[:SHOWN])
        more = f" and {len(unknown) - SHOWN} more" if len(unknown) > SHOWN else ""
        raise BadRequest(
            f"Expected prediction ids from the log, got {len(unknown)} unknown: {shown}{more}. "
            "Nothing was stored. Use the ids of X-Prediction-Id (or GET ?_log), with "
            "log_predictions on; an id is known once it is written (within a second)."
        )
    shadows = list(dict.fromkeys(i["id"] for i in items if found[i["id"]].get("shadow_of")))
    if shadows:
        served = ", ".join(repr(found[i]["shadow_of"]) for i in shadows[:SHOWN])
        raise BadRequest(
            f"Expected ids of served predictions, got {len(shadows)} of a shadow version's "
            f"answers. Nothing was stored. Send the feedback on the served ids ({served}): a "
            "label given there counts for their shadow answers too."
        )
    if own is not None:
        theirs = sorted({i["id"] for i in items if found[i["id"]]["caller"] != own})
        if theirs:
            raise Forbidden(
                f"A viewer sends feedback on the predictions answered to it; {own} did not get "
                f"{', '.join(map(repr, theirs[:SHOWN]))}. Nothing was stored. A trainer may "
                "send feedback on any prediction."
            )
    actuals = Targets(snap, model.name)
    now = pd.Timestamp.now(tz="UTC")
    rows = [
        {
            "id": item["id"], "time": now, "caller": access.acting(),
            "actual": None if item["actual"] is None else dumps(actuals.typed(item)),
            "flag": item["flag"], "note": item["note"],
            "version": found[item["id"]]["version"], "predicted_at": found[item["id"]]["time"],
            "prediction": found[item["id"]]["prediction"], "input": found[item["id"]]["input"],
        }
        for item in items
    ]  # fmt: skip
    write(snap.folder, rows)
    labelled = sum(item["actual"] is not None for item in items)
    return {
        "name": model.name,
        "stored": len(rows),
        "labelled": labelled,
        "flagged": sum(item["flag"] is not None for item in items),
        "ids": list(dict.fromkeys(item["id"] for item in items)),
    }


class Targets:
    """Types an item's ``actual`` as the model's target: a number for a numeric target (an
    integer for an integer one), else text; for a classifier, one of its classes."""

    def __init__(self, snap: Any, name: str) -> None:
        fitted = snap.fitted or {}
        self.dtype = str(fitted.get("target_dtype") or "")
        self.classes: list[Any] | None = None
        if fitted.get("kind") == "classifier":
            classes = getattr(predicting.final_step(snap.pipeline()), "classes_", None)
            if classes is not None:
                self.classes = json.loads(dumps(list(classes)))
        self.name = name

    def typed(self, item: Mapping[str, Any]) -> Any:
        value, where = item["actual"], f"the actual of {item['id'][:40]!r}"
        if self.classes is not None:
            for known in self.classes:
                if value == known or str(value) == str(known):
                    return known
            shown = ", ".join(map(repr, self.classes[:20]))
            raise BadRequest(
                f"Expected {where} to be a class of model {self.name!r} ({shown}), got "
                f"{_show(value)}. Nothing was stored."
            )
        if self.dtype.startswith(("int", "uint", "float", "Int", "Float", "UInt")):
            number = None
            with contextlib.suppress(TypeError, ValueError):
                number = None if isinstance(value, bool) else float(value)
            if number is None or number != number or number in (float("inf"), float("-inf")):
                raise BadRequest(
                    f"Expected {where} to be a number (the target is), got {_show(value)}. "
                    "Nothing was stored."
                )
            return int(number) if "int" in self.dtype.lower() and number.is_integer() else number
        return value


def logged(folder: str | os.PathLike[str], ids: set[str]) -> dict[str, dict[str, Any]]:
    """The log's records of ``ids`` (this process's waiting records written first)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    predlog.flush(folder)
    wanted = pa.array(sorted(ids), type=pa.string())
    found: dict[str, dict[str, Any]] = {}
    for path in predlog_files.segments(folder):
        try:
            table = pq.read_table(path, schema=predlog_files.arrow_schema())
        except (OSError, pa.ArrowException):
            continue  # removed meanwhile (retention), or not ours
        for row in table.filter(pc.is_in(table["id"], value_set=wanted)).to_pylist():
            found[row["id"]] = row
    return found


# ------------------------------------------------------------------------------ the files


def feedback_dir(folder: str | os.PathLike[str]) -> Path:
    return Path(folder) / FEEDBACK_DIR


def segments(folder: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """The complete segments, ``(seq, path)``, oldest first."""
    try:
        names = os.listdir(feedback_dir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = [(SEGMENT.fullmatch(n), n) for n in names]
    return sorted((int(m.group(1)), feedback_dir(folder) / n) for m, n in found if m)


@contextlib.contextmanager
def numbering(folder: str | os.PathLike[str]) -> Iterator[None]:
    """The model's feedback lock: segments are numbered, written and removed under it."""
    import filelock

    target = feedback_dir(folder)
    target.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(target / ".lock"), timeout=LOCK_TIMEOUT)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise Busy("The feedback store is busy with another write. Try again.") from None
    try:
        yield
    finally:
        lock.release()


def write(folder: str | os.PathLike[str], rows: list[dict[str, Any]]) -> int:
    """One new segment of ``rows``; returns its number."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .store import atomic_write

    table = pa.Table.from_pylist(rows, schema=arrow_schema())
    with numbering(folder):
        found = segments(folder)
        seq = max(found[-1][0] if found else 0, _last_removed(folder)) + 1
        path = feedback_dir(folder) / f"fb-{seq:010d}.parquet"
        atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    return seq


def remove_all(folder: str | os.PathLike[str]) -> int:
    """Remove every segment; returns how many. The numbers go on from the last one removed
    (``.removed`` keeps it), so an append's mark (``feedback_appended``) stays below new ones."""
    from .store import atomic_write

    with numbering(folder):
        found = segments(folder)
        if found:
            last = str(max(found[-1][0], _last_removed(folder)))
            atomic_write(
                feedback_dir(folder) / REMOVED,
                lambda tmp: None if Path(tmp).write_text(last) else None,
            )
        for _, path in found:
            path.unlink(missing_ok=True)
    return len(found)


def _last_removed(folder: str | os.PathLike[str]) -> int:
    try:
        return int((feedback_dir(folder) / REMOVED).read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def read(folder: str | os.PathLike[str], after: int = 0) -> pd.DataFrame:
    """Every feedback record (of the segments numbered above ``after``), in the order given,
    with its segment's number as ``seq``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for seq, path in segments(folder):
        if seq > after:
            try:
                table = pq.read_table(path, schema=arrow_schema())
            except (OSError, pa.ArrowException):  # removed meanwhile (DELETE ?_feedback)
                continue
            tables.append(table.append_column("seq", pa.array([seq] * len(table), pa.int64())))
    if not tables:
        empty = arrow_schema().empty_table().to_pandas()
        return empty.assign(seq=pd.Series(dtype="int64"))
    return pa.concat_tables(tables).to_pandas()


def latest(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per prediction id: its latest actual, flag and note (each the last given)."""
    if frame.empty:
        return frame.reset_index(drop=True)
    fields = {c: "last" for c in frame.columns if c != "id"}
    fields["seq"] = "max"
    out = frame.groupby("id", sort=False).agg(fields).reset_index()
    return out.sort_values("seq", kind="stable").reset_index(drop=True)


def parsed(texts: pd.Series) -> list[Any]:
    """JSON text cells as values (None for a missing cell)."""
    return [json.loads(t) if isinstance(t, str) and t else None for t in texts]


def actuals(labels: pd.DataFrame) -> dict[str, Any]:
    """``{prediction id: its actual}`` of the ids ``labels`` (``latest()``) gives an actual
    (flags and notes alone are not labels)."""
    if labels.empty:
        return {}
    return {
        str(item): json.loads(actual)
        for item, actual in zip(labels["id"], labels["actual"], strict=True)
        if isinstance(actual, str) and actual != ""
    }
