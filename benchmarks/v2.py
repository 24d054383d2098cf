"""Open Inference Protocol (issue 14): V2 infer against mlwidget's own REST requests, on a real
server (pinned to core 0; this client on core 1), the guide's Titanic model; and, with
``--mlserver VENV``, the same V2 bodies against MLServer's scikit-learn runtime serving the same
fitted pipeline, in the same run (see mlserver_side.py for that scratch venv).

    .venv/bin/python benchmarks/v2.py                                # about a minute
    .venv/bin/python benchmarks/v2.py --runs 50 --mlserver /tmp/mlserver-venv

Rows: one row (GET ?Sex=male&... and V2 infer of one row), and 10,000 rows (POST of JSON records
and V2 infer with one columnar input per feature). Two V2 bodies: "as the metadata says"
(categories such as Pclass as BYTES text, what a client reading ``GET v2/models/titanic``
sends) and "numbers as FP64" (numbers as numbers, texts as BYTES, missing values null), which
MLServer reads too: its pandas codec does not convert text to numbers, so that is the body both
servers are timed on. Three rounds of a block of requests per case, so that every case sees the
load of the whole run; medians and p90, client time included (one ``requests.Session`` per
server).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from data import GUIDE, PASSENGER, synthetic, titanic  # noqa: E402
from server import TOKEN, Server  # noqa: E402

FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
INFER = "mlhandler/v2/models/titanic/infer"


def v2_body(rows, schema: dict[str, str]) -> bytes:
    """One columnar input per feature, typed as the model's metadata says."""
    inputs = []
    for name in FEATURES:
        column = rows[name]
        if schema[name] == "BYTES":
            data = ["" if v != v else str(v) for v in column.tolist()]
        else:
            data = [None if v != v else float(v) for v in column.tolist()]
        inputs.append({"name": name, "datatype": schema[name], "shape": [len(rows)], "data": data})
    return json.dumps({"inputs": inputs}).encode()


def shared_body(rows) -> bytes:
    """One columnar input per feature: numbers as FP64, texts as BYTES, missing values null."""
    inputs = []
    for name in FEATURES:
        column = rows[name].tolist()
        if rows[name].dtype.kind in "iuf":
            datatype, data = "FP64", [None if v != v else float(v) for v in column]
        else:
            datatype, data = "BYTES", [None if v != v else str(v) for v in column]
        inputs.append({"name": name, "datatype": datatype, "shape": [len(rows)], "data": data})
    return json.dumps({"inputs": inputs}).encode()


def in_blocks(cases: list[dict], runs: int, rounds: int = 3, warmup: int = 2) -> None:
    """Time each case ``runs`` times (``case["ms"]``), in ``rounds`` rounds of a block of
    requests per case (after ``warmup`` untimed ones), so that every case sees the machine's
    load of the whole run. Not one request per case in turn: on one core, a server's work after
    it has answered (MLServer's access log and metrics) would be charged to the next server."""
    for case in cases:
        case["ms"] = []
    for r in range(rounds):
        for case in cases:
            count = runs // rounds + (1 if r < runs % rounds else 0)
            for i in range(count + warmup):
                start = time.perf_counter()
                reply = case["session"].request(
                    case["method"], case["url"], timeout=120, **case["kw"]
                )
                took = time.perf_counter() - start
                assert reply.status_code == 200, reply.text[:300]
                if i >= warmup:
                    case["ms"].append(took * 1000)


def predictions(session: requests.Session, url: str, body: bytes) -> list:
    reply = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=120)
    assert reply.status_code == 200, reply.text[:300]
    return reply.json()["outputs"][0]["data"]


