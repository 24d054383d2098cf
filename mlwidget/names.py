"""The name a new model is offered, and why a name cannot be taken: the rules the dashboard's
New model form and the listing page's New model flow show (the page through the server's
``POST mlhandler/?_action=preview``), decided here once, from the store's own rules
(``store.check_name``, ``Store.check_new``)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from .errors import MLWidgetError
from .store import MAX_NAME, RESERVED, Store, check_name, name_key


def suggested_name(filename: str, store: Store | None = None, taken: Iterable[str] = ()) -> str:
    """A model name from a file name: its stem, runs of other characters as ``-`` (at most
    :data:`~mlwidget.store.MAX_NAME` characters in all), not one of the store's models nor of
    ``taken`` nor one that differs from one of them only by case or trailing dots
    (``Titanic.csv`` beside ``titanic`` is ``Titanic-2``). Always a name ``check_name`` takes."""
    stem = os.path.splitext(os.path.basename(filename or ""))[0]
    base = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.-]+", "-", stem))
    base = base.strip("-.")[:MAX_NAME].rstrip("-.") or "model"
    if base in RESERVED:
        base = f"model-{base}"
    keys = {name_key(t) for t in taken}
    if store is not None:
        keys.update(name_key(n) for n in store.names())
    name, n = base, 2
    while name_key(name) in keys:
        suffix = f"-{n}"
        name, n = base[: MAX_NAME - len(suffix)].rstrip("-.") + suffix, n + 1
    return check_name(name)


def name_error(name: str, store: Store) -> str | None:
    """Why a new model cannot take ``name`` (the words the core's refusal would say: not a
    name the server can serve, a model of that name, or one differing only by case or a
    trailing dot), or None when it can. Nothing is written."""
    try:
        store.check_new(name)
    except MLWidgetError as err:
        return str(err)
    return None
