"""Training on the cluster (issue 27): XGBoost data-parallel over a source, and a forest whose
trees are spread over the workers, against the same fits in one process.

    .venv/bin/python benchmarks/cluster_training.py                 # 2M rows: a few minutes
    .venv/bin/python benchmarks/cluster_training.py --rows 500000

A Dask cluster from its CLI (``dask scheduler`` and two ``dask worker --nthreads 1``), a
Parquet source of ``--rows`` rows (10 numeric features, a binary target with 5% flipped
labels). (A) XGBoost (200 trees, depth 6, ``hist``): ``MLModel.retrain(source=...)`` on Dask
(workers read the partitions and train data-parallel) against ``XGBClassifier.fit`` on the
same rows in this process, one thread and two threads. (B) a 100-tree random forest on a
quarter of those rows: the retrain on Dask (trees spread over the workers) against the same
retrain as one task on one worker (``n_jobs=1``). Medians of ``--runs``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from dask_cli import WAIT, CLICluster  # noqa: E402

FEATURES = [f"x{i}" for i in range(10)]


def rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    signal = frame["x0"] + 0.5 * frame["x1"] - frame["x2"] * frame["x3"]
    flip = rng.random(n) < 0.05
    frame["y"] = ((signal > 0) ^ flip).astype(int)
    return frame


def write_source(folder: Path, n: int, part: int = 250_000) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for i, start in enumerate(range(0, n, part)):
        frame = rows(min(part, n - start), seed=i)
        frame.to_parquet(folder / f"part-{i:03d}.parquet", row_group_size=50_000)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def timed(func, runs: int) -> float:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        out.append(time.perf_counter() - start)
    return statistics.median(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args()
    from xgboost import XGBClassifier

    from mlwidget import MLModel, datasets

    tmp = Path(tempfile.mkdtemp(prefix="mlwidget-bench-training-"))
    table = write_source(tmp / "big", opts.rows)
    quarter = opts.rows // 4
    write_source(tmp / "small", quarter)
    datasets.configure({"big": str(tmp / "big"), "small": str(tmp / "small")})
    params = {"n_estimators": 200, "max_depth": 6, "tree_method": "hist"}
    cli = CLICluster(tmp)
    cli.start_scheduler()
    cli.start_worker()
    cli.start_worker()
    try:
        from distributed import Client

        with Client(cli.address, set_as_default=False, timeout=WAIT) as client:
            client.wait_for_workers(2, timeout=WAIT)
        dask = {"executor": "dask", "dask_scheduler": cli.address, "store": tmp / "store"}
        xgb = MLModel("xgb", class_="XGBClassifier", target_col="y", params=params, **dask)
        xgb.retrain(source="big")  # warm: the workers import xgboost
        on_dask = timed(lambda: xgb.retrain(source="big"), opts.runs)
        X, y = table[FEATURES], table["y"]
        local = {
            threads: timed(lambda t=threads: XGBClassifier(**params, n_jobs=t).fit(X, y), opts.runs)
            for threads in (1, 2)
        }
        forest = {"class_": "RandomForestClassifier", "target_col": "y"}
        spread = MLModel("spread", params={"n_estimators": 100}, **forest, **dask)
        one = MLModel("one", params={"n_estimators": 100, "n_jobs": 1}, **forest, **dask)
        spread_s = timed(lambda: spread.retrain(source="small"), opts.runs)
        one_s = timed(lambda: one.retrain(source="small"), opts.runs)
    finally:
        cli.close()
    print(f"\n### XGBoost, {opts.rows:,} rows (200 trees, depth 6, hist)\n")
    print("| where | seconds |\n|---|---|")
    print(f"| MLModel.retrain(source=...) on Dask, 2 workers x 1 thread | {on_dask:.1f} |")
    print(f"| XGBClassifier.fit in one process, 1 thread | {local[1]:.1f} |")
    print(f"| XGBClassifier.fit in one process, 2 threads | {local[2]:.1f} |")
    print(
        f"\nDask / one thread: {on_dask / local[1]:.2f}x; Dask / two threads: "
        f"{on_dask / local[2]:.2f}x (the retrain's time includes reading the source, the "
        "preprocessing, the training score and the commit)."
    )
    print(f"\n### Random forest, {quarter:,} rows, 100 trees, on Dask\n")
    print("| how | seconds |\n|---|---|")
    print(f"| trees spread over both workers | {spread_s:.1f} |")
    print(f"| one task on one worker (n_jobs=1) | {one_s:.1f} |")
    print(f"\nOne task / spread: {one_s / spread_s:.2f}x.")


if __name__ == "__main__":
    main()
