"""A file chooser whose files reach the kernel in slices, with progress: ``ChunkedUpload``.

ipywidgets' ``FileUpload`` sends a file in one websocket message, and Jupyter's kernel
websocket takes at most 10 MiB a message (tornado's ``websocket_max_message_size``): a bigger
file never arrives, and the page loses its kernel connection without a word. ``ChunkedUpload``
(an anywidget: its browser half is ``bigupload.js``) sends each file in slices of
``chunk_bytes`` (1 MiB), one custom widget message each; the kernel writes each slice to a
spool file and acknowledges it with the bytes it holds, so the progress bar shows what has
arrived, and a file of any size up to ``max_bytes`` gets through. Past ``max_bytes`` nothing is
sent: the chooser and the form say why.

``value`` has the shape of ``FileUpload.value`` in ipywidgets 8 (a tuple of ``{"name", "type",
"size", "content", "last_modified"}``), so code and tests that set it work the same. It is set
once every file has arrived, and it stays in the kernel (it is not sent back to the page).
"""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path
from typing import IO, Any

import anywidget
import traitlets
from ipywidgets.widgets.trait_types import TypedTuple

from ..display import size_text
from ._common import error_text

CHUNK_BYTES = 1024 * 1024
SPOOL_BYTES = 8 * 1024 * 1024  # a file's slices stay in memory up to this, then on disk


def default_max_upload() -> int:
    """The most bytes one upload may have: ``$MLWIDGET_WIDGET_MAX_UPLOAD``, else this
    process's ``max_body_size`` (256 MB unless configured), the REST API's limit for a body."""
    from ..limits import current

    env = os.environ.get("MLWIDGET_WIDGET_MAX_UPLOAD", "").strip()
    return int(env) if env.isdigit() and int(env) > 0 else current().max_body_size


class Incoming:
    """The files of one upload while their slices arrive."""

    def __init__(self, upload_id: str, files: list[dict]) -> None:
        self.id = upload_id
        self.files = files
        self.spools: list[IO[bytes]] = [
            tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) for _ in files
        ]
        self.written = [0] * len(files)

    @property
    def received(self) -> int:
        return sum(self.written)

    def close(self) -> None:
        for spool in self.spools:
            spool.close()


class UploadRefused(Exception):
    """An upload this chooser will not take; its message is what the user reads."""


