"""mlwidget performance benchmarks (issue 7): every scenario against its floor, in one run.

    .venv/bin/python benchmarks/run.py                 # all five scenarios, ~5 minutes
    .venv/bin/python benchmarks/run.py --only 1,5      # some of them
    .venv/bin/python benchmarks/run.py --seconds 2     # shorter wrk runs
    .venv/bin/python benchmarks/run.py --json out.json # also save the numbers

The Jupyter server runs on core 0 (``taskset -c 0``); ``wrk`` and this driver run on core 1.
In-process floors are measured on core 0 too, while the server is idle, so both sides of each
ratio ran on the same core. Prints Markdown tables (medians, p99s, ratios, targets).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from data import FEATURES, GUIDE, PASSENGER, synthetic, titanic  # noqa: E402
from server import TOKEN, Server  # noqa: E402

TABLES: list[str] = []
RESULTS: dict[str, object] = {}


# ---------------------------------------------------------------------------------------------
# helpers


@contextlib.contextmanager
def pinned(cpu: int):
    """Run the enclosed in-process measurement on ``cpu`` (the server's core)."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def timings(func, n: int, warmup: int = 3) -> list[float]:
    """Seconds per call, ``n`` calls."""
    for _ in range(warmup):
        func()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        func()
        out.append(time.perf_counter() - start)
    return out


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99))