def start_mlservers(venv: Path, pipeline) -> tuple[list, str]:
    """MLServer with its default parallel_workers=1, and with 0; or why it could not start."""
    from mlserver_side import MLServer

    started: list = []
    try:
        for workers in (1, 0):
            started.append(MLServer(venv, pipeline, workers).start())
        return started, f"MLServer {started[0].version()}"
    except Exception as exc:  # reported in the output: the mlwidget rows still run
        for ms in started:
            ms.stop()
        return [], f"MLServer could not run: {exc}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--mlserver", type=Path, help="a venv with mlserver and mlserver-sklearn")
    args = parser.parse_args()
    from mlwidget import MLModel

    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the servers get core 0
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    store = Path(tempfile.mkdtemp(prefix="mlwidget-bench-v2-"))
    model = MLModel(
        "titanic", data=titanic(), store=store, **GUIDE, **{"class": "LogisticRegression"}
    )
    server = Server(store, cpu=0).start()
    session = requests.Session()
    session.headers["Authorization"] = f"token {TOKEN}"
    mlservers, note = start_mlservers(args.mlserver, model.pipeline) if args.mlserver else ([], "")
    rows_10k = synthetic(10_000, seed=5)[FEATURES]
    try:
        meta = session.get(f"{server.url}mlhandler/v2/models/titanic", timeout=60).json()
        schema = {i["name"]: i["datatype"] for i in meta["inputs"]}
        records = rows_10k.to_json(orient="records").encode()
        json_ = {"Content-Type": "application/json"}
        groups = {"1 row": rows_10k.head(1), "10,000 rows": rows_10k}
        tables = []
        for size, rows in groups.items():
            meta_body, body = v2_body(rows, schema), shared_body(rows)
            mine = f"{server.url}{INFER}"
            expected = predictions(session, mine, body)
            assert predictions(session, mine, meta_body) == expected
            if size == "1 row":
                rest = ("REST GET ?Sex=male&...", "GET", "mlhandler/titanic", {"params": PASSENGER}, 0)  # fmt: skip
            else:
                rest = ("REST POST JSON records", "POST", "mlhandler/titanic", {"data": records, "headers": json_}, len(records))  # fmt: skip
            cases = [
                {"label": rest[0], "server": "mlwidget", "method": rest[1], "url": server.url + rest[2], "kw": rest[3], "size": rest[4]},
                {"label": "V2 infer, as the metadata says", "server": "mlwidget", "method": "POST", "url": mine, "kw": {"data": meta_body, "headers": json_}, "size": len(meta_body)},
                {"label": "V2 infer, numbers as FP64", "server": "mlwidget", "method": "POST", "url": mine, "kw": {"data": body, "headers": json_}, "size": len(body), "shared": True},
            ]  # fmt: skip
            for ms in mlservers:
                other = requests.Session()
                url = f"{ms.url}v2/models/titanic/infer"
                same = predictions(other, url, body) == expected
                cases.append(
                    {"label": "V2 infer, numbers as FP64", "server": ms.label, "method": "POST", "url": url, "kw": {"data": body, "headers": json_}, "size": len(body), "shared": True, "same": same, "session": other}
                )  # fmt: skip
            for case in cases:
                case.setdefault("session", session)
            in_blocks(cases, args.runs if size == "1 row" else max(6, args.runs // 3))
            tables.append((size, cases))
        print_tables(tables, args.runs, note)
    finally:
        server.stop()
        for ms in mlservers:
            ms.stop()
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def print_tables(tables: list, runs: int, note: str) -> None:
    print("\n### Open Inference Protocol (V2): mlwidget's REST and V2, and MLServer, same run\n")
    print("| rows | request | server | body KB | p50 ms | p90 ms |")
    print("|---|---|---|---|---|---|")
    for size, cases in tables:
        for c in cases:
            p50, p90 = statistics.median(c["ms"]), statistics.quantiles(c["ms"], n=10)[-1]
            kb = f"{c['size'] / 1024:.0f}" if c["size"] else "-"
            print(f"| {size} | {c['label']} | {c['server']} | {kb} | {p50:.2f} | {p90:.2f} |")
    print(
        f"\nMedians of {runs} single-row and {max(6, runs // 3)} 10k-row requests, in three "
        "rounds of a block per case (2 warm-ups each); client time (requests) included."
    )
    if not note:
        return
    print(f"\n{note}.")
    shared = [(size, [c for c in cases if c.get("shared")]) for size, cases in tables]
    if len(shared[0][1]) < 2:
        return
    print("\n| rows (same V2 body) | mlwidget p50 ms | server | its p50 ms | its time / mlwidget's | same predictions |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for size, (mine, *others) in shared:
        ours = statistics.median(mine["ms"])
        for c in others:
            theirs = statistics.median(c["ms"])
            same = "yes" if c["same"] else "**no**"
            print(f"| {size} | {ours:.2f} | {c['server']} | {theirs:.2f} | {theirs / ours:.2f}x | {same} |")  # fmt: skip


if __name__ == "__main__":
    main()
