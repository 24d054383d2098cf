"""What an editor tells a user about an estimator's parameters: the docstring's words for each one
(the numpydoc "Parameters" section of the class), and which are deprecated (not to be offered).

Pure: reads classes and their docstrings only; results are cached per class.
"""

from __future__ import annotations

import functools
import inspect
import re
import textwrap
from typing import Any

_SECTION = re.compile(r"^-{3,}\s*$")
_ENTRY = re.compile(r"^(\*{0,2}[A-Za-z_]\w*(?:\s*,\s*\*{0,2}[A-Za-z_]\w*)*)\s*(?::.*)?$")
_ROLE = re.compile(r":[a-z]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")  # :class:`~sklearn.x.Y` -> Y


def _clean(text: str) -> str:
    """Docstring markup as plain text."""
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)
    text = text.replace("``", "").replace("`", "")
    return re.sub(r"\s+", " ", text).strip()


@functools.lru_cache(maxsize=512)
def param_docs(cls: type) -> dict[str, str]:
    """``{parameter: its description}`` from the Parameters section of ``cls.__doc__``,
    directives (``.. versionadded::`` and the like) left out. Empty if there is no such section."""
    lines = (inspect.getdoc(cls) or "").splitlines()
    start = None
    for i in range(len(lines) - 1):
        if lines[i].strip() == "Parameters" and _SECTION.match(lines[i + 1].strip()):
            start = i + 2
            break
    if start is None:
        return {}
    # XGBoost indents the whole section: read it as scikit-learn's (entries at column 0)
    end = next(
        (
            i
            for i in range(start, len(lines) - 1)
            if lines[i].strip() and _SECTION.match(lines[i + 1].strip())
        ),
        len(lines),
    )
    lines = lines[:start] + textwrap.dedent("\n".join(lines[start:end])).splitlines() + lines[end:]
    docs: dict[str, list[str]] = {}
    current: list[str] = []
    skipping = False
    for i in range(start, len(lines)):
        line = lines[i]
        if i + 1 < len(lines) and line.strip() and _SECTION.match(lines[i + 1].strip()):
            break  # the next section ("Attributes", "See Also", ...)
        if line and not line[0].isspace():
            match = _ENTRY.match(line)
            if not match:
                current = []
                continue
            current = []
            for name in match.group(1).split(","):
                docs[name.strip().lstrip("*")] = current
            skipping = False
            continue
        stripped = line.strip()
        if stripped.startswith(".. "):
            skipping = True  # a directive: its indented block follows
            continue
        if skipping and stripped and len(line) - len(line.lstrip()) > 4:
            continue
        skipping = False
        current.append(stripped)
    return {name: _clean(" ".join(words)) for name, words in docs.items()}


def param_help(cls: type, name: str, sentences: int = 2, limit: int = 300) -> str:
    """The first ``sentences`` sentences of parameter ``name``'s description (a tooltip)."""
    text = param_docs(cls).get(name, "")
    if "::" in text:  # a literal block (an equation, an example) follows: stop before it
        text = text.split("::", 1)[0].rstrip() + ": …"
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text)
    out = " ".join(parts[:sentences]).strip()
    if len(out) > limit:
        out = out[: limit - 1].rsplit(" ", 1)[0] + "…"
    return out


def _hidden_options(cls: type, name: str) -> set[Any]:
    """Values the parameter's declared constraints accept only for backward compatibility:
    ``Hidden(StrOptions(...))`` and ``StrOptions(..., deprecated=...)``."""
    try:
        from sklearn.utils._param_validation import Hidden, Options, StrOptions
    except ImportError:  # pragma: no cover - an old scikit-learn
        return set()
    declared = getattr(cls, "_parameter_constraints", {}).get(name)
    out: set[Any] = set()
    for item in declared if isinstance(declared, list) else ():
        if isinstance(item, Hidden) and isinstance(item.constraint, StrOptions | Options):
            out |= set(item.constraint.options)
        elif isinstance(item, StrOptions):
            out |= set(getattr(item, "deprecated", ()) or ())
    return out


def hidden_choices(cls: type, name: str) -> set[Any]:
    """Choices of ``name`` not to offer (deprecated or transitional values)."""
    return _hidden_options(cls, name)


def is_deprecated(cls: type, name: str, default: Any) -> bool:
    """Whether parameter ``name`` (whose default value is ``default``) is deprecated: its
    default is the marker ``"deprecated"``, or its only declared values are hidden ones."""
    if isinstance(default, str) and default == "deprecated":
        return True
    declared = getattr(cls, "_parameter_constraints", {}).get(name)
    if isinstance(declared, list) and declared:
        from sklearn.utils._param_validation import Hidden

        return all(isinstance(item, Hidden) for item in declared)
    return False
