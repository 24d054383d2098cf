"""Screenshots of the product for docs/widgets.md, taken from a real server by a real browser.

    .venv/bin/python docs/screenshots.py [--out docs/img]

Makes a temporary store with the Titanic demo model (three versions: the guide's logistic
regression, a C=0.5 one, a random forest), starts ``python -m jupyter_server`` with the voila
and mlwidget_server extensions on it, drives Debian's chromium (Playwright) through the Voila
dashboard, the listing page, the API page and the model page, and saves one PNG per view
(``SHOTS``). Nothing is downloaded: the browser may only reach the local server.
tests/test_screenshots.py runs :func:`take` the same way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / "tests", ROOT / "server_extension", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER, NOTEBOOKS  # noqa: E402
from rest_helpers import (  # noqa: E402
    launch_chromium,
    predict_the_guide_passenger,
    project_pythonpath,
    server_process,
)

VIEWPORT = {"width": 1200, "height": 800}
TIMEOUT_MS = 120_000  # the machine may be busy: a Voila kernel, a fit
# file name -> what it shows (docs/widgets.md captions say the same)
SHOTS = {
    "dashboard-predict.png": "the dashboard's Predict tab for the Titanic model",
    "dashboard-bulk.png": "bulk predictions: actual vs predicted, and the score",
    "dashboard-history.png": "the History tab after retrains",
    "dashboard-new-model.png": "the dashboard's New model form with iris.csv chosen",
    "listing-new-model.png": "the listing page's New model panel after uploading iris.csv",
    "api-page.png": "the API page and its snippets",
    "page-progress.png": "a retrain in progress on the model page",
    "page-explain.png": "the model page's Explain: a waterfall of one prediction",
    "page-history.png": "the model page's History: versions, scores, Roll back",
    "dashboard-large-upload.png": "a 40 MB CSV on its way to the New model form",
}


@dataclass
class Server:
    url: str
    token: str

    def at(self, path: str) -> str:
        """``path`` on the server, logged in by the token."""
        sep = "&" if "?" in path else "?"
        return f"{self.url}/{path}{sep}token={self.token}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}


def make_store(store: Path) -> None:
    """The Titanic demo model with three versions, for the History tab."""
    from mlwidget import MLModel

    model = MLModel("titanic", data=str(NOTEBOOKS / "titanic.csv"), store=store, **GUIDE_OPTIONS)
    model.configure(C=0.5)
    model.retrain()
    model.configure(class_="RandomForestClassifier", n_estimators=50, max_depth=6)
    model.retrain()


@contextmanager
def serve(tmp: Path) -> Iterator[Server]:
    """A jupyter server with Voila and mlwidget_server on a fresh Titanic store."""
    root, store, runtime = tmp / "root", tmp / "store", tmp / "runtime"
    for folder in (root, store, runtime):
        folder.mkdir(parents=True, exist_ok=True)
    for name in ("dashboard.ipynb", "titanic.csv"):
        shutil.copy(NOTEBOOKS / name, root / name)
    make_store(store)
    env = dict(
        os.environ,
        MLWIDGET_STORE=str(store),
        JUPYTER_RUNTIME_DIR=str(runtime),
        PYTHONPATH=project_pythonpath(),  # the Voila kernel inherits it
    )
    with server_process(
        root=root,
        env=env,
        log=tmp / "server.log",
        extensions=("voila.server_extension", "mlwidget_server"),
        cwd=tmp,
    ) as (url, token):
        yield Server(url, token)


def _offline(page, server: Server) -> None:
    """Only the local server answers (the Voila template links CDNs)."""
    page.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(server.url + "/") else route.abort()
        ),
    )


def dashboard_shots(page, server: Server, out: Path) -> None:
    """Predict, bulk predictions, History, then the New model form: one Voila page."""
    from playwright.sync_api import expect

    page.goto(server.at("voila/render/dashboard.ipynb"))
    app = page.locator(".mlwidget-app")
    app.wait_for()
    expect(page.locator(".mlwidget-title")).to_have_text("Model: titanic")
    for name, value in GUIDE_PASSENGER.items():
        field = page.locator(f".mlwidget-input-{name}")
        if field.locator("select").count():
            field.locator("select").select_option(label=str(value))
        else:
            field.locator("input").fill(str(value))
            field.locator("input").press("Tab")
    page.locator(".mlwidget-predict-button").click()
    expect(page.locator(".mlwidget-predict .mlwidget-prediction")).to_have_text("0")
    expect(page.locator(".mlwidget-proba-value").first).to_be_visible()
    page.locator(".mlwidget-dashboard").screenshot(path=out / "dashboard-predict.png")

    page.get_by_role("tab", name="Upload").click()
    upload = page.locator(".mlwidget-upload")
    with page.expect_file_chooser() as chooser:
        upload.locator(".mlwidget-upload-file").click()
    chooser.value.set_files(str(NOTEBOOKS / "titanic.csv"))
    expect(upload.locator(".mlwidget-upload-info")).to_contain_text("titanic.csv")
    upload.locator(".mlwidget-upload-run").click()
    expect(upload.locator(".mlwidget-file-score")).to_be_visible()
    expect(upload.locator(".mlwidget-upload-result table")).to_be_visible()
    upload.screenshot(path=out / "dashboard-bulk.png")

    page.get_by_role("tab", name="History").click()
    history = page.locator(".mlwidget-history-panel")
    expect(history.locator(".mlwidget-version-row")).to_have_count(3)
    expect(history.locator(".mlwidget-history-plot")).to_be_visible()
    # versions 1 and 2 differ in C only: a short comparison (2 and 3 list every parameter)
    history.locator(".widget-dropdown", has_text="Compare").locator("select").select_option(
        label="1 · LogisticRegression"
    )
    history.locator(".widget-dropdown", has_text="with").locator("select").select_option(
        label="2 · LogisticRegression"
    )
    expect(history.locator(".mlwidget-diff")).to_contain_text("0.5")
    expect(history.locator(".mlwidget-diff")).not_to_contain_text("bootstrap")
    page.locator(".mlwidget-dashboard").screenshot(path=out / "dashboard-history.png")

    page.locator(".mlwidget-new-button").click()
    form = page.locator(".mlwidget-new")
    with page.expect_file_chooser() as chooser:
        form.locator(".mlwidget-new-file").click()
    chooser.value.set_files(str(NOTEBOOKS / "iris.csv"))
    expect(form.locator(".mlwidget-new-preview table")).to_be_visible()
    expect(form.locator(".mlwidget-new-target select")).to_have_value("species")
    expect(form.locator(".mlwidget-new-why")).to_contain_text("so this is classification")
    expect(form.locator(".mlwidget-new-name input")).to_have_value("iris")
    form.screenshot(path=out / "dashboard-new-model.png")


def listing_shot(page, server: Server, out: Path) -> None:
    """The listing page's New model panel with iris.csv read (not created)."""
    from playwright.sync_api import expect

    page.goto(server.at("mlhandler/"))
    page.set_input_files("#new-file", str(NOTEBOOKS / "iris.csv"))
    expect(page.locator("#new-preview-table tbody tr")).to_have_count(10)
    expect(page.locator("#new-target")).to_have_value("species")
    expect(page.locator("#new-kind")).to_have_text("classifier")
    expect(page.locator("#new-reason")).to_contain_text("species")
    page.locator("#new-model").screenshot(path=out / "listing-new-model.png")


