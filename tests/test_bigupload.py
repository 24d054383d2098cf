"""ChunkedUpload (mlwidget/widgets/bigupload.py), the file chooser of the dashboard's New model
form and Upload tab, driven through its comm as its browser half (bigupload.js) drives it:
slices acknowledged in order become ``value``; past the limit nothing is taken and the forms say
why; a garbled or stale slice drops the upload. And the History picker keeps the version chosen
across a rollback, so Export exports it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import NOTEBOOKS

from mlwidget import MLModel, limits
from mlwidget.widgets import NewModelForm, build_app
from mlwidget.widgets.bigupload import ChunkedUpload, default_max_upload


class Page:
    """The browser half of one ChunkedUpload: sends its messages, keeps the kernel's answers."""

    def __init__(self, widget: ChunkedUpload) -> None:
        self.widget = widget
        self.answers: list[dict] = []
        widget.comm.publish_msg = self._published  # the comm has no kernel here: keep messages

    def _published(self, msg_type, data=None, metadata=None, buffers=None, **keys) -> None:
        if data and data.get("method") == "custom":
            self.answers.append(data["content"])

    def say(self, content: dict, *buffers: bytes) -> dict:
        message = {"content": {"data": {"method": "custom", "content": content}}}
        self.widget.comm.handle_msg({**message, "buffers": [memoryview(b) for b in buffers]})
        return self.answers[-1]

    def upload(self, files: dict[str, bytes], step: int = 3, upload_id: str = "u1") -> list[dict]:
        described = [{"name": n, "type": "text/csv", "size": len(b), "last_modified": 0}
                     for n, b in files.items()]  # fmt: skip
        answers = [self.say({"event": "begin", "id": upload_id, "files": described})]
        for index, content in enumerate(files.values()):
            for offset in range(0, len(content), step):
                chunk = content[offset : offset + step]
                answers.append(
                    self.say({"event": "chunk", "id": upload_id, "file": index, "offset": offset},
                             chunk)
                )  # fmt: skip
        answers.append(self.say({"event": "end", "id": upload_id}))
        return answers


def test_slices_acknowledged_in_order_become_the_value() -> None:
    widget = ChunkedUpload(max_bytes=1000, multiple=True)
    page = Page(widget)
    files = {"a.csv": b"x,y\n1,2\n3,4\n", "b.csv": b"x,y\n5,6\n"}
    answers = page.upload(files, step=5)
    received = [a["received"] for a in answers if a["event"] == "ack"]
    assert received == sorted(received) and received[0] == 0 and received[-1] == 20
    assert answers[-1] == {"event": "done", "id": "u1", "received": 20}
    assert [f["name"] for f in widget.value] == ["a.csv", "b.csv"]
    assert [bytes(f["content"]) for f in widget.value] == list(files.values())
    assert [f["size"] for f in widget.value] == [12, 8] and widget.count == 2
    assert widget.error == ""


def test_a_file_past_the_limit_is_refused_before_a_slice_is_sent() -> None:
    widget = ChunkedUpload(max_bytes=10)
    page = Page(widget)
    answer = page.say({"event": "begin", "id": "u1", "files": [{"name": "big.csv", "size": 11}]})
    assert answer["event"] == "refused"
    assert "big.csv is 0.0 MB, more than the 0.0 MB this form accepts" in answer["error"]
    assert widget.error == answer["error"] and widget.value == () and widget.count == 0
    # a slice of it anyway: refused too, nothing kept
    late = page.say({"event": "chunk", "id": "u1", "file": 0, "offset": 0}, b"x")
    assert late["event"] == "refused" and "choose the file again" in late["error"]
    assert widget.value == ()


@pytest.mark.parametrize(
    "chunk",
    [
        {"file": 0, "offset": 3},  # a gap: a slice was lost
        {"file": 1, "offset": 0},  # a file it did not announce
        {"file": 0, "offset": 0, "id": "other"},  # another upload's slice
    ],
)
def test_a_garbled_or_stale_slice_drops_the_upload(chunk: dict) -> None:
    widget = ChunkedUpload(max_bytes=1000)
    page = Page(widget)
    page.say({"event": "begin", "id": "u1", "files": [{"name": "a.csv", "size": 6}]})
    answer = page.say({"event": "chunk", "id": "u1", **chunk}, b"abc")
    assert answer["event"] == "refused" and "choose the file again" in answer["error"]
    if chunk.get("id") != "other":  # the upload under way is dropped: its end is refused
        assert page.say({"event": "end", "id": "u1"})["event"] == "refused"
    assert widget.value == ()


def test_the_limit_is_the_body_limit_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLWIDGET_WIDGET_MAX_UPLOAD", raising=False)
    assert default_max_upload() == limits.current().max_body_size == 256 * 1024 * 1024
    monkeypatch.setenv("MLWIDGET_WIDGET_MAX_UPLOAD", "5000")
    assert default_max_upload() == 5000
    assert ChunkedUpload().max_bytes == 5000


def test_the_new_model_form_reads_a_file_that_arrived_in_slices(store_dir: Path) -> None:
    import pandas as pd

    rows = len(pd.read_csv(NOTEBOOKS / "iris.csv"))
    form = NewModelForm(store=store_dir, max_upload_bytes=100_000)
    page = Page(form.upload)
    page.upload({"iris.csv": (NOTEBOOKS / "iris.csv").read_bytes()}, step=1024)
    assert form.file_info.value == f"iris.csv: {rows} rows × 5 columns"
    assert form.target.value == "species" and form.name.value == "iris"
    # past its limit: the form says why, and keeps the file it had
    refused = page.say(
        {"event": "begin", "id": "u2", "files": [{"name": "huge.csv", "size": 200_000}]}
    )
    assert refused["event"] == "refused"
    assert form.status.kind == "error" and "huge.csv is 0.2 MB, more than" in form.status.text
    assert form.table is not None and len(form.table) == rows


def test_the_history_picker_keeps_the_version_chosen_across_a_rollback(store_dir: Path) -> None:
    import io
    import zipfile

    import yaml

    model = MLModel("iris", data=str(NOTEBOOKS / "iris.csv"), store=store_dir,
                    target_col="species", model={"class": "LogisticRegression"})  # fmt: skip
    model.configure(class_="DecisionTreeClassifier")
    model.retrain()
    model.configure(class_="KNeighborsClassifier")
    model.retrain()
    history = build_app(model).history
    assert history.choice.value == 2  # the newest version not serving
    history.choice.value = 1
    history.rollback_button.click()
    history.yes.click()
    assert model.version == 1
    assert history.choice.value == 1 and history.choice.label == "1 · LogisticRegression · serving"
    assert history.rollback_button.disabled  # it serves already
    assert history.export()
    assert 'download="iris-v1-mlflow.zip"' in history.download.value
    data = model.export_zip("mlflow", history.choice.value)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert yaml.safe_load(archive.read("iris-mlflow/MLmodel"))["metadata"]["version"] == 1
    history.choice.value = 3  # another choice: the link made for version 1 goes
    assert history.download.value == "" and not history.rollback_button.disabled


def test_the_same_file_chosen_again_is_read_again(store_dir: Path) -> None:
    form = NewModelForm(store=store_dir)
    page = Page(form.upload)
    content = (NOTEBOOKS / "iris.csv").read_bytes()
    page.upload({"iris.csv": content}, step=4096)
    form.name.value = "mine"
    page.upload({"iris.csv": content}, step=4096, upload_id="u2")
    assert form.name.value == "iris"  # the form read the file again: a fresh suggestion
