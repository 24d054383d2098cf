"""Single-row GET predictions with the prediction log off vs on, in the same run (issue 29).

    .venv/bin/python benchmarks/prediction_log.py                  # 5 rounds of 5 s each way
    .venv/bin/python benchmarks/prediction_log.py --seconds 3 --rounds 3 --connections 16

One Jupyter server (pinned to core 0, as run.py's) serves two copies of the guide's Titanic
model from one store: ``titanic-off`` (no log) and ``titanic-on`` (``log_predictions=true``,
every answer logged). ``wrk`` (core 1) drives the same single-row query at each in turn,
alternating off/on per round so that drift of the machine hits both alike. Prints a Markdown
table (requests/s and p50/p99 per round, the medians) and the ratio on/off (target >= 0.9).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import loadgen  # noqa: E402
from data import GUIDE, PASSENGER, titanic  # noqa: E402
from server import TOKEN, Server  # noqa: E402

from mlwidget import MLModel  # noqa: E402

TARGET = 0.9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per round")
    parser.add_argument("--rounds", type=int, default=5, help="off/on rounds")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--json", help="also save the numbers here")
    args = parser.parse_args()
    if not loadgen.available():
        sys.exit("needs wrk (apt-get install wrk)")
    store = Path(tempfile.mkdtemp(prefix="mlwidget-bench-log-"))
    data = titanic()
    for name, log in (("titanic-off", False), ("titanic-on", True)):
        MLModel(
            name, data=data, store=store, executor="thread", class_="LogisticRegression",
            log_predictions=log, **GUIDE,
        )  # fmt: skip
    query = urlencode(PASSENGER)
    results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    with Server(store) as server:
        for which in results:  # load and compile both, and check the header
            server.get(f"mlhandler/titanic-{which}?{query}")
        for _ in range(args.rounds):
            for which in results:
                url = f"{server.url}mlhandler/titanic-{which}?{query}"
                results[which].append(loadgen.run(url, TOKEN, args.connections, args.seconds))
        time.sleep(1.5)  # the last flush
        logged = json.loads(server.get("mlhandler/titanic-on?_log&limit=1000000"))
    print_table(results, args, len(logged))
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "logged": len(logged)}))


def print_table(results: dict[str, list[dict[str, float]]], args, logged: int) -> None:
    print(
        f"### Single-row GET, prediction log off vs on (wrk -c{args.connections}, "
        f"{args.seconds:g} s x {args.rounds} rounds each, alternating; server on core 0)\n"
    )
    print("| round | off: req/s | off: p50 / p99 ms | on: req/s | on: p50 / p99 ms |")
    print("|---|---|---|---|---|")
    for i, (off, on) in enumerate(zip(results["off"], results["on"], strict=True), 1):
        print(
            f"| {i} | {off['rps']:,.0f} | {off['p50']:.2f} / {off['p99']:.2f} | "
            f"{on['rps']:,.0f} | {on['p50']:.2f} / {on['p99']:.2f} |"
        )
    medians = {k: statistics.median(r["rps"] for r in v) for k, v in results.items()}
    ratio = medians["on"] / medians["off"]
    errors = sum(r["errors"] for v in results.values() for r in v)
    print(f"| median | {medians['off']:,.0f} | | {medians['on']:,.0f} | |")
    print(
        f"\nratio on/off: **{ratio:.2f}x** (target >= {TARGET}x: "
        f"{'met' if ratio >= TARGET else 'NOT met'}); {logged:,} records in the log "
        f"(the newest up to 1,000,000); {errors:.0f} errors"
    )


if __name__ == "__main__":
    main()
