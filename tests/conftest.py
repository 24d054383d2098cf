"""Shared fixtures: a real Jupyter server (pytest-jupyter), temp stores, the bundled data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture
def titanic_csv(tmp_path: Path) -> Path:
    """A private copy of the bundled Titanic CSV (891 rows)."""
    dest = tmp_path / "data" / "titanic.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(NOTEBOOKS / "titanic.csv", dest)
    return dest


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model store, also exported as MLWIDGET_STORE for code that uses the default."""
    path = tmp_path / "store"
    path.mkdir()
    monkeypatch.setenv("MLWIDGET_STORE", str(path))
    return path


GUIDE_PASSENGER = {
    "Sex": "male",
    "Age": 22,
    "SibSp": 1,
    "Parch": 0,
    "Fare": 7.25,
    "Pclass": 3,
    "Embarked": "S",
}

# The guide's "Creating New Models" config, its misspelled SibSb included.
GUIDE_OPTIONS = {
    "class": "LogisticRegression",
    "target_col": "Survived",
    "exclude": ["PassengerId", "Ticket", "Cabin", "Name"],
    "cats": ["Embarked", "SibSb", "Parch", "Pclass", "Sex"],
}
