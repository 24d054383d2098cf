"""Option names, defaults, aliases and validation; Gramex-style YAML loading.

The same names work in the Python constructor, in server config, in a Gramex YAML file and in
REST PUT requests. Gramex nests most of them under ``model:``; mlwidget accepts both that and a
flat dictionary. Keys that are not option names are estimator hyper-parameters.
"""

from __future__ import annotations

import numbers
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import BadRequest, Forbidden
from .predlog_options import LOG_OPTIONS, clean_option

# name -> default
DEFAULTS: dict[str, Any] = {
    "data": None,
    "class": None,
    "params": {},
    "path": None,
    "target_col": None,
    "include": [],
    "exclude": [],
    "cats": [],
    "nums": [],
    "dates": None,  # None: the columns that look like dates (dates.py); []: none
    "dropna": True,
    "deduplicate": True,
    "template": None,
    "keep_versions": None,  # None: versions.KEEP
    "cv_folds": None,  # None: the cv_folds limit (limits.current()); 0: no cross-validation
    **LOG_OPTIONS,  # the prediction log (predlog.py, docs/monitoring.md)
    "shadow": None,  # a kept version that answers a copy of the logged traffic (predlog_shadow)
}
OPTION_NAMES = tuple(DEFAULTS)
ALIASES = {"drop_duplicates": "deduplicate", "dopna": "dropna", "class_": "class"}
LIST_OPTIONS = ("include", "exclude", "cats", "nums")
BOOL_OPTIONS = ("dropna", "deduplicate")
# What the model's configuration (as opposed to its data or files) is made of.
CONFIG_KEYS = ("class", "params", "target_col", *LIST_OPTIONS, "dates", *BOOL_OPTIONS)
# Gramex handler kwargs that the Jupyter server owns: accepted, ignored, warned about.
GRAMEX_IGNORED = ("xsrf_cookies", "auth", "headers", "cors", "error", "config_dir", "set_xsrf")
_NO_SHADOW = ("", "none", "null", "off", "false")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def is_option(key: str) -> bool:
    return key in DEFAULTS or key in ALIASES or key in GRAMEX_IGNORED or key == "model"