def api_page_shot(page, server: Server, out: Path) -> None:
    """The top of the API page: what it is, the snippets."""
    from playwright.sync_api import expect

    page.goto(server.at("mlhandler/titanic?_openapi&_format=html"))
    expect(page.locator("h1")).to_have_text("titanic · API")
    expect(page.locator("#snippet-curl-get")).to_be_visible()
    page.screenshot(path=out / "api-page.png", clip={"x": 0, "y": 0, **VIEWPORT})


def progress_shot(page, server: Server, out: Path) -> None:
    """A slow retrain (1500 boosting stages) caught mid-fit on the model page, then
    cancelled: nothing is stored, and the staged class is set back."""
    import requests
    from playwright.sync_api import expect

    api = f"{server.url}/mlhandler/titanic"

    def put(**params: str) -> None:
        reply = requests.put(api, params={"_model": "", **params}, headers=server.auth, timeout=60)
        reply.raise_for_status()

    put(**{"class": "GradientBoostingClassifier", "n_estimators": "1500"})
    try:
        page.goto(server.at("mlhandler/titanic"))
        page.click("#retrain-submit")
        expect(page.locator("#retrain-cancel")).to_be_visible()
        expect(page.locator("#retrain-result")).to_contain_text("%")
        page.wait_for_function(
            "() => document.querySelector('#retrain-progress').value >= 0.1",
            timeout=TIMEOUT_MS,
        )
        page.locator("#retrain-section").screenshot(path=out / "page-progress.png")
        page.click("#retrain-cancel")
        expect(page.locator("#retrain-result .error")).to_contain_text("was cancelled")
    finally:
        put(**{"class": "RandomForestClassifier", "n_estimators": "50", "max_depth": "6"})


