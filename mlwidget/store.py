"""The on-disk model store that the notebook kernel and the Jupyter server share.

Layout: ``<root>/<name>/`` holds ``state.json`` (options, fitted-model metadata, the names of the
current data and model files), the data file ``data-<version>.pkl``, the fitted pipeline
``model-<version>.joblib`` and a ``.lock`` file. A change is committed by writing new files under
new names and then atomically replacing ``state.json``; a reader therefore sees either the old
state or the new one, never half of a write. Writers hold the model's lock (an OS file lock, so
it works across processes and is released when a process dies).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import filelock

from .errors import BadRequest, Busy, Conflict

ENV_VAR = "MLWIDGET_STORE"
STATE = "state.json"
STAGING = ".jobs"  # a model's files written by worker processes, not yet committed
STORE_ID = ".store-id"  # the store's random id (Store.identity)
STAGING_AGE = 86_400.0  # seconds after which a staged file nobody committed is removed
LOCK_TIMEOUT = 600.0
MAX_NAME = 128
_NAME = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9_.\-]{{0,{MAX_NAME - 1}}}")  # fullmatch


def default_root() -> Path:
    """``$MLWIDGET_STORE`` if set, else ``<jupyter data dir>/mlwidget/models``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "mlwidget" / "models"


def safe_name(text: str) -> str:
    """A model name from any text: characters other than letters, digits, ``-_.`` become ``-``."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "-", str(text)).strip("-")
    return name.lstrip(".") or "model"


# Names a server cannot serve a model at: mlhandler/v2 is the Open Inference Protocol's path.
RESERVED = ("v2",)


def check_name(name: Any) -> str:
    """``name`` if it can name a model (one the server can reach), else a BadRequest."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        suggestion = safe_name(str(name))[:MAX_NAME].rstrip("-.") or "model"
        raise BadRequest(
            f"Expected a model name of letters, digits, '-', '_' and '.' (at most {MAX_NAME} "
            f"characters), got {name!r}"
            + (f" ({len(name)} characters)" if len(str(name)) > MAX_NAME else "")
            + f". Try {suggestion!r}."
        )
    if name in RESERVED:
        raise BadRequest(
            f"Expected a model name other than {name!r}: mlhandler/{name} is the Open Inference "
            "Protocol's path, so a model of that name could not be reached. Choose another name, "
            f"such as 'model-{name}'."
        )
    return name


def name_key(name: str) -> str:
    """What two model names are compared by (``Store.lookalike``): case folded, trailing dots
    dropped, so ``Titanic`` and ``titanic.`` are ``titanic``."""
    return name.rstrip(".").casefold()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, writer: Callable[[str], None]) -> None:
    """Write through ``writer(tmp_path)`` then rename over ``path``; never a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def dump_model(obj: Any, path: str) -> None:
    """Pickle a fitted model to ``path``: a plain pickle (protocol 5), which ``joblib.load``
    and ``pickle.load`` both read. Python's C pickler writes a small pipeline about five times
    faster than ``joblib.dump``'s pure-Python one, and a forest's arrays without copies."""
    import pickle

    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=5)


def _fresh_name(kind: str, suffix: str) -> str:
    """A new data/model file name in a model's folder (``model-<time>.joblib``)."""
    return f"{kind}-{time.time_ns():x}{suffix}"


def _abandoned(path: Path) -> bool:
    """Whether a staged file will never be committed. A job removes its own staged file when
    it is not committed; what is left is half a file from a worker killed while writing it
    (its process id is in the name: ``.model-<time>-<pid>.joblib.<random>.tmp``), a job's
    answer whose server is gone (``result-<job>-<pid>.json``), or a file of a server killed
    before its commit, a day later."""
    try:
        if time.time() - path.stat().st_mtime > STAGING_AGE:
            return True
    except OSError:
        return False
    # half a model file (its writer's pid), or a job's answer (its server's pid: jobs/results.py)
    writer = re.search(r"-(\d+)\.joblib\..*\.tmp$", path.name) or re.match(
        r"result-[0-9a-f]+-(\d+)\.json(\.tmp)?$", path.name
    )
    if writer is None:
        return False
    try:
        os.kill(int(writer.group(1)), 0)
    except ProcessLookupError:
        return True  # the writer is gone: its file stays half written
    except (OSError, OverflowError):
        return False
    return False


def write_json(path: Path, obj: Any) -> None:
    def writer(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(obj, default=str))  # compact: json's C encoder

    atomic_write(path, writer)


