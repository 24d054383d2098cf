"""Estimator lookup (an allow-list), typed parameter parsing, and the preprocessing pipeline.

Only scikit-learn's own estimators (``sklearn.utils.all_estimators``), XGBoost's XGBClassifier
and XGBRegressor when xgboost is installed (boosting.py), and dotted paths that the caller allows
explicitly can be named; nothing else is ever imported. Parameters that arrive as
strings (from a URL) are typed by the estimator's declared ``_parameter_constraints`` (see
param_types.py) and then checked by scikit-learn itself, so its own messages reach the user.
"""

from __future__ import annotations

import importlib
import inspect
import os
import threading
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils import all_estimators
from sklearn.utils._param_validation import validate_parameter_constraints

from . import boosting
from .errors import BadRequest
from .jsonable import to_jsonable as _to_jsonable
from .param_types import INNER_ESTIMATOR, INNER_ESTIMATORS, describe, parse_param

KINDS = ("classifier", "regressor", "clusterer", "transformer")


# scikit-learn's all_estimators() walks its packages with pkgutil, which is not thread-safe
# (two threads importing the same modules for the first time raise KeyError): the catalog is
# built once, under this lock, and then only read.
_CATALOG_LOCK = threading.Lock()
_CATALOG: tuple[dict[str, type], dict[str, str]] | None = None


def _build_catalog() -> tuple[dict[str, type], dict[str, str]]:
    global _CATALOG
    if _CATALOG is None:
        with _CATALOG_LOCK, warnings.catch_warnings():
            if _CATALOG is None:
                warnings.simplefilter("ignore")
                catalog = dict(all_estimators())
                kinds: dict[str, str] = {}
                for kind in ("transformer", "cluster", "regressor", "classifier"):
                    for name, _ in all_estimators(type_filter=kind):
                        kinds[name] = "clusterer" if kind == "cluster" else kind
                for name, (cls, kind) in boosting.classes().items():  # with the xgboost extra
                    catalog[name], kinds[name] = cls, kind
                _CATALOG = catalog, kinds
    return _CATALOG


def catalog() -> dict[str, type]:
    """scikit-learn's public estimators by short name."""
    return _build_catalog()[0]


def _kinds() -> dict[str, str]:
    """Estimator short name -> classifier, regressor, clusterer or transformer."""
    return _build_catalog()[1]


def list_estimators(kind: str | None = None) -> list[str]:
    """Short names of scikit-learn estimators, optionally of one kind."""
    if kind is None:
        return sorted(catalog())
    if kind not in KINDS:
        raise BadRequest(f"Unknown estimator kind {kind!r}. Expected one of {', '.join(KINDS)}.")
    return sorted(name for name, k in _kinds().items() if k == kind)


def estimator_kind(cls: type) -> str | None:
    """classifier, regressor, clusterer, transformer, or None for anything else."""
    kind = _kinds().get(cls.__name__)
    if kind and catalog().get(cls.__name__) is cls:
        return kind
    probe = _instantiate_default(cls)
    if is_classifier(probe):
        return "classifier"
    if is_regressor(probe):
        return "regressor"
    if getattr(probe, "_estimator_type", None) == "clusterer":
        return "clusterer"
    if hasattr(probe, "transform"):
        return "transformer"
    return None


def resolve_class(name: Any, allowed: Iterable[str] = ()) -> type:
    """Turn a class name into an estimator class, refusing anything not on the allow-list.

    Accepted: a scikit-learn short name (``LogisticRegression``), a scikit-learn dotted path that
    resolves inside scikit-learn's estimator list (``sklearn.linear_model.LogisticRegression``),
    or a dotted path listed in ``allowed``. Nothing else is imported.
    """
    if isinstance(name, type) and issubclass(name, BaseEstimator):
        qual = f"{name.__module__}.{name.__qualname__}"
        if catalog().get(name.__name__) is name or qual in set(allowed):
            return name
        raise BadRequest(
            f"Estimator class {qual} is not allowed. Use a scikit-learn estimator or add "
            f"{qual!r} to allowed_classes."
        )
    if not isinstance(name, str) or not name.strip():
        raise BadRequest(
            f"Expected an estimator class name such as 'LogisticRegression', got {name!r}."
        )
    name = name.strip()
    known = catalog()
    if name in known:
        return known[name]
    module, _, short = name.rpartition(".")
    if module.split(".")[0] == "sklearn" and short in known:
        cls = known[short]
        if cls.__module__ == module or cls.__module__.startswith(module + "."):
            return cls
    if name in set(allowed):
        try:
            cls = getattr(importlib.import_module(module), short)
        except (ImportError, AttributeError, ValueError) as exc:
            raise BadRequest(
                f"Allowed class {name!r} could not be imported ({type(exc).__name__}). "
                "Check that its package is installed in the server's environment."
            ) from None
        if not (isinstance(cls, type) and hasattr(cls, "fit") and hasattr(cls, "get_params")):
            raise BadRequest(f"Allowed class {name!r} is not a scikit-learn style estimator.")
        return cls
    close = [n for n in known if n.lower() == short.lower() or n.lower() == name.lower()]
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise BadRequest(
        f"Unknown estimator class {name!r}.{hint} Expected a scikit-learn estimator name "
        "(e.g. LogisticRegression, RandomForestClassifier, KMeans) or a dotted path listed in "
        "allowed_classes."
    )


