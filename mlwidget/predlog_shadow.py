"""Shadow traffic (the ``shadow`` option, docs/monitoring.md): every logged answer's rows are
also predicted by a kept candidate version, off the request path, and logged beside the served
answer.

``predlog.answered`` notes the candidate in the buffered entry; the flusher thread
(predlog_write.py) calls :func:`records` before it writes a segment. The candidate
(``ModelRepo.snapshot(version)``: its schema and pipeline, kept loaded) predicts the entry's
rows, and each of its answers is a record of its own: id ``<served id>:v<N>``, version N,
``shadow_of`` the served answer's id, the same time, face, caller and input, and the
candidate's own latency. The served answer, its ids and its latency are never touched. A
candidate that cannot answer (dropped by ``keep_versions``, trained on other features) is
logged as a warning, once per model and version, and its rows are skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from .jobs.pause import Pause

log = logging.getLogger("mlwidget")

_warned: set[tuple[str, int]] = set()  # (model, version) whose failure was logged
_warned_lock = threading.Lock()


def shadow_id(served: str, version: int) -> str:
    """The id of version ``version``'s shadow answer to the served row ``served``."""
    return f"{served}:v{version}"


def records(entries: Sequence[Any], inputs: Sequence[str], ids: Sequence[str]) -> dict[str, list]:
    """The shadow records of ``entries`` (predlog.Entry, in order; ``inputs`` and ``ids``: the
    served records' typed input texts and ids, one per row of the entries), as columns of
    predlog_files.COLUMNS; empty lists when no entry is shadowed."""
    from . import predlog_files

    out: dict[str, list[Any]] = {c: [] for c in predlog_files.COLUMNS}
    row = 0
    for entry in entries:
        first, row = row, row + entry.size
        if entry.shadow is None:
            continue
        repo, version = entry.shadow
        answer = predict(repo, version, entry)
        if answer is None:
            continue
        predictions, proba, latency_ms = answer
        served = ids[first:row]
        out["id"] += [shadow_id(i, version) for i in served]
        out["shadow_of"] += list(served)
        out["time"] += [int(entry.time * 1000)] * entry.size
        out["version"] += [version] * entry.size
        out["face"] += [entry.face] * entry.size
        out["caller"] += [entry.caller] * entry.size
        out["input"] += list(inputs[first:row])
        out["prediction"] += predictions
        out["proba"] += proba
        out["latency_ms"] += [round(latency_ms, 3)] * entry.size
    return out


def predict(repo: Any, version: int, entry: Any) -> tuple[list[str], list[Any], float] | None:
    """The candidate's answers to ``entry``'s rows (predictions and probabilities as JSON
    text) and its latency in ms; None (logged once) when it cannot answer them."""
    import pandas as pd

    from . import predicting, predlog_rows
    from .jsonable import dumps

    pause = Pause.active  # a test holds the shadow work here ("shadow"), never the answer
    if pause is not None:
        pause.hold(f"shadow of {repo.name!r}", "shadow", None)
    try:
        snap = repo.snapshot(version)
        names = [f["name"] for f in snap.schema or []]
        rows = predlog_rows.raw_rows(entry.rows, entry.kind, names, entry.size)
        frame = pd.DataFrame.from_records(rows[: entry.size])
        started = time.perf_counter()
        if entry.proba is not None and (snap.fitted or {}).get("kind") == "classifier":
            proba = predicting.predict_proba(snap, repo.name, frame, None)
            predictions = predicting.best_classes(proba)
        else:
            proba, predictions = None, predicting.predict(snap, repo.name, frame, None)
        latency_ms = (time.perf_counter() - started) * 1000
    except Exception as exc:  # the served answer stands; the candidate's rows are skipped
        key = (str(repo.name), int(version))
        with _warned_lock:
            first = key not in _warned
            _warned.add(key)
        if first:
            log.warning(
                "mlwidget: shadow version %s of %r could not answer logged rows, which are "
                "not shadowed: %s",
                version, repo.name, exc,
            )  # fmt: skip
        return None
    if len(predictions) != entry.size:
        return None
    texts = [dumps(p) for p in predictions]
    probas = [None] * entry.size if proba is None else [dumps(p) for p in proba]
    return texts, probas, latency_ms
