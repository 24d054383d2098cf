"""``jupyter mlwidget``: serve the bundled Titanic demo model and print the URLs that matter.

1. Make sure the demo model ``titanic`` exists in the model store (the MLHandler guide's
   configuration, trained on the Titanic CSV shipped inside this package; nothing is downloaded).
2. Start a Jupyter server with the ``mlwidget_server`` and Voila extensions (a child process),
   wait until it answers, then print the tutorial, dashboard and REST URLs, a curl line and the
   token. The token reaches the server in its environment (``JUPYTER_TOKEN``), not on its
   command line, which any local user can read (``ps``).
3. Ctrl-C or SIGTERM stops the server cleanly (its kernels are shut down first; a fit still
   running is abandoned), within seconds; a server that has not exited after
   ``STOP_TIMEOUT`` seconds is killed.

``jupyter mlwidget --prepare`` only does step 1 (Binder's ``postBuild`` uses it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .workers import collect_nothing_at_exit

DEMO_NAME = "titanic"
DEMO_CSV = Path(__file__).resolve().parent / "demo" / "titanic.csv"
# The MLHandler guide's "Creating New Models" configuration (its misspelled SibSb included:
# mlwidget ignores unknown columns with a warning that the model info shows).
DEMO_OPTIONS: dict[str, Any] = {
    "class": "LogisticRegression",
    "target_col": "Survived",
    "exclude": ["PassengerId", "Ticket", "Cabin", "Name"],
    "cats": ["Embarked", "SibSb", "Parch", "Pclass", "Sex"],
}
# The guide's passenger: a 22 year old man travelling third class with a sibling -> [0]
EXAMPLE_QUERY = "Sex=male&Age=22&SibSp=1&Parch=0&Fare=7.25&Pclass=3&Embarked=S"
DEFAULT_PORT = 8888
READY_TIMEOUT = 120.0
# Seconds a stopping server gets before it is killed: enough for Jupyter to shut its kernels
# down (it waits up to 5 s for each, in parallel), short enough that SIGTERM stops everything
# within 10 s.
STOP_TIMEOUT = 8.0
# Pass-through server options look like --ServerApp.base_url=/x/ or --VoilaConfiguration.theme=dark
PASSTHROUGH = re.compile(r"^--[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*(=.*)?$")


class _Stop(Exception):
    """Raised by the signal handlers to leave the wait loop."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter mlwidget",
        description=(
            "Start a Jupyter server with the mlwidget REST API and Voila, with the Titanic demo "
            "model trained and served, and print the URLs to open. Extra options of the form "
            "--ServerApp.trait=value (any Jupyter server config) are passed to the server."
        ),
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port to listen on (default: {DEFAULT_PORT}, or a free port if it is taken)",
    )
    parser.add_argument(
        "--ip", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--token",
        default=None,
        help="the token clients must send (default: a new random token); '' disables it",
    )
    parser.add_argument(
        "--root-dir",
        default=None,
        help="folder the server shows (default: ./notebooks when run from the mlwidget "
        "repository, else the current folder)",
    )
    parser.add_argument(
        "--store",
        default=None,
        help="model store folder, shared by the server and its kernels (default: "
        "$MLWIDGET_STORE if set, else <jupyter data dir>/mlwidget/models)",
    )
    parser.add_argument(
        "--no-demo",
        action="store_true",
        help="do not create the Titanic demo model",
    )
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="only create the Titanic demo model in the store, then exit (no server)",
    )
    browser = parser.add_mutually_exclusive_group()
    browser.add_argument(
        "--browser",
        dest="browser",
        action="store_true",
        help="open the tutorial (or the dashboard) in a web browser once the server answers",
    )
    browser.add_argument(
        "--no-browser",
        dest="browser",
        action="store_false",
        help="do not open a browser (the default)",
    )
    parser.set_defaults(browser=False)
    return parser


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    unknown = [arg for arg in extra if not PASSTHROUGH.match(arg)]
    if unknown:
        parser.error(
            f"unrecognized arguments: {' '.join(unknown)}. Server options must look like "
            "--ServerApp.trait=value."
        )
    return args, extra


# ---------------------------------------------------------------------------------- the model


