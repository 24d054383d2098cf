"""What a model's ``state.json`` records, built from what the caller gave: the description of a
data source, class names, JSON-safe parameters, the metadata of a model brought in fitted, and
the empty table left after the training data is deleted.

Not pure: ``initial`` reads the training data source (a file or a database) and loads the model
file at ``model.path`` (joblib.load); ``export_copy`` copies a stored model file to
``model.path``. It never opens the store: its callers (model.py, tasks.py) read the state under
the model's lock and commit what these build.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import joblib
import pandas as pd

from . import estimators as est
from . import options as opt
from . import versions
from .errors import BadRequest, MLWidgetError
from .sources import is_database, is_source


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def describe_source(data: Any) -> Any:
    """What ``?_model`` shows of a data source: a file's name, never a server path or a
    database URL (which may hold a password)."""
    if isinstance(data, str | os.PathLike):
        return os.path.basename(str(data))
    if is_source(data):
        url = str(data["url"])
        shown = "(database)" if is_database(url) else os.path.basename(url)
        kept = ("ext", "sheet_name", "table", "query")
        return {k: v for k, v in data.items() if k in kept} | {"url": shown}
    if data is None:
        return None
    return type(data).__name__


def class_name(cls: type) -> str:
    """The short name of a catalogued scikit-learn class, else its dotted path."""
    from .estimators import catalog

    if catalog().get(cls.__name__) is cls:
        return cls.__name__
    return f"{cls.__module__}.{cls.__qualname__}"


def jsonable_params(
    cls: type, params: dict[str, Any], allowed_classes: Iterable[str] = ()
) -> dict[str, Any]:
    """Validate params by building the estimator, and keep them in a JSON-safe form."""
    est.make_estimator(cls, params, tuple(allowed_classes))
    out = {}
    for key, value in params.items():
        safe = est.to_jsonable(value)
        if safe != value and not isinstance(value, tuple):
            raise BadRequest(
                f"Parameter {key!r} of {cls.__name__} must be given as a plain value "
                f"(number, string, true/false, none or a list), got {type(value).__name__}."
            )
        out[key] = safe
    return out


def export_copy(written: Path, path: str) -> None:
    """Copy the model file ``written`` in the store to the Gramex ``model.path`` (server config
    or Python only): the same bytes, not the pipeline pickled a second time."""
    import shutil

    from .store import atomic_write

    target = Path(path)

    def copy(tmp: str) -> None:
        shutil.copyfile(written, tmp)

    try:
        atomic_write(target, copy)
    except OSError as exc:
        raise BadRequest(
            f"Could not write the model file at model.path ({target.name!r}): {exc.strerror}."
        ) from None


def imported_meta(model: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """``fitted`` for a model brought in already fitted (Gramex's ``model.path``)."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    kind = est.estimator_kind(type(final)) if hasattr(final, "get_params") else None
    return {
        "model": type(final).__name__,
        "params": est.to_jsonable(final.get_params(deep=False))
        if hasattr(final, "get_params")
        else {},
        "kind": kind,
        "trained_at": None,
        "score": None,
        "metric": None,
        "rows": None,
        "target_col": options.get("target_col"),
        "target_dtype": None,
        "config": None,
        "sklearn_version": None,
        "imported_from": os.path.basename(str(options.get("path"))),
        "data": None,
    }


def emptied_or_404(name: str, state: Mapping[str, Any]) -> pd.DataFrame:
    """``emptied_data``, or NotFound for a model that never had training data."""
    from .errors import NotFound

    empty = emptied_data(state)
    if empty is None:
        raise NotFound(
            f"Model {name!r} has no training data. Add some with append() or retrain(data)."
        )
    return empty


def emptied_data(state: Mapping[str, Any]) -> pd.DataFrame | None:
    """The empty table left by delete_data(): the stored columns, typed as they were (None
    when the model never had training data)."""
    columns = state.get("data_columns")
    if columns is None:
        return None
    dtypes = state.get("data_dtypes") or {}

    def typed(column: str) -> pd.Series:
        try:
            return pd.Series(dtype=pd.api.types.pandas_dtype(dtypes.get(column, object)))
        except (TypeError, ValueError):
            return pd.Series(dtype=object)

    frame = pd.DataFrame({i: typed(c) for i, c in enumerate(columns)})
    frame.columns = list(columns)
    return frame


def staged_options(
    stored: Mapping[str, Any],
    options: dict[str, Any],
    params: Mapping[str, Any],
    allowed_classes: Iterable[str] = (),
) -> dict[str, Any]:
    """The options after a ``configure``: ``stored`` with a new class (which resets the
    parameters), new parameters (typed and validated against the class) and new options."""
    from . import options as opt

    allowed_classes = tuple(allowed_classes)
    current = dict(stored)
    options = dict(options)
    new_class = options.pop("class", None)
    if new_class is not None:
        cls = est.resolve_class(new_class, allowed_classes)
        if class_name(cls) != current.get("class"):
            current["params"] = {}
        current["class"] = class_name(cls)
    if params:
        if not current.get("class"):
            raise BadRequest(
                f"Got {', '.join(map(repr, params))}, which are neither mlwidget options "
                f"({', '.join(opt.OPTION_NAMES)}) nor usable without a model class. "
                "Set class first."
            )
        cls = est.resolve_class(current["class"], allowed_classes)
        unknown = [k for k in params if k not in est.valid_param_names(cls)]
        if unknown:
            raise BadRequest(
                f"{', '.join(map(repr, unknown))} is neither an mlwidget option "
                f"({', '.join(opt.OPTION_NAMES)}) nor a parameter of {cls.__name__} "
                f"({', '.join(est.valid_param_names(cls))}). Check the spelling."
            )
        typed = est.parse_params(cls, dict(params), allowed_classes)
        current["params"] = {**(current.get("params") or {}), **typed}
    if current.get("class"):
        cls = est.resolve_class(current["class"], allowed_classes)
        current["params"] = jsonable_params(cls, current.get("params") or {}, allowed_classes)
    current.update(options)
    return current


def appended(current: pd.DataFrame | None, table: pd.DataFrame) -> pd.DataFrame:
    """The training data with ``table``'s rows added (its columns must match ``current``'s;
    values are cast to the stored dtypes)."""
    from . import schema

    if current is None:
        return table.reset_index(drop=True)
    old, new = [str(c) for c in current.columns], [str(c) for c in table.columns]
    missing = [c for c in old if c not in new]
    extra = [c for c in new if c not in old]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(map(repr, missing))}")
        if extra:
            parts.append(f"unexpected {', '.join(map(repr, extra))}")
        raise BadRequest(
            "Expected the appended rows to have the training data's columns "
            f"({', '.join(old)}); got {'; '.join(parts)}. Nothing was appended."
        )
    table = schema.align_dtypes(table[list(current.columns)], current)
    return pd.concat([current, table], ignore_index=True)


