"""Bulk predictions of a large CSV body (issue 12): time and the server's peak memory.

    .venv/bin/python benchmarks/bulk.py                # 1M rows (73 MB of CSV), 3 runs
    .venv/bin/python benchmarks/bulk.py --rows 200000  # a smaller body

A Titanic-like CSV (all twelve columns) goes to ``POST ?_action=predict`` of a
LogisticRegression model, as one request. Measured per run: the end-to-end time, and the peak
resident memory of the server's process tree above what it held before the request (VmHWM,
reset through /proc/PID/clear_refs; the worker processes are counted too). The floor is the same
work in this process: ``pandas.read_csv`` of the whole body, ``Pipeline.predict``, ``json.dumps``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pandas as pd  # noqa: E402
from data import FEATURES, GUIDE, synthetic, titanic  # noqa: E402
from server import Server  # noqa: E402


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        todo.extend(int(k) for k in kids)
    return out


def status(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from mlwidget import MLModel

    frame = synthetic(args.rows, seed=3)  # every Titanic column, as a user's file has
    body = frame.to_csv(index=False).encode()
    del frame
    mb = len(body) / 1e6
    with tempfile.TemporaryDirectory(prefix="mlwidget-bulk-") as tmp:
        store = Path(tmp) / "store"
        store.mkdir()
        m = MLModel("lr", data=titanic(), store=store, **{"class": "LogisticRegression"}, **GUIDE)
        pipeline = m.pipeline

        floors = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            parsed = pd.read_csv(io.BytesIO(body))
            expected = json.dumps(pipeline.predict(parsed[FEATURES]).tolist())
            floors.append(time.perf_counter() - t0)
            del parsed

        times, peaks = [], []
        with Server(store, cpu=0) as server:
            server.request("mlhandler/lr?_action=predict", body[: body.index(b"\n", 1000)])
            for _ in range(args.runs):
                pids = tree(server.proc.pid)
                before = sum(status(p, "VmRSS") for p in pids)
                for p in pids:
                    Path(f"/proc/{p}/clear_refs").write_text("5")
                t0 = time.perf_counter()
                answer = server.request("mlhandler/lr?_action=predict", body, "text/csv")
                times.append(time.perf_counter() - t0)
                peaks.append(sum(status(p, "VmHWM") for p in tree(server.proc.pid)) - before)
                assert json.loads(answer) == json.loads(expected), "server and floor disagree"
                del answer
    t, floor, peak = statistics.median(times), statistics.median(floors), statistics.median(peaks)
    print(
        "| rows | body MB | end-to-end s | floor s | x floor | peak MB above idle | peak / body |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.rows:,} | {mb:.1f} | {t:.2f} | {floor:.2f} | {t / floor:.2f} | "
        f"{peak / 1e6:.0f} | {peak / 1e6 / mb:.2f} |"
    )
    print(f"\n(median of {args.runs} runs; machine: {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