class Store:
    """A folder of models. Every process that points at the same folder sees the same models."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_root()

    @classmethod
    def of(cls, store: str | os.PathLike[str] | Store | None) -> Store:
        """``store`` if it is a Store, else the Store at that folder (None: the default)."""
        return store if isinstance(store, Store) else cls(store)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def dir(self, name: str) -> Path:
        return self.root / check_name(name)

    def exists(self, name: str) -> bool:
        return (self.dir(name) / STATE).is_file()

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / STATE).is_file())

    def lookalike(self, name: str) -> str | None:
        """The existing model whose name differs from ``name`` only by case or trailing dots
        (``Titanic`` and ``titanic.`` beside ``titanic``: one name to a person, and one folder
        on a case-insensitive file system or on Windows, which drops trailing dots); else None."""
        key = name_key(name)
        return next((n for n in self.names() if n != name and name_key(n) == key), None)

    def check_new(self, name: str, exact: bool = True) -> str:
        """``name`` if a new model may take it, else a Conflict naming the existing model:
        a model of that very name (unless ``exact`` is False: the caller opens it), or one
        whose name differs only by case or trailing dots. Nothing is written either way."""
        check_name(name)
        if exact and self.exists(name):
            raise Conflict(
                f"A model named {name!r} exists already, so nothing was created or changed. "
                f"Choose another name, or open {name!r} to change it."
            )
        other = self.lookalike(name)
        if other is not None:
            raise Conflict(
                f"A model named {other!r} exists already, and {name!r} differs from it only by "
                "case or a trailing dot, so nothing was created. Choose a name that differs by "
                f"more, or open {other!r}."
            )
        return name

    # --- state ---------------------------------------------------------------------------

    def signature(self, name: str) -> tuple[int, int, int] | None:
        """Changes whenever ``state.json`` is replaced (another process committed)."""
        try:
            st = os.stat(self.dir(name) / STATE)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read_state(self, name: str) -> tuple[dict[str, Any] | None, tuple[int, int, int] | None]:
        path = self.dir(name) / STATE
        for _ in range(50):
            sig = self.signature(name)
            if sig is None:
                return None, None
            try:
                with open(path, encoding="utf-8") as handle:
                    state = json.load(handle)
            except FileNotFoundError:
                continue
            except json.JSONDecodeError:
                time.sleep(0.01)  # cannot happen with atomic replace; be defensive anyway
                continue
            if self.signature(name) == sig:
                return state, sig
        raise Conflict(f"Model {name!r} is changing too fast to read. Try again.")

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        folder = self.dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(folder / ".lock"), timeout=timeout)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise Busy(
                f"Model {name!r} is busy with another change (training or appending). "
                "Try again when it finishes."
            ) from None
        try:
            yield
        finally:
            lock.release()

    def commit(self, name: str, state: dict[str, Any]) -> None:
        """Replace the model's state (call with the lock held), then drop unreferenced files."""
        folder = self.dir(name)
        state["version"] = int(state.get("version", 0)) + 1
        state["updated_at"] = time.time()
        write_json(folder / STATE, state)
        self._collect(folder, state)

    def new_file(self, name: str, kind: str, suffix: str, writer: Callable[[str], None]) -> str:
        """Write a new data/model file atomically under a fresh name; returns its file name."""
        folder = self.dir(name)
        filename = _fresh_name(kind, suffix)
        atomic_write(folder / filename, writer)
        return filename

    def staging(self, name: str) -> Path:
        """Where a worker process writes a model file before its commit: inside the model's
        folder (the same file system, so moving it in is a rename; gone with the model)."""
        return self.dir(name) / STAGING

    def identity(self) -> str:
        """This store's random id, kept in ``<root>/.store-id`` (written once): a Dask worker
        that reads the same id there sees the same files, and writes a fitted model into the
        staging folder itself instead of sending it back (see ``sees_store``)."""
        marker = self.root / STORE_ID
        try:
            return marker.read_text().strip()
        except FileNotFoundError:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write(
                marker, lambda tmp: None if Path(tmp).write_text(uuid.uuid4().hex) else None
            )
            return marker.read_text().strip()

    def adopt_file(self, name: str, kind: str, suffix: str, staged: str) -> str:
        """Move ``staged`` (a file in ``staging(name)``) into the model's folder under a fresh
        name (call with the lock held); returns that name."""
        folder = self.dir(name)
        source = Path(staged)
        if source.parent != folder / STAGING:
            raise ValueError(f"{source.name!r} is not a staged file of model {name!r}")
        filename = _fresh_name(kind, suffix)
        os.replace(source, folder / filename)
        _fsync_dir(folder)
        return filename

    def _collect(self, folder: Path, state: dict[str, Any]) -> None:
        keep = {STATE, ".lock", state.get("data"), state.get("model")}
        keep |= {v.get("model") for v in state.get("versions") or ()}  # kept versions' files
        for path in folder.iterdir():
            # With the lock held, temp files are debris from a killed writer, and data/model
            # files that the new state does not name are superseded. A reader that read the
            # previous state just before this retries with the new one (see MLModel._load).
            stale = path.name.startswith(("data-", "model-")) or path.name.endswith(".tmp")
            if stale and path.name not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()
        with contextlib.suppress(OSError):
            for path in (folder / STAGING).iterdir():
                if _abandoned(path):
                    with contextlib.suppress(OSError):
                        path.unlink()

    def remove(self, name: str) -> None:
        """Delete a model folder entirely."""
        import shutil

        folder = self.dir(name)
        with self.lock(name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(folder / STATE)
        shutil.rmtree(folder, ignore_errors=True)


def sees_store(stage: str, store_id: str) -> bool:
    """Whether this process sees the store whose id is ``store_id`` at the staging folder
    ``stage`` (``<root>/<model>/.jobs``): shared storage, or the same machine."""
    try:
        return (Path(stage).parents[1] / STORE_ID).read_text().strip() == store_id
    except (OSError, IndexError):
        return False