def explain_and_history_shots(page, server: Server, out: Path) -> None:
    """The model page: the guide's passenger explained (the serving forest's waterfall), then
    the History section with the three versions."""
    from playwright.sync_api import expect

    page.goto(server.at("mlhandler/titanic"))
    predict_the_guide_passenger(page)
    page.click("#explain-submit")
    expect(page.locator("#explain-result svg.waterfall g.wf-row").first).to_be_visible()
    page.locator("#predict-section").screenshot(path=out / "page-explain.png")
    history = page.locator("#history-section")
    expect(history.locator("tr.history-row")).to_have_count(3)
    expect(history.locator("#history-scores")).to_be_visible()
    history.screenshot(path=out / "page-history.png")


def large_upload_shot(page, server: Server, out: Path) -> None:
    """A 40 MB CSV (made here) caught a third of the way to the dashboard's kernel: the
    browser's upload is slowed to 4 MB/s for the picture (Chromium's network emulation)."""
    import tempfile

    import numpy as np
    import pandas as pd
    from playwright.sync_api import expect

    with tempfile.TemporaryDirectory(prefix="mlwidget-big-") as scratch:
        csv = Path(scratch) / "sales.csv"
        rng = np.random.default_rng(0)
        rows = 415_000
        table = pd.DataFrame(
            rng.normal(size=(rows, 10)).round(6), columns=[f"x{i}" for i in range(10)]
        )
        table["amount"] = (3 * table.sum(axis=1) + rng.normal(size=rows)).round(4)
        table.to_csv(csv, index=False)
        page.goto(server.at("voila/render/dashboard.ipynb"))
        page.locator(".mlwidget-app").wait_for()
        page.locator(".mlwidget-new-button").click()
        form = page.locator(".mlwidget-new")
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        slow = {"offline": False, "latency": 0, "downloadThroughput": -1}
        cdp.send("Network.emulateNetworkConditions", {**slow, "uploadThroughput": 4 * 1024 * 1024})
        with page.expect_file_chooser() as chooser:
            form.locator(".mlwidget-new-file").click()
        chooser.value.set_files(str(csv))
        page.wait_for_function(
            "() => (document.querySelector('.mlwidget-new .mlwidget-upload-bar') || {}).value >= 0.3"
        )
        box = page.locator(".mlwidget-picker").bounding_box()
        page.screenshot(
            path=out / "dashboard-large-upload.png",
            clip={"x": 0, "y": max(box["y"] - 12, 0), "width": VIEWPORT["width"], "height": 220},
        )
        cdp.send("Network.emulateNetworkConditions", {**slow, "uploadThroughput": -1})
        expect(form.locator(".mlwidget-new-info")).to_contain_text(f"{rows} rows")


STEPS: list[Callable] = [
    dashboard_shots,
    listing_shot,
    api_page_shot,
    explain_and_history_shots,
    progress_shot,
    large_upload_shot,
]


def take(out: Path, tmp: Path | None = None) -> list[Path]:
    """Start a server on a fresh store in ``tmp`` (a temporary folder if None), take every
    screenshot into ``out``; the PNGs' paths, in ``SHOTS`` order."""
    from playwright.sync_api import expect, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    with tempfile.TemporaryDirectory(prefix="mlwidget-shots-") as scratch:
        with serve(Path(tmp or scratch)) as server, sync_playwright() as p:
            browser = launch_chromium(p)
            try:
                context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
                page = context.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                _offline(page, server)
                for step in STEPS:
                    step(page, server, out)
            finally:
                browser.close()
    return [out / name for name in SHOTS]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="PNG folder")
    args = parser.parse_args(argv)
    for path in take(args.out):
        print(f"{path}  {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
