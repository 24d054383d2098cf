"""docs/screenshots.py takes the docs' screenshots from a real server and Debian's chromium;
docs/widgets.md shows them, and docs/img holds exactly what it shows."""

from __future__ import annotations

import importlib.util
import os
import re
import struct
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from rest_helpers import CHROMIUM

DOCS = ROOT / "docs"
IMG = DOCS / "img"
MAX_BYTES = 200 * 1024


def load_script():
    spec = importlib.util.spec_from_file_location(
        "mlwidget_docs_screenshots", DOCS / "screenshots.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (which must come first)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert head[12:16] == b"IHDR", f"{path.name} has no IHDR first"
    return struct.unpack(">II", head[16:24])


def assert_sensible(path: Path) -> None:
    assert path.is_file(), f"{path.name} was not saved"
    width, height = png_size(path)
    # an element or the 1200x800 viewport at device scale 1: not a blank sliver, not a page
    assert 300 <= width <= 1200 and 200 <= height <= 1200, (path.name, width, height)
    size = path.stat().st_size
    assert 5_000 < size < MAX_BYTES, (path.name, size)  # blank PNGs are a few hundred bytes


def referenced_images() -> set[str]:
    text = (DOCS / "widgets.md").read_text(encoding="utf-8")
    return set(re.findall(r"!\[[^\]]*\]\(img/([^)\s]+\.png)\)", text))


def test_widgets_md_shows_every_screenshot_and_docs_img_holds_only_those() -> None:
    script = load_script()
    shown = referenced_images()
    assert shown == set(script.SHOTS), "docs/widgets.md and SHOTS differ"
    assert shown == {p.name for p in IMG.glob("*.png")}, "docs/img and docs/widgets.md differ"
    for name in sorted(shown):
        assert_sensible(IMG / name)
    text = (DOCS / "widgets.md").read_text(encoding="utf-8")
    assert ".venv/bin/python docs/screenshots.py" in text  # how to regenerate them


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
def test_script_takes_every_screenshot(tmp_path: Path) -> None:
    script = load_script()
    paths = script.take(tmp_path / "img", tmp_path / "work")
    assert [p.name for p in paths] == list(script.SHOTS)
    assert sorted(p.name for p in (tmp_path / "img").iterdir()) == sorted(script.SHOTS)
    for path in paths:
        assert_sensible(path)
    # the API page is the viewport; the progress shot is the Retrain section mid-fit
    assert png_size(tmp_path / "img" / "api-page.png") == (1200, 800)
    # the large upload is the New model form's strip of the page, caught mid-upload; the file
    # was only read, never made a model
    assert png_size(tmp_path / "img" / "dashboard-large-upload.png") == (1200, 220)
    assert not (tmp_path / "work" / "store" / "sales").exists()
    # the server kept no half-made model: the cancelled fit stored nothing
    assert (tmp_path / "work" / "store" / "titanic").is_dir()
    assert not (tmp_path / "work" / "store" / "iris").exists()
