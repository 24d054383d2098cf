"""`jupyter mlwidget`: start it as a user does, follow what it prints, stop it with SIGTERM.

The printed example query must predict the guide's passenger, the printed dashboard URL must
render in Voila, and the README's curl examples must work as printed with the printed
`export URL=... TOKEN=...` line.
"""

from __future__ import annotations

import contextlib
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


# Linux's /proc: the process tree of the command, and what each process shows of itself


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None if there is no such
    process (field 0 is the state, 1 the parent pid, 11 and 12 the user and system time)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren, ...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None:
                parents[int(entry.name)] = int(stat[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        todo += children
    return found


def cmdline(pid: int) -> str:
    """The command line of ``pid`` as any local user can read it (``ps``), "" if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace")


def read_lines(cmd: Command) -> None:
    assert cmd.proc.stdout is not None
    for line in cmd.proc.stdout:
        cmd.lines.append(line)
        if line.startswith("Press Ctrl-C"):
            cmd.done.set()
    cmd.done.set()


@contextlib.contextmanager
def start_command(tmp_path: Path, args: list[str]) -> Iterator[Command]:
    """``jupyter mlwidget <args>`` from the repository's folder with a private runtime dir
    (and no MLWIDGET_STORE); yields once it has printed its summary, kills it on exit."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(exist_ok=True)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime))
    env.pop("MLWIDGET_STORE", None)
    stderr_path = tmp_path / "stderr.txt"
    stderr = open(stderr_path, "wb")
    proc = subprocess.Popen(
        [str(JUPYTER), "mlwidget", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    cmd = Command(proc)
    threading.Thread(target=read_lines, args=(cmd,), daemon=True).start()
    try:
        if not cmd.done.wait(120) or proc.poll() is not None:
            pytest.fail(
                f"no summary printed in 120 s:\n{cmd.stdout}\n--- stderr\n{stderr_path.read_text()}"
            )
        yield cmd
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        stderr.close()


@pytest.fixture
def command(tmp_path: Path) -> Iterator[Command]:
    """``jupyter mlwidget`` with a private store, on a free port, under a base URL."""
    args = [
        f"--port={free_port()}",
        f"--store={tmp_path / 'store'}",
        "--ServerApp.base_url=/base/",  # a pass-through option: the printed URLs must follow it
    ]
    with start_command(tmp_path, args) as cmd:
        yield cmd


def test_prints_urls_that_work_and_stops_on_sigterm(command: Command, tmp_path: Path) -> None:
    out = command.stdout
    token = command.printed("Token")
    auth = {"Authorization": f"token {token}"}
    assert "created model 'titanic'" in out
    assert f"Model store: {tmp_path / 'store'}" in out
    assert f"Root folder: {NOTEBOOKS}" in out  # run from the repository: the notebooks folder

    # the example query opens as printed (it carries the token, as a browser would send it):
    # the guide's passenger did not survive
    example = command.printed("Example query")
    assert "/base/mlhandler/titanic?Sex=male&Age=22&SibSp=1&Parch=0&Fare=7.25" in example
    assert example.endswith(f"&token={token}")
    reply = requests.get(example, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json() == [0]
    # without the token: refused; with it in a header instead: the same answer
    bare = example.removesuffix(f"&token={token}")
    assert requests.get(bare, timeout=60).status_code == 403
    assert requests.get(bare, headers=auth, timeout=60).json() == [0]
    # the REST endpoint is printed without the token (it is a base for clients' own URLs)
    assert token not in command.printed("REST endpoint")

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


def server_info(runtime: Path) -> dict:
    """The info file of the one Jupyter server that writes it into ``runtime``."""
    (info,) = runtime.glob("jpserver-*.json")
    return json.loads(info.read_text())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_token_is_on_no_command_line_and_works(command: Command, tmp_path: Path) -> None:
    """The command is the server (no child process), and the token reaches it as configuration:
    ``ps`` (any local user) shows it on no command line. The printed token is the server's."""
    token = command.printed("Token")
    assert len(token) >= 32
    info = server_info(tmp_path / "runtime")
    assert info["pid"] == command.proc.pid  # the server runs in the command's own process
    assert info["token"] == token
    tree = [command.proc.pid, *descendants(command.proc.pid)]
    lines = {pid: cmdline(pid) for pid in tree}
    # no second server and no kernel below it (jupyter_lsp may briefly run `npm prefix -g`);
    # the only Python below it are the job worker processes (the demo model trained in one)
    others = [p for p in tree[1:] if "python" in lines[p] or "jupyter" in lines[p]]
    assert all("mlwidget.jobs.worker" in lines[p] for p in others), lines
    leaks = {pid: line for pid, line in lines.items() if token in line}
    assert not leaks, leaks
    # and the server authenticates with the printed token (it did not generate its own)
    api = command.printed("REST endpoint").rsplit("/mlhandler/", 1)[0] + "/api/status"
    assert requests.get(api, headers={"Authorization": f"token {token}"}, timeout=30).ok
    assert requests.get(f"{api}?token={token}", timeout=30).ok
    assert requests.get(api, timeout=30).status_code == 403
    wrong = {"Authorization": f"token {token[::-1]}"}
    assert requests.get(api, headers=wrong, timeout=30).status_code == 403


def test_an_empty_token_disables_authentication(tmp_path: Path) -> None:
    args = [f"--port={free_port()}", f"--store={tmp_path / 'store'}", "--token="]
    with start_command(tmp_path, args) as cmd:
        assert "(none: authentication is disabled)" in cmd.stdout
        example = cmd.printed("Example query")
        assert "token=" not in example
        assert requests.get(example, timeout=60).json() == [0]


def test_a_port_taken_is_refused_and_the_default_moves_on(tmp_path: Path) -> None:
    """``--port=N`` listens on N or fails; without ``--port`` the server takes 8888 or, if that
    is taken, a free port (its own ``port_retries``: no port is picked and released first).
    Ctrl-C (SIGINT, without a terminal) stops it as SIGTERM does."""
    with contextlib.ExitStack() as stack:
        taken = stack.enter_context(socket.socket())
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        args = [f"--port={busy}", f"--store={tmp_path / 'store'}", "--no-demo"]
        runtime = tmp_path / "runtime"
        runtime.mkdir()
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime))
        result = subprocess.run(
            [str(JUPYTER), "mlwidget", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1, result
        assert f"port {busy} is not available" in result.stderr

        default = stack.enter_context(socket.socket())
        try:
            default.bind(("127.0.0.1", cli.DEFAULT_PORT))
            default.listen()
        except OSError:
            pass  # taken already, by someone else
        args = [f"--store={tmp_path / 'store'}", "--no-demo"]
        with start_command(tmp_path, args) as cmd:
            status = cmd.printed("REST endpoint").rsplit("/mlhandler/", 1)[0] + "/api/status"
            port = int(re.search(r":(\d+)/", status).group(1))
            assert port != cli.DEFAULT_PORT
            assert server_info(tmp_path / "runtime")["port"] == port
            auth = {"Authorization": f"token {cmd.printed('Token')}"}
            assert requests.get(status, headers=auth, timeout=30).ok
            cmd.proc.send_signal(signal.SIGINT)
            assert cmd.proc.wait(10) == 0
        stderr = (tmp_path / "stderr.txt").read_text()
        # the server's own shutdown ran (Python's KeyboardInterrupt would skip it)
        assert "mlwidget: stopping the Jupyter server..." in stderr
        assert "Shutting down" in stderr and "mlwidget: stopped." in stderr


def test_extension_list_shows_the_version() -> None:
    """``jupyter server extension list`` names the extension with its version (mlwidget's)."""
    import mlwidget

    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # no colours
    version = re.escape(mlwidget.__version__)
    assert re.search(rf"^\s*mlwidget_server {version} OK\s*$", out, re.M), out

    import mlwidget_server

    assert mlwidget_server.__version__ == mlwidget.__version__


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
    # the demo greets users without a warning (the guide's SibSb typo is the tutorial's)
    info = model.info()
    assert info["warnings"] == [] and not info["stale"], info
    assert "SibSb" not in str(info["options"])


def test_unknown_options_are_refused(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--bogus"])
    assert exc.value.code == 2
    assert "--ServerApp.trait=value" in capsys.readouterr().err
