"""``jupyter mlwidget``: serve the bundled Titanic demo model and print the URLs that matter.

1. Make sure the demo model ``titanic`` exists in the model store (the MLHandler guide's
   configuration, trained on the Titanic CSV shipped inside this package; nothing is downloaded).
2. Run a Jupyter server with the ``mlwidget_server`` and Voila extensions in this process
   (jupyter_server's ``ExtensionApp.launch_instance``, see ``launcher.py``) and, once it
   listens, print the tutorial, dashboard and REST URLs, a curl line and the token. The token
   reaches the server as configuration, never on a command line (which any local user can read
   with ``ps``); the port is the server's own choice (``port_retries``), so no other process
   can take it in between.
3. Ctrl-C or SIGTERM stops the server cleanly (its kernels are shut down first; a fit still
   running is abandoned), within seconds; a server that has not exited after
   ``launcher.STOP_TIMEOUT`` seconds exits regardless.

``jupyter mlwidget --prepare`` only does step 1 (Binder's ``postBuild`` uses it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .workers import collect_nothing_at_exit

DEMO_NAME = "titanic"
DEMO_CSV = Path(__file__).resolve().parent / "demo" / "titanic.csv"
# The MLHandler guide's "Creating New Models" configuration, without the guide's misspelled
# "SibSb" in cats (Gramex ignores it silently, mlwidget with a warning: the tutorial shows that;
# the demo's first screen has no warning). The model is the same: SibSp stays numeric either way.
DEMO_OPTIONS: dict[str, Any] = {
    "class": "LogisticRegression",
    "target_col": "Survived",
    "exclude": ["PassengerId", "Ticket", "Cabin", "Name"],
    "cats": ["Embarked", "Parch", "Pclass", "Sex"],
}
# The guide's passenger: a 22 year old man travelling third class with a sibling -> [0]
EXAMPLE_QUERY = "Sex=male&Age=22&SibSp=1&Parch=0&Fare=7.25&Pclass=3&Embarked=S"
DEFAULT_PORT = 8888
# Pass-through server options look like --ServerApp.base_url=/x/ or --VoilaConfiguration.theme=dark
PASSTHROUGH = re.compile(r"^--[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*(=.*)?$")
WILDCARD_IPS = ("0.0.0.0", "*", "", "::")


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


def summary(
    url: str, token: str, root: Path, store: str, lab: str | None, dashboard: str | None
) -> str:
    """What to open: the lines printed once the server listens. The URLs to open in a browser
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


def trust_clean_notebooks(notary: Any, root: Path, notebooks: Sequence[str | None]) -> None:
    """Record the bundled notebooks as trusted when they hold no outputs (there is nothing in
    them to trust), so that opening them does not log "Notebook ... is not trusted" each time.
    A notebook with outputs is left as it is: trusting those is the user's call."""
    import nbformat

    for rel in notebooks:
        if not rel:
            continue
        try:
            nb = nbformat.read(root / rel, as_version=4)
            if not any(c.get("outputs") for c in nb.cells) and not notary.check_signature(nb):
                notary.sign(nb)
        except Exception:  # cosmetic only: an unreadable notebook or signature store
            continue  # is Jupyter's to report when the notebook is opened


def server_config(
    args: argparse.Namespace, token: str, root: Path, default_url: str
) -> dict[str, Any]:
    """The server's configuration from the command's options (pass-through options, parsed by
    the server after it, override it). The token is configuration, not a command-line option:
    ``ps`` shows only what the user typed."""
    server: dict[str, Any] = {
        "ip": args.ip,
        # the default port, or one near it if it is taken: the server tries them as it binds
        "port": DEFAULT_PORT if args.port is None else args.port,
        "root_dir": str(root),
        "default_url": default_url,
        "open_browser": args.browser,
    }
    if args.port is not None:
        server["port_retries"] = 0  # the port asked for, or none
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        server["allow_root"] = True
    # an empty token disables authentication (JUPYTER_TOKEN="" would not: it is "unset")
    return {"ServerApp": server, "IdentityProvider": {"token": token}}


def server_url(serverapp: Any) -> str:
    """The URL the server listens at, with its base URL (a wildcard address as 127.0.0.1)."""
    host = "127.0.0.1" if serverapp.ip in WILDCARD_IPS else serverapp.ip
    if ":" in host:
        host = f"[{host}]"
    base_url = "/" + serverapp.base_url.strip("/") + "/"
    scheme = "https" if serverapp.certfile else "http"
    return f"{scheme}://{host}:{serverapp.port}{base_url.replace('//', '/')}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["keys"]:  # jupyter mlwidget keys create|list|revoke
        from .keys_cli import main as keys_main

        return keys_main(argv[1:])
    args, extra = parse_args(argv)
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

    from .launcher import MLWidgetLauncher, quiet_upstream_warnings, server_defaults

    def on_ready(serverapp: Any) -> None:
        served = serverapp.identity_provider.token  # the server's (a config file may set it)
        trust_clean_notebooks(serverapp.contents_manager.notary, root, [tutorial, dashboard])
        print(summary(server_url(serverapp), served, root, store, lab, dashboard), flush=True)

    # Kernels started by the server inherit the store; relative paths in pass-through options
    # are relative to the root folder.
    os.environ["MLWIDGET_STORE"] = store
    os.chdir(root)
    collect_nothing_at_exit()  # this process holds pandas and scikit-learn: exit in a blink
    config = server_defaults()  # kernel hygiene: culling, Voila's shutdown, encryption
    for section, values in server_config(args, token, root, default_url).items():
        config.setdefault(section, {}).update(values)
    quiet_upstream_warnings()
    MLWidgetLauncher.server_config = config
    MLWidgetLauncher.on_ready = on_ready
    MLWidgetLauncher.launch_instance(argv=list(extra))
    print("mlwidget: stopped.", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
