"""Synthetic Titanic-like tables of any size (deterministic), and the guide's options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
TITANIC = ROOT / "notebooks" / "titanic.csv"
FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
GUIDE = {
    "target_col": "Survived",
    "exclude": ["PassengerId", "Ticket", "Cabin", "Name"],
    "cats": ["Embarked", "Parch", "Pclass", "Sex"],
}
PASSENGER = {
    "Sex": "male",
    "Age": 22,
    "SibSp": 1,
    "Parch": 0,
    "Fare": 7.25,
    "Pclass": 3,
    "Embarked": "S",
}


def titanic() -> pd.DataFrame:
    return pd.read_csv(TITANIC)


def synthetic(rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` Titanic passengers resampled with jittered Age and Fare, so that
    deduplication keeps nearly all of them; missing values stay where they were."""
    base = titanic()
    rng = np.random.default_rng(seed)
    out = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    out["PassengerId"] = np.arange(1, rows + 1)
    age = out["Age"] + rng.normal(0, 2, rows)
    out["Age"] = age.clip(0.5, 80).round(1)
    out["Fare"] = (out["Fare"] * rng.lognormal(0, 0.1, rows)).round(4)
    return out
