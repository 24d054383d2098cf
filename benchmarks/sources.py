"""Sources and the cluster (issue 27): bulk predictions that never pass through the server.

    .venv/bin/python benchmarks/sources.py                      # 10M rows: about 10 minutes
    .venv/bin/python benchmarks/sources.py --rows 2000000 --only source,restart

Tables, each from a real Jupyter server (unpinned: the jobs' workers need both cores) and a
Dask cluster started from its CLI (``dask scheduler`` and two ``dask worker --nthreads 1``):
(A, ``source``) ``POST ?_action=predict&source=big&output=out&keys=PassengerId`` of the guide's
Titanic model over a Parquet source of ``--rows`` rows, on the process executor (one worker
process, part by part) and on Dask (a task per part): the time, the rows per second, and the
server's peak memory above its idle memory (VmHWM reset through /proc/PID/clear_refs);
(B, ``bulk``) a 200,000-row CSV body ``POST ?_action=predict&_wait=false``, until the job is
done, on both executors (two servers up at once, their jobs in turns: the machine's load then
weighs on both alike); (C, ``restart``) the scheduler and its workers killed and started again
on the same address: seconds from the restart until a retrain through the same server, never
restarted, succeeds. Medians of ``--runs``.

``--code DIR`` runs the server, its worker processes and the Dask workers on another copy of
the code (DIR holds ``mlwidget/`` and ``mlwidget_server/``, put first on their PYTHONPATH), for
before/after comparisons in one session:

    mkdir -p /tmp/before && git archive HEAD mlwidget | tar -x -C /tmp/before
    git archive HEAD server_extension/mlwidget_server | tar -x -C /tmp/before --strip-components=1
    for i in 1 2 3; do
      .venv/bin/python benchmarks/sources.py --only bulk --code /tmp/before
      .venv/bin/python benchmarks/sources.py --only bulk
    done

``--actions predict,predict_proba`` times bulk jobs of those actions (default: predict);
``--worker-env NAME=VALUE`` (repeatable) sets a variable for the Dask workers, e.g.
``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.error
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from dask_cli import WAIT, CLICluster  # noqa: E402
from data import GUIDE, synthetic  # noqa: E402
from server import Server  # noqa: E402

PART = 500_000  # rows per Parquet file written (row groups of 50,000)


def write_source(folder: Path, rows: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, start in enumerate(range(0, rows, PART)):
        frame = synthetic(min(PART, rows - start), seed=i)
        frame["PassengerId"] += start
        frame.to_parquet(folder / f"part-{i:03d}.parquet", row_group_size=50_000)


def train(store: Path) -> None:
    from mlwidget import MLModel

    MLModel("titanic", data=synthetic(891), store=store, executor="thread", **GUIDE)


def server_for(store: Path, sources: dict, executor: str, scheduler: str | None) -> Server:
    args = [
        f"--MLWidgetApp.data_sources={json.dumps(sources)}",
        f"--MLWidgetApp.executor={executor}",
    ]
    if scheduler:
        args.append(f"--MLWidgetApp.dask_scheduler={scheduler}")
    return Server(store, cpu=None, args=tuple(args))


def source_run(server: Server) -> tuple[float, int, dict]:
    """One source job, waited for: (seconds, peak bytes above before, result)."""
    before = server.rss()
    server.reset_peak()
    start = time.perf_counter()
    body = server.request(
        "mlhandler/titanic?_action=predict&source=big&output=out&keys=PassengerId", body=b" "
    )
    seconds = time.perf_counter() - start
    return seconds, server.peak() - before, json.loads(body)


def bulk_run(server: Server, csv: bytes, action: str = "predict") -> float:
    """A 200k-row body as a job, until it is done (its answer stays on disk)."""
    start = time.perf_counter()
    job = json.loads(
        server.request(f"mlhandler/titanic?_action={action}&_wait=false", csv, "text/csv")
    )["job"]
    while True:
        state = json.loads(server.get(f"mlhandler/titanic?_job={job}"))
        if state["status"] not in ("queued", "running"):
            break
        time.sleep(0.02)
    assert state["status"] == "done", state
    return time.perf_counter() - start


def table(title: str, header: list[str], rows: list[list[object]], notes: str) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    print(f"\n{notes}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="source,bulk,restart")
    parser.add_argument("--code", help="a folder with mlwidget/ and mlwidget_server/ to run")
    parser.add_argument("--actions", default="predict", help="the bulk jobs' actions")
    parser.add_argument("--worker-env", action="append", default=[], help="NAME=VALUE")
    opts = parser.parse_args()
    only = set(opts.only.split(","))
    actions = opts.actions.split(",")
    workers_env = dict(item.split("=", 1) for item in opts.worker_env)
    if opts.code:  # the server and its worker processes (inherited), and the Dask workers
        code = str(Path(opts.code).resolve())
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [code, os.environ.get("PYTHONPATH")])
        )
        workers_env["PYTHONPATH"] = os.pathsep.join([code, str(HERE.parent / "tests")])
        os.chdir(code)  # `python -m` and `-c` put the working folder first on sys.path
    tmp = Path(tempfile.mkdtemp(prefix="mlwidget-bench-sources-"))
    store = tmp / "store"
    train(store)
    sources = {"big": str(tmp / "big"), "out": str(tmp / "out")}
    if "source" in only:
        write_source(tmp / "big", opts.rows)
    cli = CLICluster(tmp)
    cli.start_scheduler()
    cli.start_worker(workers_env)
    cli.start_worker(workers_env)
    try:
        from distributed import Client

        with Client(cli.address, set_as_default=False, timeout=WAIT) as client:
            client.wait_for_workers(2, timeout=WAIT)
            where = set(client.run(lambda: __import__("mlwidget").__file__).values())
            print(f"Dask workers run {', '.join(sorted(where))}")
        results: dict[str, dict] = {}
        for executor in ("process", "dask") if "source" in only else ():
            scheduler = cli.address if executor == "dask" else None
            with server_for(store, sources, executor, scheduler) as server:
                idle = server.rss()
                found: dict = {"idle_mb": idle / 2**20}
                if "source" in only:
                    source_run(server)  # warm: the worker starts, the model reaches it
                    runs = [source_run(server) for _ in range(opts.runs)]
                    found["source_s"] = statistics.median(r[0] for r in runs)
                    found["source_peak_mb"] = max(r[1] for r in runs) / 2**20
                    found["rows"] = runs[0][2]["rows"]
            results[executor] = found
        if "source" in only:
            p, d = results["process"], results["dask"]
            table(
                f"Source to output, {opts.rows:,} rows (Parquet, {PART:,}-row files)",
                ["executor", "seconds", "rows/s", "server peak above idle", "server idle"],
                [
                    [
                        name,
                        f"{r['source_s']:.1f}",
                        f"{r['rows'] / r['source_s']:,.0f}",
                        f"{r['source_peak_mb']:.0f} MB",
                        f"{r['idle_mb']:.0f} MB",
                    ]
                    for name, r in (("process (1 worker)", p), ("dask (2 workers)", d))
                ],
                f"Dask / process throughput: {p['source_s'] / d['source_s']:.2f}x.",
            )
        if "bulk" in only:
            with (
                server_for(store, sources, "process", None) as on_process,
                server_for(store, sources, "dask", cli.address) as on_dask,
            ):
                for action in actions:
                    bulk_table(on_process, on_dask, action, opts)
        if "restart" in only:
            restart_table(store, sources, cli, opts.runs)
    finally:
        cli.close()


def bulk_table(on_process: Server, on_dask: Server, action: str, opts: argparse.Namespace) -> None:
    """The 200k-row body as a job on both servers, one job at a time, in turns (the one that
    goes first alternates), so that both see the same machine load: ``--runs`` pairs."""
    csv = synthetic(200_000, seed=9).to_csv(index=False).encode()
    bulk_run(on_process, csv, action)  # warm: the worker process starts, the model reaches
    bulk_run(on_dask, csv, action)  # the Dask workers
    pairs = []
    for i in range(opts.runs):
        if i % 2:
            d, p = bulk_run(on_dask, csv, action), bulk_run(on_process, csv, action)
        else:
            p, d = bulk_run(on_process, csv, action), bulk_run(on_dask, csv, action)
        pairs.append((p, d))
    p_s, d_s = statistics.median(p for p, _ in pairs), statistics.median(d for _, d in pairs)
    ratio = statistics.median(d / p for p, d in pairs)
    where = f", code from {opts.code}" if opts.code else ""
    if opts.worker_env:
        where += f", Dask workers with {' '.join(opts.worker_env)}"
    table(
        f"Bulk 200,000-row CSV body as a job (?_action={action}&_wait=false){where}",
        ["executor", "seconds to done (median)", "runs"],
        [
            ["process", f"{p_s:.2f}", " ".join(f"{p:.2f}" for p, _ in pairs)],
            ["dask (2 workers)", f"{d_s:.2f}", " ".join(f"{d:.2f}" for _, d in pairs)],
        ],
        f"Dask / process time, median of the {len(pairs)} pairs: {ratio:.2f}x. Load average "
        f"at the end: {os.getloadavg()[0]:.1f}.",
    )


def restart_table(store: Path, sources: dict, cli: CLICluster, runs: int) -> None:
    """Kill the scheduler and workers, start them again; time until a retrain succeeds."""
    times = []
    with server_for(store, sources, "dask", cli.address) as server:
        server.request("mlhandler/titanic?_action=retrain", body=b" ")
        for _ in range(runs):
            cli.kill_workers()
            cli.kill_scheduler()
            cli.workers.clear()
            cli.start_scheduler()
            started = time.perf_counter()
            cli.start_worker()
            cli.start_worker()
            while True:
                try:
                    server.request("mlhandler/titanic?_action=retrain", body=b" ")
                    break
                except urllib.error.HTTPError:
                    time.sleep(0.2)
            times.append(time.perf_counter() - started)
    table(
        "Scheduler and workers killed and started again (the server is not restarted)",
        ["run", "seconds until a retrain succeeds"],
        [[i + 1, f"{t:.1f}"] for i, t in enumerate(times)],
        f"Median {statistics.median(times):.1f} s (the goal: under 30 s).",
    )


if __name__ == "__main__":
    main()