def _default_inner(cls: type) -> BaseEstimator:
    """The inner estimator a meta-estimator gets when none is named."""
    from sklearn.linear_model import LogisticRegression, Ridge

    kind = _kinds().get(cls.__name__)
    return Ridge() if kind == "regressor" or "Regressor" in cls.__name__ else LogisticRegression()


def _required_defaults(cls: type) -> dict[str, Any]:
    """Values for constructor arguments without defaults (meta-estimators' inner estimators)."""
    out: dict[str, Any] = {}
    for param in _init_parameters(cls):
        pname = param.name
        declared = getattr(cls, "_parameter_constraints", {}).get(pname)
        none_ok = not isinstance(declared, list) or None in declared
        if param.default is not inspect.Parameter.empty and (param.default is not None or none_ok):
            continue
        if pname == INNER_ESTIMATOR:
            out[pname] = _default_inner(cls)
        elif pname == INNER_ESTIMATORS:
            inner = _default_inner(cls)
            out[pname] = [(type(inner).__name__.lower(), inner)]
    return out


def _instantiate_default(cls: type) -> BaseEstimator:
    try:
        return cls(**_required_defaults(cls))
    except TypeError as exc:  # required arguments mlwidget cannot make up (Pipeline's steps)
        raise BadRequest(
            f"{cls.__name__} cannot be created with default values: {exc}. Give the required "
            f"argument(s) with its parameters ({', '.join(valid_param_names(cls))}), or choose "
            "another estimator."
        ) from None


def make_estimator(cls: type, params: dict[str, Any], allowed: Iterable[str] = ()) -> BaseEstimator:
    """Instantiate ``cls`` with typed ``params`` and let scikit-learn validate them."""
    kwargs = {**_required_defaults(cls), **params}
    allowed = tuple(allowed)
    if isinstance(kwargs.get(INNER_ESTIMATOR), str):
        kwargs[INNER_ESTIMATOR] = make_estimator(
            resolve_class(kwargs[INNER_ESTIMATOR], allowed), {}
        )
    if isinstance(kwargs.get(INNER_ESTIMATORS), list | tuple):
        kwargs[INNER_ESTIMATORS] = [
            (item.lower(), make_estimator(resolve_class(item, allowed), {}))
            if isinstance(item, str)
            else item
            for item in kwargs[INNER_ESTIMATORS]
        ]
    try:
        est = cls(**kwargs)
    except TypeError as exc:
        raise BadRequest(
            f"Could not create {cls.__name__}: {exc}. Arguments without a default must be "
            "given with the other parameters (estimators, lists of steps and arrays can be "
            "given from Python), or choose another estimator."
        ) from None
    validate = getattr(est, "_validate_params", None)
    declared = boosting.constraints(cls)  # XGBoost declares none of its own
    try:
        if declared is not None:
            validate_parameter_constraints(declared, est.get_params(deep=False), cls.__name__)
        elif callable(validate) and hasattr(cls, "_parameter_constraints"):
            validate()
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"{exc} Change the value and try again.") from None
    return est


def valid_param_names(cls: type) -> list[str]:
    """What ``get_params`` reports; for a class that needs arguments mlwidget cannot make up
    (Pipeline's steps), its constructor's parameter names."""
    try:
        return sorted(cls(**_required_defaults(cls)).get_params(deep=False))
    except TypeError:
        pass
    return sorted(param.name for param in _init_parameters(cls))


