"""Estimator lookup (an allow-list), typed parameter parsing, and the preprocessing pipeline.

Only scikit-learn's own estimators (``sklearn.utils.all_estimators``) and dotted paths that the
caller allows explicitly can be named; nothing else is ever imported. Parameters that arrive as
strings (from a URL) are typed by the estimator's declared ``_parameter_constraints`` and then
checked by scikit-learn itself, so its own messages reach the user.
"""

from __future__ import annotations

import importlib
import inspect
import math
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

from .errors import BadRequest
from .jsonable import to_jsonable as _to_jsonable

KINDS = ("classifier", "regressor", "clusterer", "transformer")
# Parameters that take another estimator: a URL can name one by its short class name.
INNER_ESTIMATOR = "estimator"
INNER_ESTIMATORS = "estimators"


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
                _CATALOG = catalog, kinds
    return _CATALOG


def _catalog() -> dict[str, type]:
    """scikit-learn's public estimators by short name."""
    return _build_catalog()[0]


def _kinds() -> dict[str, str]:
    """Estimator short name -> classifier, regressor, clusterer or transformer."""
    return _build_catalog()[1]


def list_estimators(kind: str | None = None) -> list[str]:
    """Short names of scikit-learn estimators, optionally of one kind."""
    if kind is None:
        return sorted(_catalog())
    if kind not in KINDS:
        raise BadRequest(f"Unknown estimator kind {kind!r}. Expected one of {', '.join(KINDS)}.")
    return sorted(name for name, k in _kinds().items() if k == kind)


def estimator_kind(cls: type) -> str | None:
    """classifier, regressor, clusterer, transformer, or None for anything else."""
    kind = _kinds().get(cls.__name__)
    if kind and _catalog().get(cls.__name__) is cls:
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
        if _catalog().get(name.__name__) is name or qual in set(allowed):
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
    catalog = _catalog()
    if name in catalog:
        return catalog[name]
    module, _, short = name.rpartition(".")
    if module.split(".")[0] == "sklearn" and short in catalog:
        cls = catalog[short]
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
    close = [n for n in catalog if n.lower() == short.lower() or n.lower() == name.lower()]
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
    for pname, param in inspect.signature(cls.__init__).parameters.items():
        if pname == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
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
    if callable(validate) and hasattr(cls, "_parameter_constraints"):
        try:
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
    return sorted(
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )


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
# Typed parameter parsing

_NONE = {"none", "null"}
_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}


def _candidates(text: str) -> list[Any]:
    """Typed readings of a URL string, most specific first; the raw string is always last."""
    raw = text.strip()
    low = raw.lower()
    out: list[Any] = []
    if low in _NONE:
        out.append(None)
    if low in _TRUE:
        out.append(True)
    if low in _FALSE:
        out.append(False)
    if "." not in raw and "e" not in low:
        try:
            out.append(int(raw))
        except ValueError:
            pass
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if not math.isnan(value) or low == "nan":
            out.append(value)
    out.append(text)
    return out


def _constraints(cls: type, name: str) -> list[Any] | None:
    from sklearn.utils._param_validation import make_constraint

    declared = getattr(cls, "_parameter_constraints", {}).get(name)
    if not isinstance(declared, list):
        return None
    out = []
    for item in declared:
        try:
            out.append(make_constraint(item))
        except (ValueError, TypeError):
            continue
    return out


def _satisfies(constraints: list[Any], value: Any) -> bool:
    for constraint in constraints:
        try:
            if constraint.is_satisfied_by(value):
                return True
        except Exception:  # a constraint that cannot judge this value does not accept it
            continue
    return False


def _parse_scalar(constraints: list[Any] | None, text: str) -> Any:
    candidates = _candidates(text)
    if constraints is None:
        return candidates[0]
    for value in candidates:
        if _satisfies(constraints, value):
            return value
    # Nothing fits: keep the most natural reading so scikit-learn's own message names it.
    return candidates[0]


def parse_param(cls: type, name: str, value: Any) -> Any:
    """Type one parameter value. Strings and lists of strings are read; other values pass."""
    constraints = _constraints(cls, name)
    if isinstance(value, str):
        if name in (INNER_ESTIMATOR,) and value.lower() not in _NONE:
            return value  # a class name, resolved by make_estimator
        return _parse_scalar(constraints, value)
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        if name == INNER_ESTIMATORS:
            return list(value)
        if len(value) == 1:
            return parse_param(cls, name, value[0])
        items = [_candidates(v)[0] for v in value]
        if constraints is None:
            return items
        for shape in (items, tuple(items)):
            if _satisfies(constraints, shape):
                return shape
        return items
    return value


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


def _describe(constraints: list[Any] | None, default: Any) -> tuple[str, list[Any] | None]:
    from sklearn.utils._param_validation import (
        Hidden,
        Interval,
        Options,
        StrOptions,
        _Booleans,
        _NoneConstraint,
    )

    if constraints is None:
        kinds = {bool: "bool", int: "int", float: "float", str: "str"}
        return kinds.get(type(default), "other"), None
    visible = [c for c in constraints if not isinstance(c, Hidden)]
    choices: list[Any] = []
    kind = None
    for c in visible:
        if isinstance(c, StrOptions | Options):
            choices.extend(sorted(c.options, key=str))
        elif isinstance(c, _Booleans):
            kind = kind or "bool"
        elif isinstance(c, Interval):
            from numbers import Integral

            kind = "int" if c.type is Integral and kind != "float" else "float"
    allows_none = any(isinstance(c, _NoneConstraint) for c in visible)
    if choices:
        if allows_none:
            choices = [None, *choices]
        return "choice", choices
    if kind:
        return kind, None
    if allows_none and len(visible) == 1:
        return "none", None
    return "other", None


def param_specs(cls: type) -> list[dict[str, Any]]:
    """What an editor needs to offer inputs for each constructor parameter."""
    est = _instantiate_default(cls)
    specs = []
    for name, default in sorted(est.get_params(deep=False).items()):
        kind, choices = _describe(_constraints(cls, name), default)
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
) -> Pipeline:
    """Impute + one-hot the categoricals, impute + scale the numerics, then the estimator.
    With ``max_categories``, each categorical keeps its most frequent values as columns and
    groups the rest (and unknown values) as one infrequent category."""
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
    transform = ColumnTransformer(steps, remainder="drop", sparse_threshold=0)
    return Pipeline([("transform", transform), ("estimator", estimator)])
