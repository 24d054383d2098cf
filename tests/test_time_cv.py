"""Cross-validation forward in time (mlwidget/crossval.py): a model that reads a date column is
scored on later rows by folds fitted on earlier ones (``split: "time"``), in a retrain's
cv_score and in a search, so a model that can only fill gaps between the rows it saw (a tree
on a trend) is not scored as if it could forecast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlwidget import MLModel, crossval, limits, training
from mlwidget.widgets import build_app

DAYS = 300


def trend(seed: int = 0) -> pd.DataFrame:
    """A value that grows day by day (plus noise), its dates in shuffled row order."""
    rng = np.random.default_rng(seed)
    day = rng.permutation(DAYS)
    return pd.DataFrame(
        {
            "when": (pd.Timestamp("2024-01-01") + pd.to_timedelta(day, unit="D")).astype(str),
            "noise": rng.normal(size=DAYS),
            "value": day + rng.normal(scale=2, size=DAYS),
        }
    )


def test_every_fold_trains_on_rows_before_the_ones_it_scores() -> None:
    table = trend().assign(when=lambda t: t["when"].where(t.index != 7, None))  # one undated
    when = pd.to_datetime(table["when"])
    splits, by, warns = crossval.splits(table, table["value"], "regressor", 5, by="when")
    assert (len(splits), by, warns) == (5, "when", [])
    tested = np.concatenate([test for _, test in splits])
    assert len(tested) == len(set(tested)) and 7 not in tested  # each row scored once at most
    for train, test in splits:
        assert when.iloc[train].max() < when.iloc[test].min()  # the past, then the future
        assert len(train) >= len(test)
    # without a date column: shuffled folds that score every row once
    shuffled, by, _ = crossval.splits(table, table["value"], "regressor", 5)
    assert by is None and sorted(np.concatenate([t for _, t in shuffled])) == list(range(DAYS))


def test_a_date_shared_by_many_rows_is_never_on_both_sides_of_a_fold() -> None:
    rng = np.random.default_rng(1)
    days = rng.permutation(np.repeat(np.arange(40), 7))  # 40 dates, 7 rows each
    table = pd.DataFrame(
        {"when": (pd.Timestamp("2024-01-01") + pd.to_timedelta(days, unit="D")).astype(str)}
    ).assign(value=days.astype(float))
    splits, by, _ = crossval.splits(table, table["value"], "regressor", 5, by="when")
    assert by == "when" and len(splits) == 5
    for train, test in splits:
        assert table["value"].iloc[train].max() < table["value"].iloc[test].min()
    # fewer distinct dates than folds + 1: time says little, the folds are shuffled
    few = table.assign(when=np.where(days < 20, "2024-01-01", "2024-06-01"))
    assert crossval.splits(few, few["value"], "regressor", 5, by="when")[1] is None


def test_a_classifier_whose_early_rows_hold_one_class_skips_those_folds() -> None:
    rows = 120
    table = pd.DataFrame(
        {
            "when": pd.date_range("2024-01-01", periods=rows).astype(str),
            "x": np.arange(rows, dtype=float),
            "label": ["a"] * 50 + ["a", "b"] * 35,  # "b" only from the 51st day on
        }
    )
    splits, by, warns = crossval.splits(table, table["label"], "classifier", 5, by="when")
    assert by == "when" and 2 <= len(splits) < 5
    assert warns and "one class only" in warns[0]
    assert all(table["label"].iloc[train].nunique() == 2 for train, _ in splits)


@pytest.mark.cross_validates
def test_a_date_model_is_scored_forward_in_time(store_dir: Path) -> None:
    model = MLModel(
        "trend", data=trend(), store=store_dir, target_col="value", executor="thread",
        class_="DecisionTreeRegressor", random_state=0,
    )  # fmt: skip
    assert model.info()["dates"] == ["when"]
    cv_score = model.info()["fitted"]["cv_score"]
    assert (cv_score["split"], cv_score["by"], cv_score["folds"]) == ("time", "when", 5)
    assert cv_score["on"] == "5-fold cv forward in time"
    caption = build_app(model).summary.performance_caption.value
    assert "5-fold cv forward in time" in caption and "rows before it" in caption, caption
    # the same pipeline and rows, folds shuffled: a tree fills gaps well, forecasts badly
    ready = training.prepare(model.info()["options"], model.data(), (), limits.current())
    shuffled, _, _ = crossval.run(ready.pipeline, ready.X, ready.y, ready.kind, 5)
    assert shuffled is not None and shuffled["split"] == "shuffled" and "by" not in shuffled
    assert shuffled["value"] > 0.95 and cv_score["value"] < shuffled["value"] - 0.5
    # a search of the same model is scored on the same folds
    found = model.search({"max_depth": [3, 8]}, cv=3)
    assert (found["split"], found["by"]) == ("time", "when")
    latest = model.info()["fitted"]["cv_score"]
    assert latest["split"] == "time" and latest["search"] is True
    # without the date column read as dates (dates=[]), the folds are shuffled again
    model.configure(dates=[])
    assert model.retrain()["cv_score"]["split"] == "shuffled"