class ChunkedUpload(anywidget.AnyWidget):
    """Choose (or drop) files; they travel to the kernel in slices, with a progress bar.

    ``value`` (a tuple of dicts, as ``FileUpload``'s) is set when every file has arrived; a
    refused upload sets ``error`` (the reason) instead and leaves ``value`` as it was."""

    _esm = Path(__file__).with_name("bigupload.js")

    description = traitlets.Unicode("Upload").tag(sync=True)
    tooltip = traitlets.Unicode("").tag(sync=True)
    accept = traitlets.Unicode("").tag(sync=True)
    multiple = traitlets.Bool(False).tag(sync=True)
    disabled = traitlets.Bool(False).tag(sync=True)
    max_bytes = traitlets.Int(0).tag(sync=True)
    chunk_bytes = traitlets.Int(CHUNK_BYTES).tag(sync=True)
    count = traitlets.Int(0).tag(sync=True)  # files held: the button reads "Upload (1)"
    value = TypedTuple(trait=traitlets.Dict())  # the kernel's only
    error = traitlets.Unicode("")  # why the last upload was refused ("" when it was not)

    def __init__(self, max_bytes: int | None = None, **kwargs: Any) -> None:
        super().__init__(max_bytes=max_bytes or default_max_upload(), **kwargs)
        self._incoming: Incoming | None = None
        self.on_msg(self._on_msg)

    @traitlets.observe("value")
    def _count_files(self, change: dict[str, Any]) -> None:
        self.count = len(change["new"] or ())

    # ---- the browser's messages ------------------------------------------------------------
    def _on_msg(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        event, upload_id = content.get("event"), str(content.get("id") or "")
        try:
            if event == "begin":
                self._begin(upload_id, content.get("files"))
            elif event == "chunk":
                self._chunk(upload_id, content, buffers)
            elif event == "end":
                self._end(upload_id)
            elif event == "abort":
                self._drop(upload_id)
        except Exception as err:  # a refusal, or the spool's disk is full: say it, keep nothing
            self._drop(upload_id)
            self.error = str(err) if isinstance(err, UploadRefused) else error_text(err)
            self.send({"event": "refused", "id": upload_id, "error": self.error})

    def _begin(self, upload_id: str, files: Any) -> None:
        self._drop(None)
        if not isinstance(files, list) or not files or not upload_id:
            raise UploadRefused("No file arrived: choose a file again.")
        if not self.multiple:
            files = files[:1]
        described: list[dict[str, Any]] = [
            {
                "name": str(f.get("name") or "data"),
                "type": str(f.get("type") or ""),
                "size": int(f.get("size") or 0),
                "last_modified": f.get("last_modified"),
            }
            for f in files
            if isinstance(f, dict)
        ]
        if not described or any(f["size"] < 0 for f in described):
            raise UploadRefused("No file arrived: choose a file again.")
        total = sum(f["size"] for f in described)
        if total > self.max_bytes:
            names = ", ".join(f["name"] for f in described)
            raise UploadRefused(
                f"{names} is {size_text(total)}, more than the {size_text(self.max_bytes)} "
                "this form accepts (max_upload_bytes; $MLWIDGET_WIDGET_MAX_UPLOAD). Nothing was "
                "sent. POST the file to the REST API instead (<server>/mlhandler/<name>), "
                "which takes bodies up to the server's max_body_size."
            )
        self.error = ""
        self._incoming = Incoming(upload_id, described)
        self.send({"event": "ack", "id": upload_id, "received": 0})

    def _chunk(self, upload_id: str, content: dict, buffers: list[Any]) -> None:
        incoming = self._current(upload_id)
        index, offset = content.get("file"), content.get("offset")
        if not isinstance(index, int) or not 0 <= index < len(incoming.files) or not buffers:
            raise UploadRefused("The upload arrived garbled: choose the file again.")
        data = memoryview(buffers[0]).cast("B")
        if offset != incoming.written[index] or (
            incoming.written[index] + len(data) > incoming.files[index]["size"]
        ):
            raise UploadRefused("The upload arrived out of order: choose the file again.")
        incoming.spools[index].write(data)
        incoming.written[index] += len(data)
        self.send({"event": "ack", "id": upload_id, "received": incoming.received})

    def _end(self, upload_id: str) -> None:
        incoming = self._current(upload_id)
        short = [
            f["name"]
            for f, n in zip(incoming.files, incoming.written, strict=True)
            if n != f["size"]
        ]
        if short:
            raise UploadRefused(f"{', '.join(short)} did not arrive whole: choose it again.")
        value = []
        for described, spool in zip(incoming.files, incoming.spools, strict=True):
            spool.seek(0)
            value.append({**described, "content": memoryview(spool.read()),
                          "last_modified": _when(described["last_modified"])})  # fmt: skip
        self._drop(upload_id)
        self.send({"event": "done", "id": upload_id, "received": sum(f["size"] for f in value)})
        self.value = ()  # the same file chosen again is news to the forms too
        self.value = tuple(value)  # the forms read the table now

    def _current(self, upload_id: str) -> Incoming:
        if self._incoming is None or self._incoming.id != upload_id:
            raise UploadRefused("That upload was replaced or dropped: choose the file again.")
        return self._incoming

    def _drop(self, upload_id: str | None) -> None:
        """Forget the upload under way (``upload_id``, or any when None) and its spool files."""
        if self._incoming is not None and upload_id in (None, self._incoming.id):
            self._incoming.close()
            self._incoming = None


def _when(millis: Any) -> datetime.datetime | None:
    """The browser's ``File.lastModified`` (ms since the epoch) as an aware datetime."""
    if not isinstance(millis, int | float):
        return None
    return datetime.datetime.fromtimestamp(millis / 1000, tz=datetime.timezone.utc)