def unapplied(
    stored: Mapping[str, Any],
    options: dict[str, Any],
    params: Mapping[str, Any],
    data: Any,
    allowed_classes: Iterable[str] = (),
) -> list[str]:
    """What differs between the options given to open an existing model and the stored ones
    (each as ``key=value (stored: ...)``): the stored state wins, so these are not applied."""
    options = dict(options)
    differ = []
    if options.get("class") is not None:
        given = options.pop("class")
        try:
            given = class_name(est.resolve_class(given, tuple(allowed_classes)))
        except MLWidgetError:
            pass
        if given != stored.get("class"):
            differ.append(f"class={given} (stored: {stored.get('class')})")
    for key, value in options.items():
        if stored.get(key) != value:
            differ.append(f"{key}={value!r} (stored: {stored.get(key)!r})")
    for key, value in params.items():
        if (stored.get("params") or {}).get(key) != est.to_jsonable(value):
            differ.append(f"{key}={value!r}")
    if data is not None and describe_source(data) != stored.get("data"):
        differ.append("data (the stored training data is kept)")
    return differ


def warn_unapplied(
    name: str, stored: Mapping[str, Any], raw: dict[str, Any], base_dir: Any, allowed: Any
) -> None:
    """An existing model opened with options that differ from the stored ones: say which
    (the stored ones win)."""
    import warnings

    differ = unapplied_raw(stored, raw, base_dir, allowed)
    if differ:
        warnings.warn(
            f"Model {name!r} already exists in the store, so these were not applied: "
            f"{', '.join(differ)}. Apply them with model.configure(...) and then "
            "model.retrain(), or pass overwrite=True to start over.",
            UserWarning,
            stacklevel=3,
        )


def unapplied_raw(
    stored: Mapping[str, Any], raw: dict[str, Any], base_dir: Any, allowed_classes: Iterable[str]
) -> list[str]:
    """``unapplied`` for the raw keyword arguments of ``MLModel(...)`` (nothing if invalid)."""
    try:
        options, params, _ = opt.split(raw)
        data = options.pop("data", None)
        options = opt.clean(options, base_dir)
    except MLWidgetError:
        return []
    return unapplied(stored, options, params, data, allowed_classes)


class Initial(NamedTuple):
    """What a new model starts from (``initial``): unpacks as
    ``options, table, imported, warnings, notes``."""

    options: dict[str, Any]  # defaults filled in, class and parameters validated
    table: pd.DataFrame | None  # the training data read from ``data``
    imported: Any  # a fitted model loaded from ``model.path``, else None
    warnings: list[str]  # about the options and the data source
    notes: list[str]  # the class chosen when none was given (``default_class``)


