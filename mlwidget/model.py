"""MLModel: the public face of one named model (train, predict, score, append, configure).

No HTTP and no widgets: the faces parse their input, call an MLModel and render what it returns.
Reads go through the model's repository (repo.py: snapshots, reloaded when another process
commits); every write is its one transaction: changes in changes.py, fits in tasks.py (jobs:
model_jobs.py), versions in history.py, keys in sharing.py; explain() is explaining.py's."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from . import changes as changes_
from . import chunked, describe, display, importance, predicting, predlog, served, tasks
from . import estimators as est
from . import jobs as jobs_
from . import state as state_
from .errors import BadRequest, MLWidgetError, NotFound
from .history import VersionsMixin
from .model_jobs import JobsMixin
from .removal import RemovalMixin
from .repo import ModelRepo, Transaction
from .sharing import SharingMixin
from .snapshot import Snapshot
from .store import LOCK_TIMEOUT, Store, check_name
from .tables import from_query, read_table

T = TypeVar("T")


def list_models(store: str | os.PathLike[str] | Store | None = None) -> list[str]:
    """Names of the models in a store (default: the shared default store)."""
    return Store.of(store).names()


class MLModel(
    JobsMixin, VersionsMixin, SharingMixin, RemovalMixin, importance.ExplainMixin, served.Mixin
):
    """A named scikit-learn model in the shared store.

    ``MLModel(name, data=..., class_=..., target_col=..., ...)`` creates the model if the store has
    none by that name, training it once when given data and a class or a target column (no
    class: the default for the target's kind, said in ``info()["notes"]``); if the model
    exists it is opened and the stored state wins (change it with :meth:`configure`, or pass
    ``overwrite=True`` to start over; ``create=True`` only creates: a model of that name is a
    Conflict, and nothing is changed). A new name that differs from an existing model's only by
    case or a trailing dot (``Titanic`` beside ``titanic``) is a Conflict naming that model.
    Options may also come Gramex-style:
    ``model={"class": ..., "target_col": ..., "params": {...}}``. Keys that are not option names
    are estimator hyper-parameters.
    """

    # False: every prediction comes from the pipeline itself (to compare against the fast path)
    fast_path: bool = True
    # Seconds a write waits for another process's (or thread's) change to finish before Busy
    # (409). The server uses 0 and waits on its event loop, holding no worker thread.
    lock_timeout: float = LOCK_TIMEOUT

    def __init__(
        self,
        name: str,
        data: Any = None,
        model: Mapping[str, Any] | None = None,
        store: str | os.PathLike[str] | Store | None = None,
        overwrite: bool = False,
        create: bool = False,
        allowed_classes: Iterable[str] = (),
        base_dir: str | os.PathLike[str] | None = None,
        executor: str | None = None,
        dask_scheduler: str | None = None,
        job_timeout: float | None = None,
        dask_cluster: Any = None,
        dask_worker_wait: float | None = None,
        **options: Any,
    ) -> None:
        self.name = check_name(name)
        self.store = Store.of(store)
        self.allowed_classes = tuple(allowed_classes)
        # where jobs run (docs/jobs.md): the arguments, else $MLWIDGET_EXECUTOR and the
        # $MLWIDGET_DASK_* variables, else worker processes; a server sets its own
        self.runner = jobs_.shared_runner(
            executor, dask_scheduler, job_timeout, "process", dask_cluster, dask_worker_wait
        )
        # this model's jobs on the process's board (jobs/job.py): one running writer at a time
        self.job_key = (str(self.store.root), self.name)
        self.repo = ModelRepo(self.store, self.name)
        raw = dict(options)
        if model is not None:
            raw["model"] = dict(model)
        if data is not None:
            raw["data"] = data
        if create and overwrite:
            raise BadRequest(
                "Expected create=True (only create a new model) or overwrite=True (replace "
                "one), got both. Pass one of them."
            )
        if overwrite or not self.store.exists(self.name):
            self._create(raw, base_dir, overwrite, create)
            self.snapshot()
        elif create:
            self.store.check_new(self.name)  # the Conflict naming it
        else:
            self.snapshot()
            if raw:
                stored = self.snapshot().options
                state_.warn_unapplied(self.name, stored, raw, base_dir, self.allowed_classes)

    @classmethod
    def open(
        cls,
        name: str,
        store: str | os.PathLike[str] | Store | None = None,
        allowed_classes: Iterable[str] = (),
        **run: Any,
    ) -> MLModel:
        """Attach to an existing model; NotFound if the store has none by that name. ``run``:
        ``executor``, ``dask_scheduler``, ``dask_cluster``, ``dask_worker_wait``,
        ``job_timeout`` as for ``MLModel(...)``."""
        st = Store.of(store)
        if not st.exists(check_name(name)):
            known = ", ".join(st.names()) or "none yet"
            raise NotFound(
                f"No model named {name!r} in the store. Known models: {known}. "
                "Create it with MLModel(name, data=..., class_=...)."
            )
        return cls(name, store=st, allowed_classes=allowed_classes, **run)

    def __repr__(self) -> str:  # the latest commit (a stat when nothing changed)
        with contextlib.suppress(MLWidgetError, OSError):
            return display.model_repr(self.name, self.snapshot())
        return display.model_repr(self.name, self.repo.snapshots.cached)

    # -----------------------------------------------------------------------------------------
    # state

    def _create(self, raw: dict[str, Any], base_dir: Any, overwrite: bool, create: bool) -> None:
        """Commit a new model's options and data (one transaction), then train it, when it can
        be trained, through the same job path as a retrain."""
        # before anything is read or written (even the lock's folder): a name that differs
        # from an existing model's only by case or a trailing dot is refused
        if not (overwrite and self.store.exists(self.name)):
            self.store.check_new(self.name, exact=create)
        initial = state_.initial(raw, base_dir, self.allowed_classes)
        merged, table, imported = initial.options, initial.table, initial.imported
        with self.repo.transaction(self.lock_timeout, create=True) as tx:
            if tx.existed and not overwrite:
                tx.unchanged()
                if create:  # another process created it first
                    self.store.check_new(self.name)
                return  # another process created it first: open theirs
            changes_.first_state(tx, initial)
        if table is not None and merged["class"] is not None and imported is None:
            try:
                job = tasks.retrain_job(self, None, None, None, inline=True, keep_notes=True)
                self._with_cv(job)
            except MLWidgetError as exc:
                error = type(exc)(
                    f"{exc} The model {self.name!r} was saved untrained: fix it with "
                    "configure() and then retrain()."
                )
                error.reason = str(exc)  # without the advice (the server removes it)
                raise error from None

    def snapshot(self, version: Any = None) -> Snapshot:
        """The committed state that serves (a stat when nothing changed; see snapshot.py), or
        with ``version`` a kept version's, detached: its schema and fitted record, and its
        pipeline loaded from its own file (the last few asked for stay loaded)."""
        return self.repo.snapshot(version)

    @property
    def loaded(self) -> bool:
        """Whether this process holds the fitted model in memory."""
        return self.repo.loaded

    def release(self) -> None:
        """Let go of the loaded model (a reader still using it keeps it until it is done); the
        next prediction loads it again."""
        self.repo.release()

    def _read(self, operation: Callable[[Snapshot], T]) -> T:
        """``operation`` on one snapshot, retried on a newer one if its files were replaced."""
        return self.repo.read(operation)

    @contextlib.contextmanager
    def _write(self) -> Iterator[Transaction]:
        """The model's one write transaction (repo.py), refused (409) while a retrain job of
        this model runs, waiting ``lock_timeout`` for another process's change."""
        jobs_.board.check_free(self.job_key)
        with self.repo.transaction(self.lock_timeout) as tx:
            yield tx

    # -----------------------------------------------------------------------------------------
    # properties

    @property
    def options(self) -> dict[str, Any]:
        """The stored (staged) options."""
        return self.snapshot().options

    @property
    def target_col(self) -> str | None:
        return self.options.get("target_col")

    @property
    def kind(self) -> str | None:
        snap = self.snapshot()
        name = snap.options.get("class") or snap.fitted.get("model")
        if not name:
            return None
        try:
            return est.estimator_kind(est.resolve_class(name, self.allowed_classes))
        except MLWidgetError:
            return snap.fitted.get("kind")

    @property
    def pipeline(self) -> Any:
        """The fitted scikit-learn pipeline (or the model brought in), or None."""
        return self._read(Snapshot.pipeline)

    @property
    def estimator(self) -> Any:
        return predicting.final_step(self.pipeline)

    @property
    def features(self) -> list[dict[str, Any]]:
        """The feature schema the fitted model expects (names, kinds, categories, defaults)."""
        return [dict(f) for f in self.snapshot().schema]

    @property
    def path(self) -> Path | None:
        return self.snapshot().model_file

    # -----------------------------------------------------------------------------------------
    # reading

    def data(self) -> pd.DataFrame:
        """The stored training data: every row as loaded and appended. After delete_data(), an
        empty table with the stored columns (and dtypes); NotFound only for a model that never
        had training data."""
        snap, frame = self._read(lambda snap: (snap, snap.data()))
        return frame.copy() if frame is not None else state_.emptied_or_404(self.name, snap.state)

    def _fast(self, snap: Snapshot) -> Any:
        """The snapshot's compiled few-row predictor, unless ``fast_path`` is off."""
        return snap.fast() if self.fast_path else None

    def _require_pipeline(self, snap: Snapshot) -> Any:
        return predicting.require_pipeline(snap, self.name)

    def predict_query(self, args: Mapping[str, list[str]], fast_only: bool = False) -> Any:
        """Predictions for a GET query ``{column: [values]}`` (repeated keys give rows): those
        of ``predict(tables.from_query(args))``, without a DataFrame. ``fast_only=True``
        answers only from memory (the compiled predictor of the loaded model, up to
        ``fastpath.MAX_ROWS`` rows, in microseconds) and returns None for anything else (not
        loaded or compiled yet, more rows, an error to report), without loading or raising: a
        server calls it on its event loop, then ``predict_query(args)`` on a worker thread
        when it gets None."""
        if fast_only:
            try:
                fast = self.snapshot().loaded_fast() if self.fast_path else None
            except MLWidgetError:
                return None
            return None if fast is None else fast.predict(query=args)

        def answer(snap: Snapshot) -> Any:
            fast = self._fast(snap)
            out = fast.predict(query=args) if fast is not None else None
            return out if out is not None else self._predict(snap, from_query(args))

        return self._read(answer)

    @predlog.logs_python()  # logged when its options say so (docs/monitoring.md)
    def predict(self, data: Any) -> list[Any]:
        """One prediction per input row, in input order. ``data`` may also be chunks of rows
        (``pd.read_csv(path, chunksize=100_000)``): memory then stays bounded by a chunk."""
        if chunked.is_chunks(data):
            return [p for part in self.predict_parts(data) for p in part]
        return self._read(lambda snap: self._predict(snap, data))

    def predict_parts(self, chunks: Iterable[Any], convert: Callable | None = None) -> list[Any]:
        """Predictions of each chunk of rows (``convert``-ed, e.g. to JSON text), all from one
        version of the model, in order (see chunked.py)."""
        snap = self.snapshot()
        self._require_pipeline(snap)  # loaded once: a commit meanwhile changes nothing here
        fast = self._fast(snap)
        return chunked.predict_parts(
            lambda frame: predicting.predict(snap, self.name, frame, fast), chunks, convert
        )

    def _predict(self, snap: Snapshot, data: Any) -> list[Any]:
        return predicting.predict(snap, self.name, data, self._fast(snap))

    @predlog.logs_python(proba=True)
    def predict_proba(self, data: Any) -> list[dict[Any, float]]:
        """Class probabilities for each row, as ``{class: probability}``."""
        return self._read(
            lambda snap: predicting.predict_proba(snap, self.name, data, self._fast(snap))
        )

    def predict_table(self, data: Any) -> pd.DataFrame:
        """The input rows with the predictions in the target column, text features typed as
        the model reads them (``Age=22`` -> ``22.0``), as Gramex does."""
        frame = read_table(data)
        return self._read(lambda s: predicting.predict_table(s, self.name, frame, self._fast(s)))

    def predict_results(self, data: Any, proba: bool = False) -> dict[str, Any]:
        """``{"table", "predicted", "actual", "score", "proba"}``: the input as given plus
        ``predicted <target>``, ``P(<class>)`` columns if ``proba``, and, when the input has
        the target column, ``correct`` (classifiers) or ``error`` (regressors) and the score."""
        frame = read_table(data)
        return self._read(
            lambda s: predicting.predict_results(s, self.name, frame, self._fast(s), proba)
        )

    def score(self, data: Any, metric: str | None = None) -> dict[str, Any]:
        """Score the rows against their target column with any scikit-learn scorer name."""
        frame = read_table(data)
        return self._read(lambda snap: predicting.score(snap, self.name, frame, metric))

    # -----------------------------------------------------------------------------------------
    # information

    def info(self) -> dict[str, Any]:
        """The ``?_model`` answer: configured estimator, fitted one, stale flag, warnings; what
        the stored state says, never loading or compiling the model (``loaded``: whether this
        process holds it; ``predict_path`` is "not loaded" until the first prediction)."""
        return self._read(self._info)

    def _info(self, snap: Snapshot) -> dict[str, Any]:
        loaded, path, why = snap.serving(self.fast_path)
        return describe.info(self.name, snap.state, self.allowed_classes, path, why, loaded)

    def params_info(self) -> dict[str, Any]:
        """The ``?_params`` answer, as Gramex gives it: options, class + params, fitted attrs."""

        def answer(snap: Snapshot) -> dict[str, Any]:
            info = self._info(snap)
            return describe.params_info(info, predicting.final_step(snap.pipeline()))

        return self._read(answer)

    def widget(self) -> Any:
        """The interactive ipywidgets UI over this model."""
        from .widgets.app import build_app

        return build_app(self)

    # -----------------------------------------------------------------------------------------
    # writing

    def configure(
        self, changes: Mapping[str, Any] | None = None, /, class_: Any = None, **more: Any
    ) -> dict[str, Any]:
        """Stage a new class, hyper-parameters and options. Nothing is retrained.

        ``configure(class_="RandomForestClassifier", n_estimators=10)``, or the same as one
        mapping: ``configure({"class": "RandomForestClassifier", "n_estimators": 10})`` (any
        key works there, ``func`` or ``self`` included). Values may be strings (as from a URL):
        they are typed by the estimator's declared parameter constraints. A new class resets
        the parameters. Returns :meth:`info`.
        """
        changes = {**(changes or {}), **more}
        if class_ is not None:
            changes["class"] = class_
        asked = changes_.parse_configuration(changes)
        with self._write() as tx:
            changes_.configure(tx, asked, self.allowed_classes)
        return self.info()

    def append(self, data: Any) -> dict[str, Any]:
        """Add rows to the training data. Columns must match the stored table's."""
        table = read_table(data)
        if table.empty:
            raise BadRequest("Expected rows to append, got an empty table.")
        with self._write() as tx:
            return changes_.append(tx, self._read(Snapshot.data), table)

    def delete_model(self) -> dict[str, Any]:
        """Delete the fitted model and its versions; options and data stay. Idempotent, as
        Gramex: ``{"name", "deleted": ["model"], "absent": []}``, or ``"absent": ["model"]``."""
        with self._write() as tx:
            return changes_.delete_model(tx, self.name)

    def delete_data(self) -> dict[str, Any]:
        """Delete the training data; the fitted model keeps serving, :meth:`data` is then an
        empty table with the same columns, and the next append starts a new table.

        Idempotent: answers as :meth:`delete_model` does, with ``"cache"``.
        """
        with self._write() as tx:
            return changes_.delete_data(tx, self.name, self._read(Snapshot.data))
