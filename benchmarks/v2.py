"""Open Inference Protocol (issue 14): V2 infer against mlwidget's own REST requests, on a real
server (pinned to core 0; this client on core 1), the guide's Titanic model.

    .venv/bin/python benchmarks/v2.py            # about a minute
    .venv/bin/python benchmarks/v2.py --runs 50

Rows: one row (GET ?Sex=male&... and V2 infer of one row), and 10,000 rows (POST of JSON records
and V2 infer with one columnar input per feature). Medians and p90 of the runs, client time
included (the same ``requests.Session`` for both), and the request body's size.
"""

from __future__ import annotations

import argparse
import json
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


def v2_body(rows, schema: dict[str, str]) -> bytes:
    inputs = []
    for name in FEATURES:
        column = rows[name]
        if schema[name] == "BYTES":
            data = ["" if v != v else str(v) for v in column.tolist()]
        else:
            data = [None if v != v else float(v) for v in column.tolist()]
        inputs.append({"name": name, "datatype": schema[name], "shape": [len(rows)], "data": data})
    return json.dumps({"inputs": inputs}).encode()


def timed(session: requests.Session, runs: int, method: str, url: str, **kwargs) -> list[float]:
    out = []
    for i in range(runs + 3):
        start = time.perf_counter()
        reply = session.request(method, url, timeout=120, **kwargs)
        took = time.perf_counter() - start
        assert reply.status_code == 200, reply.text[:300]
        if i >= 3:  # warm-up
            out.append(took * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    from mlwidget import MLModel

    store = Path(tempfile.mkdtemp(prefix="mlwidget-bench-v2-"))
    MLModel("titanic", data=titanic(), store=store, **GUIDE, **{"class": "LogisticRegression"})
    server = Server(store, cpu=0).start()
    session = requests.Session()
    session.headers["Authorization"] = f"token {TOKEN}"
    rows_10k = synthetic(10_000, seed=5)[FEATURES]
    try:
        meta = session.get(f"{server.url}mlhandler/v2/models/titanic", timeout=60).json()
        schema = {i["name"]: i["datatype"] for i in meta["inputs"]}
        one = v2_body(rows_10k.head(1), schema)
        many = v2_body(rows_10k, schema)
        records = rows_10k.to_json(orient="records").encode()
        cases = [
            ("1 row", "REST GET ?Sex=male&...", "GET", "mlhandler/titanic", {"params": PASSENGER}, 0),
            ("1 row", "V2 infer (JSON)", "POST", "mlhandler/v2/models/titanic/infer", {"data": one}, len(one)),
            ("10,000 rows", "REST POST JSON records", "POST", "mlhandler/titanic",
             {"data": records, "headers": {"Content-Type": "application/json"}}, len(records)),
            ("10,000 rows", "V2 infer (columnar JSON)", "POST", "mlhandler/v2/models/titanic/infer",
             {"data": many}, len(many)),
        ]  # fmt: skip
        print("\n### Open Inference Protocol (V2) vs mlwidget's REST, same server, same run\n")
        print("| rows | request | body KB | p50 ms | p90 ms |")
        print("|---|---|---|---|---|")
        for size, label, method, path, kwargs, body in cases:
            runs = args.runs if size == "1 row" else max(5, args.runs // 3)
            times = timed(session, runs, method, server.url + path, **kwargs)
            p90 = statistics.quantiles(times, n=10)[-1]
            kb = f"{body / 1024:.0f}" if body else "-"
            print(f"| {size} | {label} | {kb} | {statistics.median(times):.2f} | {p90:.2f} |")
        print(
            f"\nMedians of {args.runs} single-row and {max(5, args.runs // 3)} 10k-row requests "
            "after 3 warm-ups; client time (requests, JSON encoding of the answer) included."
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
