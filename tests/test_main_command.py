"""`jupyter mlwidget`: start it as a user does, follow what it prints, stop it with SIGTERM.

The printed example query must predict the guide's passenger, the printed dashboard URL must
render in Voila, and the README's curl examples must work as printed with the printed
`export URL=... TOKEN=...` line.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from conftest import GUIDE_PASSENGER, NOTEBOOKS, ROOT
from mlwidget_server import main as cli

JUPYTER = Path(sys.executable).with_name("jupyter")
README = ROOT / "README.md"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Command:
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def stdout(self) -> str:
        return "".join(self.lines)

    def printed(self, label: str) -> str:
        """The value printed after ``label:`` in the summary."""
        match = re.search(rf"^\s*{re.escape(label)}:\s+(\S+)\s*$", self.stdout, re.M)
        assert match, f"{label!r} not printed:\n{self.stdout}"
        return match.group(1)


def read_lines(cmd: Command) -> None:
    assert cmd.proc.stdout is not None
    for line in cmd.proc.stdout:
        cmd.lines.append(line)
        if line.startswith("Press Ctrl-C"):
            cmd.done.set()
    cmd.done.set()


@pytest.fixture
def command(tmp_path: Path) -> Iterator[Command]:
    """``jupyter mlwidget`` from the repository's folder, with a private store and runtime dir;
    yields once it has printed its summary."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime))
    env.pop("MLWIDGET_STORE", None)
    argv = [
        str(JUPYTER),
        "mlwidget",
        f"--port={free_port()}",
        f"--store={tmp_path / 'store'}",
        "--ServerApp.base_url=/base/",  # a pass-through option: the printed URLs must follow it
    ]
    stderr = open(tmp_path / "stderr.txt", "wb")
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
    )
    cmd = Command(proc)
    threading.Thread(target=read_lines, args=(cmd,), daemon=True).start()
    try:
        if not cmd.done.wait(120) or proc.poll() is not None:
            stderr = (tmp_path / "stderr.txt").read_text()
            pytest.fail(f"no summary printed in 120 s:\n{cmd.stdout}\n--- stderr\n{stderr}")
        yield cmd
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        stderr.close()


def test_prints_urls_that_work_and_stops_on_sigterm(command: Command, tmp_path: Path) -> None:
    out = command.stdout
    token = command.printed("Token")
    auth = {"Authorization": f"token {token}"}
    assert "created model 'titanic'" in out
    assert f"Model store: {tmp_path / 'store'}" in out
    assert f"Root folder: {NOTEBOOKS}" in out  # run from the repository: the notebooks folder

    # the example query, with the printed token: the guide's passenger did not survive
    example = command.printed("Example query")
    assert "/base/mlhandler/titanic?Sex=male&Age=22&SibSp=1&Parch=0&Fare=7.25" in example
    reply = requests.get(example, headers=auth, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json() == [0]
    # without the token: refused
    assert requests.get(example, timeout=60).status_code == 403

    # the printed curl line, run as printed
    curl = next(line.strip() for line in out.splitlines() if line.strip().startswith("curl "))
    result = subprocess.run(shlex.split(curl), capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout) == [0], result

    # the dashboard renders in Voila (its kernel opens the demo model from the shared store)
    dashboard = command.printed("Dashboard (Voila)")
    assert "/base/voila/render/dashboard.ipynb?token=" in dashboard
    page = requests.get(dashboard, timeout=120)
    assert page.status_code == 200
    assert "application/vnd.jupyter.widget-view+json" in page.text
    assert "Traceback" not in page.text and "There was an error" not in page.text

    # the model page (the extension's own HTML)
    model_page = requests.get(command.printed("Model page"), timeout=60)
    assert model_page.status_code == 200 and "<html" in model_page.text.lower()

    # SIGTERM stops the command and the server it started
    port = int(re.search(r":(\d+)/", example).group(1))
    command.proc.send_signal(signal.SIGTERM)
    assert command.proc.wait(45) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(example, headers=auth, timeout=5)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def readme_curl_commands(section: str) -> list[tuple[str, str | None]]:
    """``(command, expected JSON or None)`` for each curl line of a README section's bash blocks;
    a following ``# <json>`` comment line is the expected answer."""
    text = README.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end > 0 else None]
    found: list[tuple[str, str | None]] = []
    for block in re.findall(r"```bash\n(.*?)```", body, re.S):
        lines = block.replace("\\\n", " ").splitlines()
        for i, line in enumerate(lines):
            if line.startswith("curl "):
                nxt = lines[i + 1] if i + 1 < len(lines) else ""
                expected = nxt[2:].strip() if nxt.startswith("# ") else None
                found.append((line, expected))
    return found


def test_readme_tour_curl_examples_work_as_printed(command: Command) -> None:
    export = next(line.strip() for line in command.lines if line.strip().startswith("export URL="))
    env = dict(os.environ)
    for pair in shlex.split(export)[1:]:
        key, value = pair.split("=", 1)
        env[key] = value
    assert env["URL"].endswith("/base")
    commands = readme_curl_commands("Five-minute tour")
    assert len(commands) >= 8, commands
    for line, expected in commands:
        # as printed, plus: fail on an HTTP error status, and no progress meter
        run = "curl --fail-with-body -sS " + line[len("curl ") :]
        result = subprocess.run(
            ["bash", "-c", run], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (line, result.stdout, result.stderr)
        answer = json.loads(result.stdout)
        if expected:
            try:
                wanted = json.loads(expected)
            except ValueError:
                continue  # a comment, not an answer
            assert answer == wanted, (line, answer)
    # the tour leaves the demo model as the guide's logistic regression, retrained
    auth = {"Authorization": f"token {env['TOKEN']}"}
    info = requests.get(f"{env['URL']}/mlhandler/titanic?_model", headers=auth, timeout=60).json()
    assert info["model"] == "LogisticRegression" and not info["stale"], info
    assert info["fitted"]["model"] == "LogisticRegression"


def test_demo_data_is_the_notebooks_titanic_csv() -> None:
    assert filecmp.cmp(cli.DEMO_CSV, NOTEBOOKS / "titanic.csv", shallow=False)


def test_prepare_creates_the_demo_model_once(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    monkeypatch.setenv("MLWIDGET_STORE", str(store))  # --store sets it: restored after the test
    assert cli.main(["--prepare", f"--store={store}"]) == 0
    assert "created model 'titanic'" in capsys.readouterr().out
    assert cli.main(["--prepare", f"--store={store}"]) == 0
    assert "model 'titanic' is in the store (LogisticRegression)" in capsys.readouterr().out

    from mlwidget import MLModel

    model = MLModel.open("titanic", store=store)
    assert model.predict(GUIDE_PASSENGER) == [0]


def test_unknown_options_are_refused(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--bogus"])
    assert exc.value.code == 2
    assert "--ServerApp.trait=value" in capsys.readouterr().err