def ensure_demo_model(store: str | os.PathLike[str] | None = None) -> str:
    """Create the Titanic demo model in ``store`` unless it exists. Returns what happened."""
    from mlwidget import MLModel, list_models

    if DEMO_NAME in list_models(store):
        model = MLModel.open(DEMO_NAME, store=store)
        fitted = (model.info().get("fitted") or {}).get("model")
        if fitted:
            return f"model {DEMO_NAME!r} is in the store ({fitted})"
        return f"model {DEMO_NAME!r} is in the store but not trained: retrain it to serve it"
    model = MLModel(DEMO_NAME, data=str(DEMO_CSV), model=DEMO_OPTIONS, store=store)
    fitted = model.info().get("fitted") or {}
    return (
        f"created model {DEMO_NAME!r}: {fitted.get('model')} trained on "
        f"{fitted.get('rows')} Titanic passengers, accuracy {fitted.get('score', 0):.2f}"
    )


# ---------------------------------------------------------------------------------- the server


def default_root_dir(cwd: Path) -> Path:
    """The repository's notebooks folder when run from the repository, else ``cwd``."""
    notebooks = cwd / "notebooks"
    if (notebooks / "titanic.ipynb").is_file() or (notebooks / "dashboard.ipynb").is_file():
        return notebooks
    return cwd


def pick_port(ip: str) -> int:
    """``DEFAULT_PORT`` if free, else any free port."""
    host = "" if ip in ("0.0.0.0", "*", "") else ip
    for port in (DEFAULT_PORT, 0):
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError("no free port found")


def server_option(extra: Sequence[str], name: str) -> str | None:
    """The value of ``--ServerApp.<name>=value`` among the pass-through options."""
    prefix = f"--ServerApp.{name}="
    values = [arg[len(prefix) :] for arg in extra if arg.startswith(prefix)]
    return values[-1].strip("'\"") if values else None


def find_notebook(root: Path, name: str) -> str | None:
    """The path of notebook ``name`` relative to ``root`` (as a URL path), if it is there."""
    for rel in (name, f"notebooks/{name}"):
        if (root / rel).is_file():
            return rel
    return None


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def server_command(
    port: int, ip: str, token: str, root: Path, default_url: str | None, extra: Sequence[str]
) -> list[str]:
    """The server's command line. It never holds the token (see ``server_env``): only an
    empty one, which disables authentication and is no secret."""
    cmd = [
        sys.executable,
        "-m",
        "jupyter_server",
        f"--ip={ip}",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--no-browser",
        f"--ServerApp.root_dir={root}",
        '--ServerApp.jpserver_extensions={"mlwidget_server": True, "voila.server_extension": True}',
    ]
    if not token:
        # JUPYTER_TOKEN="" would not do: the server generates a token when it is empty
        cmd.append("--IdentityProvider.token=")
    if default_url and server_option(extra, "default_url") is None:
        cmd.append(f"--ServerApp.default_url={default_url}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    cmd.extend(extra)
    return cmd


def server_env(token: str, store: str) -> dict[str, str]:
    """The server's environment: this one, with the token and the shared model store.

    jupyter_server's IdentityProvider takes its token from ``JUPYTER_TOKEN`` (and then does not
    generate one). Unlike a command line, a process's environment is readable only by its own
    user. Kernels started by the server inherit ``MLWIDGET_STORE``: every face shares one store.
    """
    env = dict(os.environ, MLWIDGET_STORE=store)
    env.pop("JUPYTER_TOKEN_FILE", None)
    if token:
        env["JUPYTER_TOKEN"] = token
    else:
        env.pop("JUPYTER_TOKEN", None)
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the server gets SIGTERM if this process dies without stopping it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def wait_until_ready(proc: subprocess.Popen, url: str, token: str, timeout: float) -> None:
    request = urllib.request.Request(f"{url}api/status")
    if token:
        request.add_header("Authorization", f"token {token}")
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"The Jupyter server exited (code {proc.returncode}) before it answered; "
                "its log above says why."
            )
        try:
            with urllib.request.urlopen(request, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"The Jupyter server did not answer at {url} in {timeout:.0f} s.")
        time.sleep(0.25)