def split(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Split user input into (options, estimator params, warnings).

    Accepts Gramex's nesting (``model: {class, params, target_col, ...}``) and flat keys.
    Unknown keys become estimator parameters, which the estimator then validates.
    """
    options: dict[str, Any] = {}
    params: dict[str, Any] = {}
    warnings: list[str] = []

    def take(source: Mapping[str, Any], where: str) -> None:
        for key, value in source.items():
            if not isinstance(key, str):
                raise BadRequest(f"Expected option names as strings, got {key!r}.")
            name = ALIASES.get(key, key)
            if name == "model" and where == "top":
                if isinstance(value, Mapping):
                    take(value, "model")
                    continue
                raise BadRequest(
                    f"Expected 'model' to be a mapping of model options, got {type(value).__name__}."
                )
            if name in GRAMEX_IGNORED:
                warnings.append(
                    f"Option {key!r} is a Gramex handler setting that the Jupyter server owns "
                    "(authentication, XSRF, headers); it was ignored."
                )
            elif name == "params":
                if value is None:
                    continue
                if not isinstance(value, Mapping):
                    raise BadRequest(
                        f"Expected 'params' to be a mapping of hyper-parameters, got {value!r}."
                    )
                params.update(value)
            elif name in DEFAULTS:
                options[name] = value
            else:
                params[key] = value

    take(raw, "top")
    return options, params, warnings


# ---------------------------------------------------------------------------------------------
# What a request may set (REST PUT bodies and queries, form fields): one allow-list.

# Options that name server files, folders, URLs or databases: server config or Python only.
SERVER_ONLY = ("data", "path", "template")
# Estimator parameters a request may not set, and why (each reaches the file system or makes
# the server evaluate something).
REFUSED_PARAMS = {
    "memory": "names a folder where scikit-learn caches, and later unpickles, fitted steps",
    "input": "makes a text vectorizer open the files that the data names",
    "pre_dispatch": "is an expression that joblib evaluates on the server",
}
# Any other parameter whose name says it holds a path is refused too (an allowed_classes
# estimator's ``model_file``, say), except scikit-learn's own that do not (Lars's fit_path is a
# flag, Isomap's path_method a choice).
_PATHLIKE = re.compile(
    r"(^|_)(path|paths|dir|directory|folder|file|filename|location|url|uri)($|_)"
)
_NOT_PATHS = ("fit_path", "path_method")
# Parameters scikit-learn reads as an attribute path of the fitted estimator: a request may
# name a plain public attribute, nothing dotted or private.
_ATTRIBUTE_PATHS = ("importance_getter",)
# The options a request may set (beside the estimator's parameters), at the top level or under
# Gramex's ``model:``; their aliases and the ignored Gramex handler kwargs are accepted too.
REQUEST_OPTIONS = (
    "class", "params", *CONFIG_KEYS[2:], "keep_versions", "cv_folds", *LOG_OPTIONS, "shadow",
)  # fmt: skip


def _public(attribute: str) -> bool:
    return not attribute.startswith("_") and "__" not in attribute and "." not in attribute


def refused_reason(key: str) -> str | None:
    """Why a request may not set ``key`` (an option or parameter name), or None if it may."""
    name = ALIASES.get(key, key)
    if name in SERVER_ONLY:
        return "names a file on the server"
    if name in REFUSED_PARAMS:
        return REFUSED_PARAMS[name]
    if name not in _NOT_PATHS and _PATHLIKE.search(name.lower()):
        return "looks like a file, folder or URL on the server"
    return None


def from_request(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Check options and parameters that arrived in a request; return them unchanged.

    Every key at every depth (the top level, ``model:``, ``params:`` and any mapping inside a
    value) is checked: a key naming a server file, folder, URL or database, or a refused
    estimator parameter, is a 403 that lists all of them, so nothing is stored. Everything else
    is validated later as options (types) and estimator parameters (scikit-learn's checks).
    """
    refused: dict[str, str] = {}

    def walk(obj: Any, where: str) -> None:
        if isinstance(obj, Mapping):
            for key, value in obj.items():
                reason = refused_reason(key) if isinstance(key, str) else None
                if key in _ATTRIBUTE_PATHS and isinstance(value, str) and not _public(value):
                    reason = "may only name a public attribute of the estimator (e.g. coef_)"
                if reason:
                    refused.setdefault(f"{where}{key}", reason)
                walk(value, f"{where}{key}.")
        elif isinstance(obj, list | tuple):
            for value in obj:
                walk(value, where)

    walk(changes, "")
    if refused:
        detail = "; ".join(f"{key!r} {reason}" for key, reason in refused.items())
        raise Forbidden(
            f"A request cannot set {', '.join(map(repr, refused))}: {detail}. Set such options "
            "in the server config (MLWidgetApp.models, config_yaml) or from Python; a request "
            f"may set {', '.join(REQUEST_OPTIONS)} and the estimator's other parameters."
        )
    return dict(changes)


def _as_list(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(dict.fromkeys(v for v in value if v))  # a column named twice counts once
    raise BadRequest(
        f"Expected option {name!r} to be a list of column names, got {value!r}. "
        f'Use e.g. {name}=["Name", "Ticket"] or repeat the query key.'
    )


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise BadRequest(f"Expected option {name!r} to be true or false, got {value!r}.")


def _as_str(name: str, value: Any) -> str | None:
    if isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    if isinstance(value, str | os.PathLike):
        return str(value)
    raise BadRequest(f"Expected option {name!r} to be a string, got {value!r}.")


def clean(options: Mapping[str, Any], base_dir: str | os.PathLike[str] | None = None) -> dict:
    """Validate and type option values (not ``data``, which tables.py reads)."""
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name in LIST_OPTIONS:
            out[name] = _as_list(name, value)
        elif name == "dates":  # None (or "auto"): detected; a list: those; [] or "": none
            out[name] = None if value is None or value == "auto" else _as_list(name, value)
        elif name in BOOL_OPTIONS:
            out[name] = _as_bool(name, value)
        elif name in ("path", "template"):
            text = _as_str(name, value)
            if text is not None and base_dir is not None:
                text = str(Path(base_dir, text).expanduser())
            out[name] = text
        elif name == "keep_versions":
            out[name] = _as_count(name, value, 1, "how many fitted versions to keep")
        elif name == "cv_folds":
            out[name] = _as_count(name, value, 0, "folds of the cross-validation; 0: none")
        elif name in LOG_OPTIONS:
            out[name] = clean_option(name, value)
        elif name == "shadow":  # none, off or empty: no shadow
            off = value is None or value is False or str(value).strip().lower() in _NO_SHADOW
            out[name] = None if off else _as_count(name, value, 1, "a kept version to shadow")
        elif name in ("class", "target_col"):
            if isinstance(value, type):
                out[name] = value
            else:
                out[name] = _as_str(name, value)
        else:
            out[name] = value
    return out


def _as_count(name: str, value: Any, least: int, meaning: str) -> int | None:
    """A whole number option (``keep_versions``, ``cv_folds``) of at least ``least``."""
    if value is None or value == "":
        return None
    number = parse_count(name, value, least=least, meaning=meaning)
    if name == "cv_folds" and number == 1:
        raise BadRequest(
            "Expected cv_folds to be 0 (no cross-validation) or at least 2 folds, got 1."
        )
    return number


MAX_COUNT = 10**6  # the largest count a request or a call may give (parse_count's default)


def parse_count(
    name: str, value: Any, *, least: int = 0, most: int = MAX_COUNT, meaning: str = ""
) -> int:
    """A whole number that arrived as text (a query, a form, YAML) or from Python, read one way
    everywhere: an int (not a bool), or plain ASCII digits 0-9 with spaces around them; from
    ``least`` to ``most``. Anything else is a :class:`BadRequest` naming ``name``: a sign, a
    fraction, superscripts and other Unicode digits (``str.isdigit()`` is true for "²" but
    ``int()`` refuses it), or thousands of digits (never given to ``int()``)."""
    if isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]  # a query key given once
    number: int | None = None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        number = int(value)  # numpy's integers too
    elif isinstance(value, str):
        text = value.strip()
        digits = text.lstrip("0") or "0"
        if text and text.isascii() and text.isdigit():
            # a number of more digits than ``most`` is over it: no need to read it
            number = int(digits) if len(digits) <= len(str(most)) else most + 1
    if number is None or not least <= number <= most:
        why = f" ({meaning})" if meaning else ""
        raise BadRequest(
            f"Expected {name} to be a whole number from {least:,} to {most:,}{why}, got "
            f"{_quote(value)}. Send plain digits 0-9, such as {name}={max(least, 3)}."
        )
    return number


def _quote(value: Any, limit: int = 40) -> str:
    """What arrived, in a message: at most ``limit`` characters of it (an int of thousands of
    digits cannot even be turned into text)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a number of about {int(value.bit_length() * 0.30103):,} digits"
    try:
        text = repr(value)
    except ValueError:  # a list holding such a number
        return f"a {type(value).__name__}"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


# ---------------------------------------------------------------------------------------------
# Gramex YAML


def _expand(value: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for var in sorted(variables, key=len, reverse=True):
            value = value.replace("$" + var, variables[var])
        return value
    if isinstance(value, list):
        return [_expand(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, variables) for k, v in value.items()}
    return value


def load_yaml(
    path: str | os.PathLike[str], root_dir: str | os.PathLike[str] | None = None
) -> list[dict[str, Any]]:
    """Read MLHandler entries from a Gramex YAML file.

    Returns ``[{"name", "pattern", "options", "warnings"}]``. ``$YAMLPATH`` is the file's folder,
    ``$YAMLURL`` that folder relative to ``root_dir`` (the server's root) as a URL path, and
    ``$GRAMEXDATA`` mlwidget's data folder. A ``url:`` key becomes the model's name with
    characters other than letters, digits, ``-_.`` replaced by ``-``.
    """
    import yaml

    from .store import default_root, safe_name

    path = Path(path).expanduser().resolve()
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise BadRequest(
            f"Expected a YAML config file, but {path.name!r} does not exist."
        ) from None
    except yaml.YAMLError as exc:
        raise BadRequest(f"Expected valid YAML in {path.name!r}: {exc}") from None
    if not isinstance(doc, Mapping):
        raise BadRequest(f"Expected a mapping at the top of {path.name!r}.")
    folder = path.parent
    root = Path(root_dir).expanduser().resolve() if root_dir else folder
    try:
        rel = folder.relative_to(root).as_posix()
        yamlurl = "" if rel == "." else "/" + rel
    except ValueError:
        yamlurl = ""
    variables = {
        "YAMLPATH": str(folder),
        "YAMLURL": yamlurl,
        "GRAMEXDATA": str(default_root().parent),
    }
    entries = doc.get("url", doc) if isinstance(doc.get("url"), Mapping) else doc
    out = []
    for key, spec in entries.items():
        if not isinstance(spec, Mapping) or spec.get("handler") != "MLHandler":
            continue
        spec = _expand(dict(spec), variables)
        kwargs = dict(spec.get("kwargs") or {})
        if "template" in spec and "template" not in kwargs:
            kwargs["template"] = spec["template"]
        pattern = spec.get("pattern")
        if pattern:
            pattern = "/" + re.sub(r"/+", "/", str(pattern)).lstrip("/")
        out.append(
            {"name": safe_name(key), "pattern": pattern, "options": kwargs, "base_dir": str(folder)}
        )
    return out
