"""The prediction log at a million records (issue 29): bytes on disk per record, the time of
``?_monitor`` over all of them, and a replay of a candidate version against a plain bulk
prediction of the same rows.

    .venv/bin/python benchmarks/monitoring_scale.py                 # 1,000,000 records
    .venv/bin/python benchmarks/monitoring_scale.py --records 200000 --answer-rows 100

The guide's Titanic model (version 1, LogisticRegression; version 2, a depth-4 decision tree,
the candidate) in a fresh store, on the process executor (worker processes, as the server
runs jobs). The records are logged through the real path (``predlog.answered``, then the
writer's typing, JSON and Parquet segments), ``--answer-rows`` rows per answer, from synthetic
passengers (benchmarks/data.py). Half the answers get labelled feedback for 1% of their rows.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from data import FEATURES, GUIDE, synthetic, titanic  # noqa: E402

from mlwidget import MLModel, monitoring, predlog, predlog_files  # noqa: E402


def log_records(model: MLModel, frame, answer_rows: int) -> list[str]:
    """Log ``frame``'s rows, ``answer_rows`` per answer, as the POST face does; their ids."""
    ids: list[str] = []
    for start in range(0, len(frame), answer_rows):
        rows = frame.iloc[start : start + answer_rows]
        began = time.perf_counter()
        with predlog.facing("post"):
            predictions = model.predict(rows)
        logged = predlog.answered(model, "post", rows, predictions, began)
        assert logged is not None
        ids += logged.ids()
    predlog.flush()
    return ids


def timed(call, runs: int = 3) -> tuple[float, object]:
    seconds, out = [], None
    for _ in range(runs):
        began = time.perf_counter()
        out = call()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--answer-rows", type=int, default=1000, help="rows per logged answer")
    parser.add_argument("--runs", type=int, default=3, help="runs of each timed step (median)")
    args = parser.parse_args()

    store = Path(tempfile.mkdtemp(prefix="mlwidget-monitor-bench-"))
    model = MLModel("titanic", data=titanic(), store=store, executor="process", **GUIDE)
    model.configure({"class": "DecisionTreeClassifier", "max_depth": 4})
    model.retrain()
    model.rollback(1)
    model.configure(log_predictions=True, log_max_mb=10_000)
    frame = synthetic(args.records, seed=7)
    began = time.perf_counter()
    ids = log_records(model, frame[FEATURES], args.answer_rows)
    log_seconds = time.perf_counter() - began
    folder = store / "titanic"
    segments = predlog_files.segments(folder)
    size = sum(p.stat().st_size for p in segments)
    labelled = ids[::100][: len(ids) // 200]
    truth = dict(zip(ids, frame["Survived"].tolist(), strict=True))
    model.feedback([{"id": i, "actual": int(truth[i])} for i in labelled])

    monitor_s, report = timed(lambda: monitoring.report(model, monitoring.parse({})), args.runs)
    replay_s, replayed = timed(lambda: model.replay(2, limit=args.records), args.runs)
    bulk_s, _ = timed(lambda: model.start_job("predict", frame[FEATURES]).result(), args.runs)

    assert report["records"] == args.records, report["records"]
    assert replayed["rows"] == args.records, replayed["rows"]
    print(f"{args.records:,} records, {args.answer_rows:,} rows per answer, {len(segments)} "
          f"segments; logging them took {log_seconds:.1f} s (predictions included)\n")  # fmt: skip
    print("| measure | value |")
    print("|---|---|")
    print(f"| bytes on disk per record | {size / args.records:.1f} |")
    print(f"| `?_monitor` over all records (median of {args.runs}) | {monitor_s:.2f} s |")
    print(f"| replay of version 2 on all records (two versions predict) | {replay_s:.2f} s |")
    print(f"| plain bulk prediction job of the same rows (one version) | {bulk_s:.2f} s |")
    print(f"| replay / bulk | {replay_s / bulk_s:.2f}x |")
    print(
        f"\nreplay: agreement {replayed['agreement']}, {replayed['differ']:,} rows differ, "
        f"{replayed['labelled']:,} labelled (accuracy v1 {replayed['serving']['value']}, "
        f"v2 {replayed['candidate']['value']})"
    )


if __name__ == "__main__":
    main()