def table(title: str, header: list[str], rows: list[list[object]], notes: str = "") -> None:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    if notes:
        lines += ["", notes]
    text = "\n".join(lines) + "\n"
    TABLES.append(text)
    print(text, flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def machine() -> dict[str, str]:
    import pyarrow
    import sklearn

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "pyarrow": pyarrow.__version__,
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def one_row_frame(m) -> pd.DataFrame:
    """The guide's passenger as the pipeline receives it (typed like the training data)."""
    from mlwidget import schema

    return schema.cast(pd.DataFrame([PASSENGER]), m.features)


# ---------------------------------------------------------------------------------------------
# models


def make_models(store: Path) -> dict[str, object]:
    from mlwidget import MLModel

    data = titanic()
    models = {
        "LogisticRegression": MLModel(
            "lr", data=data, store=store, **{"class": "LogisticRegression"}, **GUIDE
        ),
        "RandomForest (100 trees)": MLModel(
            "rf",
            data=data,
            store=store,
            **{"class": "RandomForestClassifier"},
            n_estimators=100,
            random_state=0,
            **GUIDE,
        ),
    }
    # trained over REST by scenarios 3 and 4 (no data yet)
    for name, cls, params in [
        ("retrain-lr", "LogisticRegression", {}),
        ("retrain-rf", "RandomForestClassifier", {"n_estimators": 100, "random_state": 0}),
        ("retrain-lr-nocv", "LogisticRegression", {"cv_folds": 0}),
        ("big", "RandomForestClassifier", {"n_estimators": 100, "random_state": 0}),
    ]:
        MLModel(name, store=store, **{"class": cls}, **params, **GUIDE, dropna=False)
    return models


# ---------------------------------------------------------------------------------------------
# scenario 5: MLModel.predict vs Pipeline.predict, in process


def scenario5(models: dict, n: int) -> None:
    rows = []
    query = {k: [str(v)] for k, v in PASSENGER.items()}
    out = {}
    with pinned(0):
        for label, m in models.items():
            pipeline = m.pipeline
            frame = one_row_frame(m)
            assert m.predict(PASSENGER) == pipeline.predict(frame).tolist()
            base = timings(lambda p=pipeline, f=frame: p.predict(f), max(50, n // 10))
            base_p = timings(lambda p=pipeline, f=frame: p.predict_proba(f), max(50, n // 10))
            cases = [
                ("MLModel.predict(dict)", lambda m=m: m.predict(PASSENGER), base),
                ("MLModel.predict_query(query)", lambda m=m: m.predict_query(query), base),
                ("MLModel.predict_proba(dict)", lambda m=m: m.predict_proba(PASSENGER), base_p),
            ]
            rows.append(
                [label, "Pipeline.predict(1-row DataFrame)", f"{p50(base) * 1e3:.3f}",
                 f"{p99(base) * 1e3:.3f}", "1.0x", "", ""]
            )  # fmt: skip
            rows.append(
                [label, "Pipeline.predict_proba(1-row DataFrame)", f"{p50(base_p) * 1e3:.3f}",
                 f"{p99(base_p) * 1e3:.3f}", "1.0x", "", ""]
            )  # fmt: skip
            for name, func, floor in cases:
                t = timings(func, n)
                ratio = p50(floor) / p50(t)
                target = "≥10x" if name == "MLModel.predict(dict)" else ""
                rows.append(
                    [label, name, f"{p50(t) * 1e3:.3f}", f"{p99(t) * 1e3:.3f}",
                     f"{ratio:.1f}x", target, verdict(ratio >= 10) if target else ""]
                )  # fmt: skip
                out[f"{label} {name}"] = {"p50_ms": p50(t) * 1e3, "ratio": ratio}
            out[f"{label} predict_path"] = m.info()["predict_path"]
    RESULTS["scenario5"] = out
    paths = ", ".join(f"{k}: {m.info()['predict_path']}" for k, m in models.items())
    table(
        "5. One row in Python: MLModel vs the raw pipeline (core 0)",
        ["model", "call", "p50 ms", "p99 ms", "speed-up vs pipeline", "target", "result"],
        rows,
        f"predict_path: {paths}. Speed-up = pipeline p50 / call p50.",
    )


# ---------------------------------------------------------------------------------------------
# scenario 1: single-row GET through the Jupyter server


def scenario1(server: Server, models: dict, seconds: float, rounds: int) -> None:
    query = urlencode(PASSENGER)
    names = {"LogisticRegression": "lr", "RandomForest (100 trees)": "rf"}
    endpoints = [("trivial authenticated handler (floor)", "bench/ping", None)]
    for label, name in names.items():
        endpoints += [
            (f"{label}: GET mlhandler (handler as shipped)", f"mlhandler/{name}?{query}", label),
            (
                f"{label}: predict_query(fast_only) on the event loop",
                f"bench/inline/{name}?{query}",
                label,
            ),
            (f"{label}: predict_query on a worker thread", f"bench/pool/{name}?{query}", label),
        ]
    for _, path, _label in endpoints:  # every path answers the guide's [0]
        assert json.loads(server.get(path)) == [0], path
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    for _ in range(rounds):  # sweeps interleave the endpoints, so background load hits all
        for title, path, _label in endpoints:
            loadgen.run(server.url + path, TOKEN, 1, 1)  # warm up
            for c in (1, 8):
                runs.setdefault((title, c), []).append(
                    loadgen.run(server.url + path, TOKEN, c, seconds)
                )
    # per endpoint, the sweep with the median rate
    results = {k: sorted(v, key=lambda r: r["rps"])[len(v) // 2] for k, v in runs.items()}
    floor = {c: results[(endpoints[0][0], c)]["rps"] for c in (1, 8)}
    with pinned(0):
        inproc = {}
        for label, m in models.items():
            pipeline, frame = m.pipeline, one_row_frame(m)
            inproc[label] = timings(lambda p=pipeline, f=frame: p.predict(f), 200)
    rows = []
    for title, _path, label in endpoints:
        for c in (1, 8):
            r = results[(title, c)]
            target, result = "", ""
            if label and c == 1:
                ok = r["rps"] >= 1000 and r["p50"] < 1.5 and r["rps"] >= floor[1] / 3
                target = "≥1000 req/s, p50 <1.5 ms, ≥⅓ floor"
                result = verdict(ok)
            rows.append(
                [title, c, f"{r['rps']:.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}",
                 f"{r['rps'] / floor[c]:.2f}", int(r["errors"]), target, result]
            )  # fmt: skip
    for label, t in inproc.items():
        rows.append(
            [f"{label}: in-process Pipeline.predict, 1 row (floor)", "-", f"{1 / p50(t):.0f}",
             f"{p50(t) * 1e3:.2f}", f"{p99(t) * 1e3:.2f}", "", "", "", ""]
        )  # fmt: skip
    RESULTS["scenario1"] = {f"{k[0]} c={k[1]}": v for k, v in results.items()} | {
        f"{k} inprocess p50 ms": p50(v) * 1e3 for k, v in inproc.items()
    }
    table(
        f"1. Single-row GET predict, wrk {seconds:g} s × {rounds} sweeps per row (the median "
        "sweep), server on core 0, wrk on core 1",
        ["endpoint", "conns", "req/s", "p50 ms", "p99 ms", "× trivial handler", "errors",
         "target", "result"],
        rows,
        "The handler as shipped answers a GET from the compiled model on the event loop "
        "(MLModel.predict_query(args, fast_only=True)), else with predict_query on a worker "
        "thread. benchmarks/bench_ext.py serves the same code through a subclass of the "
        "shipped ModelHandler (the event-loop rows, a check of the subclass's overhead) and "
        "the alternative of always using a worker thread. Targets apply at concurrency 1.",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# scenario 2: bulk predictions


def _post(server: Server, path: str, body: bytes, ctype: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    out = server.request(path, body, ctype)
    return time.perf_counter() - start, out


def _settle(server: Server, name: str) -> None:
    """Wait until none of the model's jobs runs (a retrain's crossval job included)."""
    while any(
        job["status"] in ("queued", "running")
        for job in json.loads(server.get(f"mlhandler/{name}?_jobs"))
    ):
        time.sleep(0.05)


def scenario2(server: Server, models: dict, runs: int) -> None:
    from mlwidget.tables import read_table

    m = models["LogisticRegression"]
    pipeline = m.pipeline
    rows = []
    out = {}
    for n in (10_000, 100_000):
        df = synthetic(n, seed=1).drop(columns=["Survived"])
        bodies = {
            "json": (df.to_json(orient="records").encode(), "application/json"),
            "csv": (df.to_csv(index=False).encode(), "text/csv"),
        }
        for fmt, (body, ctype) in bodies.items():
            k = runs if n <= 10_000 else max(2, runs // 2)

            def floor_once(body=body, fmt=fmt):
                t0 = time.perf_counter()
                if fmt == "csv":
                    frame = pd.read_csv(io.BytesIO(body))
                else:
                    frame = pd.DataFrame.from_records(json.loads(body))
                t1 = time.perf_counter()
                pred = pipeline.predict(frame[FEATURES])
                t2 = time.perf_counter()
                text = json.dumps(pred.tolist())
                t3 = time.perf_counter()
                return (t1 - t0, t2 - t1, t3 - t2), text

            with pinned(0):
                parts = [floor_once()[0] for _ in range(k)]
                expected = floor_once()[1]
                parsed = read_table(body, fmt=fmt)
            table_mb = parsed.memory_usage(deep=True).sum() / 1e6
            floor = p50([sum(p) for p in parts])
            e2e, peaks = [], []
            for _ in range(k):
                before = server.rss()
                can_peak = server.reset_peak()
                t, answer = _post(server, "mlhandler/lr?_action=predict", body, ctype)
                e2e.append(t)
                if can_peak:
                    peaks.append(server.peak() - before)
            assert json.loads(answer) == json.loads(expected), "server and floor disagree"
            peak_mb = p50(peaks) / 1e6 if peaks else float("nan")
            ratio = p50(e2e) / floor
            mem_ratio = peak_mb / table_mb
            big = n == 100_000
            rows.append(
                [f"{n:,}", fmt, f"{len(body) / 1e6:.1f}", f"{p50(e2e) * 1e3:.0f}",
                 f"{floor * 1e3:.0f}",
                 " / ".join(f"{p50([p[i] for p in parts]) * 1e3:.0f}" for i in range(3)),
                 f"{ratio:.2f}", f"{peak_mb:.0f}", f"{table_mb:.0f}", f"{mem_ratio:.1f}",
                 (verdict(ratio <= 1) + " / " + verdict(mem_ratio < 4)) if big else ""]
            )  # fmt: skip
            out[f"{n} {fmt}"] = {
                "e2e_ms": p50(e2e) * 1e3,
                "floor_ms": floor * 1e3,
                "ratio": ratio,
                "peak_mb": peak_mb,
                "table_mb": table_mb,
            }
    RESULTS["scenario2"] = out
    table(
        "2. Bulk predict (LogisticRegression), POST ?_action=predict vs in-process floor",
        ["rows", "format", "body MB", "end-to-end ms", "floor ms", "floor parse / predict / "
         "serialize ms", "× floor", "server peak MB above idle", "parsed table MB",
         "peak ÷ table", "target (100k: ≤1× floor / <4× table)"],
        rows,
        "End-to-end: client sends the body, server parses, casts, predicts and answers JSON "
        "(median of runs). Floor: in-process pandas.read_csv or json.loads + "
        "DataFrame.from_records, Pipeline.predict, json.dumps (core 0). Server peak: VmHWM "
        "(reset through /proc/PID/clear_refs before each request) minus VmRSS before it, median "
        "of the runs; the table is the parsed request (pandas memory_usage(deep=True)).",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# scenario 3: retrain over REST vs in-process fit


def scenario3(server: Server, store: Path) -> None:
    from mlwidget import MLModel, schema
    from mlwidget import estimators as est

    table_100k = synthetic(100_000, seed=2)
    body = table_100k.to_csv(index=False).encode()
    rows = []
    out = {}
    for name, cls, params, runs in [
        ("retrain-lr", "LogisticRegression", {}, 3),
        ("retrain-rf", "RandomForestClassifier", {"n_estimators": 100, "random_state": 0}, 3),
        ("retrain-lr-nocv", "LogisticRegression", {"cv_folds": 0}, 3),
    ]:
        rest = []
        for _ in range(runs):  # each on a settled model: its answer, not the last one's crossval
            t, answer = _post(server, f"mlhandler/{name}?_action=retrain", body, "text/csv")
            rest.append(t)
            _settle(server, name)
        trained_rows = json.loads(answer)["rows"]
        options = {**GUIDE, "dropna": False, "deduplicate": True}
        local = MLModel(
            f"local-{name}", store=store, **{"class": cls}, **params, **GUIDE, dropna=False
        )
        fits, locals_ = [], []
        with pinned(0):
            X, y, features, _ = schema.training_frame(table_100k, options, "classifier")
            klass = est.resolve_class(cls)
            for _ in range(runs):
                pipeline = est.build_pipeline(
                    est.make_estimator(klass, {k: v for k, v in params.items() if k != "cv_folds"}),
                    [f["name"] for f in features if f["kind"] == "category"],
                    [f["name"] for f in features if f["kind"] == "number"],
                )
                start = time.perf_counter()
                pipeline.fit(X, y)
                fits.append(time.perf_counter() - start)
                start = time.perf_counter()
                local.retrain(table_100k)
                locals_.append(time.perf_counter() - start)
        t_rest, t_fit, t_local = p50(rest), p50(fits), p50(locals_)
        overhead = (t_rest - t_fit) / t_fit
        rows.append(
            [cls + (" (100 trees)" if "n_estimators" in params else "")
             + (", cv_folds=0" if "cv_folds" in params else ", with its 5-fold cv"
                if json.loads(answer).get("cv_score") else ""), f"{trained_rows:,}", runs,
             f"{t_rest:.2f}", f"{t_local:.2f}", f"{t_fit:.2f}", f"{overhead * 100:.0f}%", "<20%",
             verdict(overhead < 0.2)]
        )  # fmt: skip
        out[name] = {"rest_s": rest, "mlmodel_retrain_s": locals_, "fit_s": fits}
    RESULTS["scenario3"] = out
    table(
        "3. Retrain on a 100,000-row CSV: REST vs in-process fit",
        ["estimator", "training rows", "runs", "REST retrain s", "MLModel.retrain s "
         "(in-process)", "Pipeline.fit s (floor)", "REST overhead vs fit", "target", "result"],
        rows,
        "REST: POST ?_action=retrain with the CSV body (parse, training frame, fit, training "
        "score, write data + model, commit) until it answers: the 5-fold cross-validation runs "
        "after, as a crossval job (each run starts on a settled model). MLModel.retrain: the "
        "same core work in this process, no HTTP, and it waits for the crossval job. Floor: "
        "Pipeline.fit of the same pipeline on the prepared frame. Medians of the runs; "
        "overhead = (REST - fit) / fit.",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# scenario 4: responsiveness while a large model retrains


def _pair(server: Server, seconds: float) -> dict[str, dict[str, float]]:
    query = urlencode(PASSENGER)
    targets = {
        "GET /api/status": "api/status",
        "GET predict on another model (lr)": f"mlhandler/lr?{query}",
    }
    results: dict[str, dict[str, float]] = {}

    def go(label: str, path: str) -> None:
        results[label] = loadgen.run(server.url + path, TOKEN, 1, seconds)

    threads = [threading.Thread(target=go, args=item) for item in targets.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def scenario4(server: Server, seconds: float) -> None:
    body = synthetic(100_000, seed=3).to_csv(index=False).encode()
    idle = _pair(server, seconds)
    done: dict[str, float] = {}

    def train() -> None:
        t, _ = _post(server, "mlhandler/big?_action=retrain", body, "text/csv")
        done["end"] = time.perf_counter()
        done["took"] = t

    start = time.perf_counter()
    trainer = threading.Thread(target=train)
    trainer.start()
    time.sleep(1.0)  # the body is parsed; the forest is being fitted
    busy = _pair(server, seconds)
    measured_until = time.perf_counter()
    trainer.join()
    overlapped = done["end"] > measured_until
    rows = []
    for label in idle:
        a, b = idle[label], busy[label]
        rows.append(
            [label, f"{a['p50']:.2f}", f"{a['p99']:.2f}", f"{b['p50']:.2f}", f"{b['p99']:.2f}",
             f"{b['rps']:.0f}", int(b["errors"]), "<50 ms", verdict(b["p99"] < 50)]
        )  # fmt: skip
    RESULTS["scenario4"] = {"idle": idle, "training": busy, "train_s": done["took"]}
    table(
        "4. Responsiveness while RandomForest (100 trees) retrains on 100,000 rows",
        ["request (wrk, 1 connection each, all at once)", "idle p50 ms", "idle p99 ms",
         "training p50 ms", "training p99 ms", "training req/s", "errors", "target p99",
         "result"],
        rows,
        f"The retrain took {done['took']:.1f} s over REST (started "
        f"{1.0:.0f} s before the {seconds:g} s measurement; "
        f"{'still training when it ended' if overlapped else 'NOT overlapping the whole window'}"
        f", {measured_until - start:.1f} s after the POST).",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="1,2,3,4,5", help="scenarios to run, e.g. 1,5")
    parser.add_argument("--seconds", type=float, default=3, help="wrk duration per row")
    parser.add_argument("--rounds", type=int, default=3, help="sweeps of scenario 1")
    parser.add_argument("--runs", type=int, default=5, help="bulk runs per size (10k)")
    parser.add_argument("--calls", type=int, default=2000, help="in-process calls (scenario 5)")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    only = {int(x) for x in args.only.split(",") if x.strip()}
    if {1, 4} & only and not loadgen.available():
        sys.exit("wrk is not installed (Debian: apt-get install wrk); run --only 2,3,5")
    started = time.perf_counter()
    info = machine()
    print("## Machine\n")
    for k, v in info.items():
        print(f"- {k}: {v}")
    print(flush=True)
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})  # the driver (and wrk) stay off the server's core
    # In-process floors run on one core, like the server: one BLAS / OpenMP thread, as the
    # server (started with taskset -c 0) gets. Two threads on one core would slow the floors.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    with tempfile.TemporaryDirectory(prefix="mlwidget-bench-") as tmp:
        store = Path(tmp) / "store"
        store.mkdir()
        models = make_models(store)
        if 5 in only:
            scenario5(models, args.calls)
        if only - {5}:
            with Server(store, cpu=0) as server:
                if 1 in only:
                    scenario1(server, models, args.seconds, args.rounds)
                if 2 in only:
                    scenario2(server, models, args.runs)
                if 3 in only:
                    scenario3(server, store)
                if 4 in only:
                    scenario4(server, args.seconds)
    info["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["total time"] = f"{time.perf_counter() - started:.0f} s"
    print(f"Total time: {info['total time']}; load average at end: {info['load average at end']}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": info, "results": RESULTS}, indent=2, default=str)
        )


if __name__ == "__main__":
    main()
