"""Start-up with many configured models (issue 26): how soon the server answers, how its
models train, and how many stay loaded.

    .venv/bin/python benchmarks/startup.py                 # 20 models, max_loaded_models=5
    .venv/bin/python benchmarks/startup.py --models 40 --max-loaded 5 --trees 50

A real Jupyter server (not pinned: its worker processes train on both cores) with ``--models``
configured models (the guide's Titanic options, a RandomForestClassifier of ``--trees`` trees
each) in an empty store and ``--MLWidgetApp.max_loaded_models``. Measured from the moment the
server process is spawned: when ``GET /api/status`` first answers (Jupyter itself), when
``GET mlhandler/`` first answers (the listing, and the states it shows then), when every model
shows "ready"; then one GET prediction on each model in turn, with the count of loaded models
the listing reports after each (at most ``--max-loaded``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.error
import urllib.parse
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from data import GUIDE, PASSENGER, TITANIC  # noqa: E402
from server import Server  # noqa: E402


def listing(server: Server) -> list[dict]:
    req = json.loads(server.get("mlhandler/"))
    return req if isinstance(req, list) else req.get("models", req)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--max-loaded", type=int, default=5)
    parser.add_argument("--trees", type=int, default=50)
    args = parser.parse_args()
    options = {
        **GUIDE,
        "data": str(TITANIC),
        "class": "RandomForestClassifier",
        "params": {"n_estimators": args.trees, "random_state": 0},
    }
    models = {f"m{i:02d}": options for i in range(args.models)}
    with tempfile.TemporaryDirectory(prefix="mlwidget-bench-startup-") as scratch:
        store = Path(scratch) / "store"
        flags = (
            f"--MLWidgetApp.models={json.dumps(models)}",
            f"--MLWidgetApp.max_loaded_models={args.max_loaded}",
        )
        server = Server(store, cpu=None, args=flags)
        server.start(timeout=120)
        status_at = time.monotonic() - server.started
        try:
            first = None
            while first is None:
                try:
                    first = listing(server)
                except OSError:
                    time.sleep(0.05)
            listing_at = time.monotonic() - server.started
            states_first = Counter(m.get("state") for m in first)
            while True:
                now = listing(server)
                if all(m.get("state") in ("ready", "error") for m in now):
                    break
                time.sleep(0.2)
            ready_at = time.monotonic() - server.started
            loaded = []
            query = urllib.parse.urlencode(PASSENGER)
            for m in sorted(models):
                try:
                    answer = json.loads(server.get(f"mlhandler/{m}?{query}"))
                except urllib.error.HTTPError as exc:
                    raise SystemExit(f"{m}: {exc.code} {exc.read().decode()[:300]}") from None
                assert answer in ([0], [1]), answer
                loaded.append(sum(1 for row in listing(server) if row.get("loaded")))
        finally:
            server.stop()
    print(f"\n### Start-up with {args.models} configured models ({args.trees}-tree forests)\n")
    print("| measure | value |\n|---|---|")
    print(f"| GET /api/status first answers | {status_at:.2f} s after spawn |")
    print(f"| GET mlhandler/ first answers | {listing_at:.2f} s after spawn, "
          f"{listing_at - status_at:.2f} s after /api/status |")  # fmt: skip
    print(f"| states in that first listing | {dict(states_first)} |")
    print(f"| every model ready (trained in worker processes) | {ready_at:.1f} s after spawn |")
    print(
        f"| models listed | {len(now)} of {args.models}, states {dict(Counter(m.get('state') for m in now))} |"
    )  # noqa: E501
    print(f"| loaded after each prediction (max_loaded_models={args.max_loaded}) | "
          f"{', '.join(map(str, loaded))}; most {max(loaded)} |")  # fmt: skip


if __name__ == "__main__":
    main()
