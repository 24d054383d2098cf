"""mlwidget's Titanic pipeline against Gramex's, fitted on the same rows, in any venv.

    .venv/bin/python benchmarks/pipelines.py              # scikit-learn of the project
    /tmp/gramex-venv/bin/python benchmarks/pipelines.py   # Gramex's scikit-learn (1.3.2)

The guide's table after Gramex's cleaning (dropna, drop_duplicates: 674 rows). mlwidget's
pipeline imputes (most frequent category, mean) before one-hot encoding and scaling, so that a
row with a missing value still gets a prediction; Gramex's one-hot encodes and scales only.
Prints the median fit time of each, after warm-ups. Needs only scikit-learn and pandas.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

TITANIC = Path(__file__).resolve().parent.parent / "notebooks" / "titanic.csv"
CATS = ["Embarked", "Parch", "Pclass", "Sex"]
NUMS = ["Age", "SibSp", "Fare"]


def mlwidget_pipeline() -> Pipeline:
    cats = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    nums = Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", StandardScaler())])
    transform = ColumnTransformer([("cat", cats, CATS), ("num", nums, NUMS)], sparse_threshold=0)
    return Pipeline([("transform", transform), ("estimator", LogisticRegression())])


def gramex_pipeline() -> Pipeline:
    old = tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 2)
    dense = {"sparse": False} if old else {"sparse_output": False}
    onehot = OneHotEncoder(handle_unknown="ignore", **dense)
    transform = ColumnTransformer([("cat", onehot, CATS), ("num", StandardScaler(), NUMS)])
    return Pipeline([("transform", transform), ("estimator", LogisticRegression())])


def median_ms(fit, runs: int = 40) -> float:
    for _ in range(3):
        fit()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fit()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    table = pd.read_csv(TITANIC).drop(columns=["PassengerId", "Ticket", "Cabin", "Name"])
    table = table.dropna().drop_duplicates()
    y = table.pop("Survived")
    for name in CATS:
        table[name] = table[name].astype(str)
    print(f"scikit-learn {sklearn.__version__}, {len(table)} rows")
    for _ in range(2):  # two rounds, in turns: the machine's speed drifts
        ours = median_ms(lambda: mlwidget_pipeline().fit(table, y))
        theirs = median_ms(lambda: gramex_pipeline().fit(table, y))
        print(f"mlwidget's pipeline {ours:.1f} ms, Gramex's {theirs:.1f} ms")


if __name__ == "__main__":
    main()