def initial(raw: dict[str, Any], base_dir: Any, allowed_classes: Iterable[str] = ()) -> Initial:
    """A new model's options (defaults filled in, class and parameters validated), its
    training table (read from the data source: a file or a database), a fitted model loaded
    from ``model.path``, the warnings seen and the notes on a class chosen for it.
    ``base_dir`` is the folder relative file names in a server config are read from."""
    from . import options as opt
    from .sources import source_warnings
    from .tables import read_table

    allowed_classes = tuple(allowed_classes)
    options, params, warns = opt.split(raw)
    data = options.pop("data", None)
    options = opt.clean(options, base_dir)
    if isinstance(data, str | os.PathLike) and base_dir is not None:
        data = str(Path(base_dir, data).expanduser())
    elif is_source(data) and not is_database(str(data["url"])) and base_dir is not None:
        data = {**data, "url": str(Path(base_dir, data["url"]).expanduser())}
    warns = warns + source_warnings(data)
    merged = {**opt.DEFAULTS, **options}
    merged["params"] = {}
    if merged["class"] is not None:
        cls = est.resolve_class(merged["class"], allowed_classes)
        merged["class"] = class_name(cls)
        merged["params"] = jsonable_params(cls, est.parse_params(cls, params), allowed_classes)
    elif params:
        raise BadRequest(
            f"Got estimator parameters {', '.join(map(repr, params))} but no model class. "
            "Give class (e.g. class_='LogisticRegression') with them, or check the option names: "
            f"{', '.join(opt.OPTION_NAMES)}."
        )
    merged["data"] = describe_source(data)
    table = read_table(data) if data is not None else None
    imported = None
    path = merged.get("path")
    if path and os.path.isfile(path) and (table is None or merged["class"] is None):
        try:
            imported = joblib.load(path)
        except Exception as exc:
            raise BadRequest(
                f"Expected a joblib/pickle model file at model.path "
                f"({os.path.basename(path)!r}), but it could not be loaded: {exc}."
            ) from None
    notes = default_class(merged, table) if imported is None else []
    return Initial(merged, table, imported, warns, notes)


def default_class(options: dict[str, Any], table: pd.DataFrame | None) -> list[str]:
    """Give ``options`` a class when they have a target but none: the default for the kind of
    problem the target column shows (see suggest.py). Returns the note that says so (a list
    of sentences, empty when nothing was chosen)."""
    from . import suggest

    target = options.get("target_col")
    if not options.get("class") and not target and table is not None:
        return suggest.pick_note(table)  # what it would pick (not trained: no target)
    if options.get("class") or not target or table is None:
        return []
    columns = [str(c) for c in table.columns]
    if str(target) not in columns:
        raise BadRequest(
            f"Expected the target column {target!r} in the training data, got columns "
            f"{', '.join(columns)}. Set target_col to one of them."
        )
    y = table.iloc[:, columns.index(str(target))].rename(target)
    kind, why = suggest.infer_kind(y)
    if len(table) and not suggest.has_values(y):  # a class that predicts one constant: refused
        raise BadRequest(f"No class was given, and {why}.")
    options["class"] = suggest.default_class(kind)
    options["params"] = {}
    return [f"No class was given: {why}; using {options['class']}."]


def record_fit(
    state: dict[str, Any], table: Any, result: Any, model_file: str, metric: str | None
) -> dict[str, Any]:
    """Record in ``state`` the fit ``result`` (a ``training.Fitted``) of ``table``, whose
    pipeline is stored in ``model_file``; returns the retrain answer."""
    if result.data_rows is not None:  # a source the worker read
        rows, columns = result.data_rows, list(result.data_columns or ())
    else:
        rows, columns = len(table), [str(c) for c in table.columns]
    fitted = {**result.fitted, "trained_at": now(), "data_rows": rows}
    state["data_rows"] = rows
    state["data_columns"] = columns
    if state.get("data_source"):
        fitted["source"] = state["data_source"]["source"]
    fitted["data"] = state.get("data")
    versions.materialize(state)  # a fit from before versions existed stays as version 1
    state["model"] = model_file
    state["fitted"] = fitted
    state["schema"] = result.features
    state["warnings"] = list(state.get("created_warnings") or []) + result.warnings
    number = versions.add(state)
    return {
        "score": result.fitted["score"] if result.asked is None else result.asked,
        "metric": result.fitted["metric"] if result.asked is None else metric,
        "on": versions.score_on(fitted) if result.asked is None else "training",
        "cv_score": result.fitted.get("cv_score"),
        "rows": fitted["rows"],
        "model": fitted["model"],
        "target_col": fitted["target_col"],
        "version": number,
        "warnings": state["warnings"],
    }


def delete_answer(name: str, item: str, done: bool) -> dict[str, Any]:
    """Gramex's answer to a DELETE of ``item`` ("model" or "cache"): deleted, or absent."""
    return {"name": name, "deleted": [item] if done else [], "absent": [] if done else [item]}