def _init_parameters(cls: type) -> list[inspect.Parameter]:
    """The named parameters of ``cls.__init__`` (not self, ``*args`` or ``**kwargs``): what a
    scikit-learn style estimator is made of."""
    constructor: Any = cls  # any class: its own __init__, not type's
    return [
        param
        for name, param in inspect.signature(constructor.__init__).parameters.items()
        if name != "self" and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
    ]


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def bound_threads(estimator: BaseEstimator) -> list[str]:
    """Cap every ``n_jobs`` (the estimator's and its inner estimators') at the usable CPUs, so
    no parameter makes the process start more threads or processes than the machine has.
    Returns a warning per capped value."""
    cpus = usable_cpus()
    capped: dict[str, int] = {}
    warns = []
    for key, value in estimator.get_params(deep=True).items():
        if key.split("__")[-1] != "n_jobs" or not isinstance(value, int | np.integer):
            continue
        if value > cpus or value < -cpus:
            capped[key] = cpus if value > cpus else -1
            warns.append(
                f"{key}={int(value)} was capped at {capped[key]}: this server has {cpus} CPUs."
            )
    if capped:
        estimator.set_params(**capped)
    return warns


# ---------------------------------------------------------------------------------------------
# Typed parameters (read by param_types.py from scikit-learn's declarations)

# Values in one parameter (a list of alphas, a class_weight mapping, hidden layer sizes): a
# model's info carries them, and 2,000,000 alphas made every ?_model answer take 1.5 s.
MAX_PARAM_VALUES = 10_000


def parse_params(cls: type, raw: dict[str, Any], allowed: Iterable[str] = ()) -> dict[str, Any]:
    """Type every parameter of ``raw`` for ``cls``; unknown names, and lists or mappings of more
    than ``MAX_PARAM_VALUES`` values, are a BadRequest."""
    valid = valid_param_names(cls)
    unknown = [key for key in raw if key not in valid]
    if unknown:
        raise BadRequest(
            f"{cls.__name__} has no parameter {', '.join(map(repr, unknown))}. "
            f"Valid parameters: {', '.join(valid)}."
        )
    for key, value in raw.items():
        if isinstance(value, list | tuple | dict) and len(value) > MAX_PARAM_VALUES:
            raise BadRequest(
                f"Expected at most {MAX_PARAM_VALUES:,} values in {cls.__name__}'s parameter "
                f"{key!r}, got {len(value):,}. Give fewer (a search over thousands of values "
                "is better sampled)."
            )
    return {key: parse_param(cls, key, value) for key, value in raw.items()}


def param_specs(cls: type) -> list[dict[str, Any]]:
    """What an editor needs to offer inputs for each constructor parameter."""
    est = _instantiate_default(cls)
    specs = []
    for name, default in sorted(est.get_params(deep=False).items()):
        kind, choices = describe(cls, name, default)
        specs.append(
            {"name": name, "default": to_jsonable(default), "type": kind, "choices": choices}
        )
    return specs


def to_jsonable(value: Any) -> Any:
    """Estimator parameters as JSON-able values: :func:`mlwidget.jsonable.to_jsonable` with
    ``nan="nan"``, so that NaN and infinities are stored as the text ``parse_params`` reads back
    as the same float (``null`` would read back as None)."""
    return _to_jsonable(value, nan="nan")


# ---------------------------------------------------------------------------------------------
# The preprocessing pipeline


def build_pipeline(
    estimator: BaseEstimator,
    cats: Sequence[str],
    nums: Sequence[str],
    max_categories: int | None = None,
    dates: Sequence[str] = (),
) -> Pipeline:
    """Impute + one-hot the categoricals, impute + scale the numerics, read the ``dates`` as
    numbers (year, month, day, weekday, ordinal: dates.py) then impute + scale them, then the
    estimator. With ``max_categories``, each categorical keeps its most frequent values as
    columns and groups the rest (and unknown values) as one infrequent category."""
    steps = []
    if cats:
        if max_categories is None:
            onehot = OneHotEncoder(handle_unknown="ignore")
        else:
            onehot = OneHotEncoder(
                handle_unknown="infrequent_if_exist", max_categories=max_categories
            )
        steps.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", onehot),
                    ]
                ),
                list(cats),
            )
        )
    if nums:
        steps.append(
            (
                "num",
                Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", StandardScaler())]),
                list(nums),
            )
        )
    if dates:
        from .dates import DateFeatures

        parts = DateFeatures()
        fill = SimpleImputer(strategy="mean", keep_empty_features=True)
        steps.append(
            (
                "date",
                Pipeline([("parts", parts), ("impute", fill), ("scale", StandardScaler())]),
                list(dates),
            )
        )
    transform = ColumnTransformer(steps, remainder="drop", sparse_threshold=0)
    return Pipeline([("transform", transform), ("estimator", estimator)])