def stop(proc: subprocess.Popen) -> int:
    """SIGTERM the server (it shuts its kernels down), then kill it if it hangs."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(
                f"mlwidget: the Jupyter server did not stop in {STOP_TIMEOUT:.0f} s: killing it.",
                file=sys.stderr,
                flush=True,
            )
            proc.kill()
            proc.wait(10)
    return proc.returncode


def summary(
    url: str, token: str, root: Path, store: str, lab: str | None, dashboard: str | None
) -> str:
    """What to open: the lines printed once the server answers. The URLs to open in a browser
    carry the token; the REST endpoint and the curl line do not (curl sends it in a header)."""
    q = f"?token={token}" if token else ""
    api = f"{url}mlhandler/{DEMO_NAME}"
    auth = f'-H "Authorization: token {token}" ' if token else ""
    rows = []
    if lab:
        rows.append(("Tutorial (JupyterLab)", f"{url}{lab}{q}"))
    if dashboard:
        rows.append(("Dashboard (Voila)", f"{url}voila/render/{dashboard}{q}"))
    rows += [
        ("Model page", f"{api}{q}"),
        ("REST endpoint", api),
        ("Example query", f"{api}?{EXAMPLE_QUERY}" + (f"&token={token}" if token else "")),
        ("Token", token or "(none: authentication is disabled)"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines = ["", f"mlwidget is serving the Titanic demo model {DEMO_NAME!r}.", ""]
    lines += [f"  {label + ':':<{width}}{value}" for label, value in rows]
    lines += [
        "",
        "Try it (the guide's passenger; the answer is [0], did not survive):",
        f'  curl {auth}"{api}?{EXAMPLE_QUERY}"',
        "",
        "The README's curl examples use these variables:",
        f"  export URL={url.rstrip('/')} TOKEN={token}",
        "",
    ]
    if not lab:
        lines.append(
            "JupyterLab is not installed here, so there is no notebook editor: "
            "`pip install jupyterlab` and restart to open notebooks/titanic.ipynb."
        )
    if not dashboard:
        lines.append(
            f"No dashboard.ipynb under {root}: run from the mlwidget repository (or pass "
            "--root-dir) for the Voila dashboard; the model page above has the same forms."
        )
    lines += [f"Model store: {store}", f"Root folder: {root}", "Press Ctrl-C to stop the server."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    if args.store:
        os.environ["MLWIDGET_STORE"] = str(Path(args.store).expanduser().resolve())
    from mlwidget.store import default_root

    store = str(default_root())
    if not args.no_demo:
        print(f"mlwidget: {ensure_demo_model(store)}", flush=True)
    if args.prepare:
        print(f"mlwidget: model store {store}", flush=True)
        return 0

    root = Path(args.root_dir).expanduser() if args.root_dir else default_root_dir(Path.cwd())
    root = root.resolve()
    token = secrets.token_hex(24) if args.token is None else args.token
    port = args.port if args.port is not None else pick_port(args.ip)
    host = "127.0.0.1" if args.ip in ("0.0.0.0", "*", "", "::") else args.ip
    if ":" in host:
        host = f"[{host}]"
    base_url = "/" + (server_option(extra, "base_url") or "/").strip("/") + "/"
    base_url = base_url.replace("//", "/")
    url = f"http://{host}:{port}{base_url}"

    tutorial = find_notebook(root, "titanic.ipynb")
    dashboard = find_notebook(root, "dashboard.ipynb")
    lab = None
    if has_module("jupyterlab"):
        lab = f"lab/tree/{tutorial}" if tutorial else "lab"
    elif has_module("notebook"):
        lab = f"tree/{tutorial}" if tutorial else "tree"
    if lab:
        default_url = "/" + lab
    elif dashboard:
        default_url = f"/voila/render/{dashboard}"
    else:
        default_url = f"/mlhandler/{DEMO_NAME}"

    collect_nothing_at_exit()  # this process holds pandas and scikit-learn: exit in a blink
    proc = subprocess.Popen(
        server_command(port, args.ip, token, root, default_url, extra),
        env=server_env(token, store),
        stdin=subprocess.DEVNULL,
        cwd=root,
        start_new_session=True,  # Ctrl-C reaches this process only; it stops the server
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )

    def on_signal(signum: int, frame: Any) -> None:
        raise _Stop(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            wait_until_ready(proc, url, token, READY_TIMEOUT)
        except RuntimeError as exc:
            print(f"mlwidget: {exc}", file=sys.stderr, flush=True)
            stop(proc)
            return 1
        print(summary(url, token, root, store, lab, dashboard), flush=True)
        if args.browser:
            import webbrowser

            webbrowser.open(
                f"{url}{default_url.lstrip('/')}" + (f"?token={token}" if token else "")
            )
        code = proc.wait()
        print(f"mlwidget: the Jupyter server exited (code {code}).", file=sys.stderr, flush=True)
        return code
    except _Stop:
        print("\nmlwidget: stopping the Jupyter server...", file=sys.stderr, flush=True)
        # a second Ctrl-C while stopping must not leave the server behind
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        stop(proc)
        print("mlwidget: stopped.", file=sys.stderr, flush=True)
        return 0
    finally:
        if proc.poll() is None:
            stop(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
