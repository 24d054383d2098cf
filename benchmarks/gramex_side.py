"""Gramex's own MLHandler beside mlwidget, for benchmarks/jobs.py ``--gramex VENV``.

Gramex is never a dependency of mlwidget: it runs from a scratch virtualenv made by hand,

    python3 -m venv /tmp/gramex-venv
    nice -n 19 /tmp/gramex-venv/bin/pip install gramex==1.94.5 scikit-learn==1.3.2

(Python 3.11; that resolves numpy 1.26.4, pandas 2.1.4, tornado 6.6.1, scipy 1.17.1. Gramex
1.94.5 pins numpy<2 and pandas<2.2 but not scikit-learn, which it needs for MLHandler; its
pipeline builds ``OneHotEncoder(sparse=False)``, an argument scikit-learn 1.4 removed, so
scikit-learn must be older than 1.4.)

``Gramex(venv, csv_path)`` writes a temporary ``gramex.yaml`` with one MLHandler at ``/titanic``
configured like the guide (and like ``data.GUIDE``): ``data: {url: csv_path}``, class
LogisticRegression, target_col Survived, exclude PassengerId/Ticket/Cabin/Name, cats
Embarked/Parch/Pclass/Sex, its model store (``config_dir``) in the temporary directory, XSRF
off for that URL so a bare POST is accepted. ``gramex`` starts from that directory on core
``cpu`` (``taskset -c``, like mlwidget's server), listening on 127.0.0.1 at a free port, with
``$GRAMEXDATA`` in the temporary directory. Quiet and offline: every logger at WARNING (so no
per-request CSV log either, like the Jupyter server's ``log_level=WARN``), Python warnings
off, the daily ``gramex_update`` check (an HTTP call to gramener.com) removed, no config
watcher, no browser. At start-up MLHandler trains the model in its thread pool; ``start()``
returns once a single-row GET answers with a prediction.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import requests
from data import GUIDE, PASSENGER
from server import free_port


def _yaml(value: object) -> str:
    """A scalar or a list as YAML flow (JSON is valid YAML flow syntax)."""
    return json.dumps(value)


class Gramex:
    """``gramex`` from ``venv`` serving the guide's Titanic MLHandler at ``.url``."""

    name = "titanic"

    def __init__(self, venv: Path, csv_path: Path, cpu: int = 0) -> None:
        self.venv, self.csv_path, self.cpu = Path(venv), Path(csv_path).resolve(), cpu
        self.tmp = Path(tempfile.mkdtemp(prefix="mlwidget-bench-gramex-"))
        self.store = self.tmp / "model"  # MLHandler's config_dir: config.json, data.h5, model.pkl
        self.model_path = self.store / "model.pkl"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/{self.name}"
        self.predict_url = f"{self.url}?{urlencode(PASSENGER)}"
        (self.tmp / "gramex.yaml").write_text(self._config())
        self.proc: subprocess.Popen | None = None

    def _config(self) -> str:
        quiet = "{level: WARNING}"
        return f"""\
app:
  browser: false
  watch: false
  listen:
    port: {self.port}
    address: 127.0.0.1
log:
  root: {quiet}
  loggers:
    gramex: {quiet}
    gramex.requests: {quiet}
    tornado.access: {quiet}
schedule:
  gramex_update: null
url:
  {self.name}:
    pattern: /{self.name}
    handler: MLHandler
    kwargs:
      xsrf_cookies: false
      config_dir: {_yaml(str(self.store))}
      data:
        url: {_yaml(str(self.csv_path))}
      model:
        class: LogisticRegression
        target_col: {_yaml(GUIDE["target_col"])}
        exclude: {_yaml(GUIDE["exclude"])}
        cats: {_yaml(GUIDE["cats"])}
"""

    @property
    def label(self) -> str:
        return "Gramex MLHandler"

    def version(self) -> str:
        out = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c",
             "import gramex, sklearn; print(gramex.__version__, sklearn.__version__)"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        gramex, sklearn = out.stdout.split()
        return f"gramex {gramex}, scikit-learn {sklearn}"

    def start(self, timeout: float = 120) -> Gramex:
        exe = self.venv / "bin" / "gramex"
        if not exe.exists():
            raise RuntimeError(f"{exe} not found: install Gramex in that venv (see above)")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(GRAMEXDATA=str(self.tmp / "gramexdata"), PYTHONWARNINGS="ignore")
        cmd = [*(["taskset", "-c", str(self.cpu)] if shutil.which("taskset") else []), str(exe)]
        self.log = open(self.tmp / "gramex.log", "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=self.tmp, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gramex exited: see {self.tmp / 'gramex.log'}")
            try:
                # 404 until the start-up training in Gramex's thread pool has saved model.pkl
                reply = requests.get(self.predict_url, timeout=5)
                if reply.status_code == 200 and GUIDE["target_col"] in reply.json()[0]:
                    return self
            except (OSError, ValueError, LookupError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"gramex not ready in {timeout} s: see {self.tmp / 'gramex.log'}")

    def stop(self) -> None:
        """Stop Gramex (SIGTERM, then SIGKILL to its process group) and remove its files."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # anything left in its session
            except ProcessLookupError:
                pass
            self.proc.wait(5)
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Gramex:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
