"""Pieces every form shares: error text, status lines, buttons and progress bars."""

from __future__ import annotations

import html
import logging
from typing import Any

import ipywidgets as widgets

from ..errors import MLWidgetError

log = logging.getLogger("mlwidget.widgets")


def error_text(err: BaseException) -> str:
    """The message a user sees for ``err``: the REST message for our errors, never a traceback."""
    if isinstance(err, MLWidgetError):
        return str(err)
    log.exception("unexpected error in a mlwidget form", exc_info=err)
    text = str(err) or type(err).__name__
    return f"Unexpected error ({type(err).__name__}): {text}"


def esc(value: Any) -> str:
    return html.escape(str(value))


class Status(widgets.HTML):
    """One line of feedback under a form: info, success or error text."""

    def __init__(self, css: str, **kwargs: Any) -> None:
        super().__init__(value="", **kwargs)
        self.add_class("mlwidget-status")
        self.add_class(css)
        self.kind = ""
        self.text = ""

    def show(self, text: str, kind: str = "info") -> None:
        colors = {"info": "#444", "ok": "#1b5e20", "error": "#b71c1c", "busy": "#0d47a1"}
        self.kind, self.text = kind, text
        self.value = (
            f'<div class="mlwidget-msg mlwidget-msg-{kind}" '
            f'style="color:{colors.get(kind, "#444")};white-space:pre-wrap">{esc(text)}</div>'
        )

    def error(self, err: BaseException | str) -> None:
        self.show(err if isinstance(err, str) else error_text(err), "error")

    def clear(self) -> None:
        self.kind, self.text, self.value = "", "", ""


def progress_bar(css: str) -> widgets.IntProgress:
    bar = widgets.IntProgress(
        value=0, min=0, max=100, description="", layout=widgets.Layout(width="240px")
    )
    bar.layout.visibility = "hidden"
    bar.add_class("mlwidget-progress")
    bar.add_class(css)
    return bar


def button(description: str, css: str, tooltip: str = "", style: str = "") -> widgets.Button:
    b = widgets.Button(description=description, tooltip=tooltip or description, button_style=style)
    b.add_class("mlwidget-button")
    b.add_class(css)
    return b
