"""Progress a user can follow: a forest's trees grown in chunks sized by their measured speed
(never fewer than ten reports), the time left (``eta_seconds``) while a stage runs, and the
cross-validation as its own stage whose folds move as their fits do.

No clock: jobs are held mid-stage by ``mlwidget.jobs.pause.Pause`` and every report a job gets
is recorded; the speed a chunk size follows is given to ``chunk_size`` or set by ``EVERY``."""

from __future__ import annotations

import collections
import re
import time
from pathlib import Path

import pytest
from conftest import GUIDE_OPTIONS

from mlwidget import MLModel, limits, progress, training
from mlwidget.jobs import Job
from mlwidget.jobs.pause import Pause
from mlwidget.widgets import build_app

Seen = dict[str, list[tuple[str, "float | None"]]]


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> Seen:
    """Every report each job of this process gets, by job id: the stage and the job's
    ``progress`` right after it (what a reader of the job then saw)."""
    seen: Seen = collections.defaultdict(list)
    real = Job.report

    def report(self: Job, stage: str, fraction: float | None = None) -> None:
        real(self, stage, fraction)
        seen[self.id].append((stage, self.progress))

    monkeypatch.setattr(Job, "report", report)
    return seen


def forest(store_dir: Path, titanic_csv: Path, trees: int, folds: int = 0) -> MLModel:
    """The Titanic model (its first fit without folds), then staged as a forest."""
    model = MLModel(
        "titanic", data=str(titanic_csv), store=store_dir, executor="thread", cv_folds=0,
        **GUIDE_OPTIONS,
    )  # fmt: skip
    model.configure(
        {"class": "RandomForestClassifier", "n_estimators": trees, "random_state": 0},
        cv_folds=folds,
    )
    return model


def fractions(seen: list[tuple[str, float | None]], stage: str) -> list[float]:
    return [p for s, p in seen if s == stage and p is not None]


def wait_until(check, within: float = 120.0) -> None:
    """Wait for ``check()`` to hold (a bound, not a measurement)."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_forest_reports_many_fractions_and_the_time_left(
    store_dir: Path, titanic_csv: Path, reports: Seen
) -> None:
    model = forest(store_dir, titanic_csv, trees=300)
    with Pause("fit", when=lambda p: p is not None and 0.5 <= p < 1) as pause:
        job = model.retrain(wait=False)
        assert pause.reached.wait(120) and pause.job is job
        state = job.to_dict()
        assert state["status"] == "running" and state["stage"] == "fit", state
        eta = state["eta_seconds"]  # the rest of the fit, at the pace of its trees so far
        assert isinstance(eta, float) and eta >= 0, state
        assert job.eta_seconds is not None and job.eta_seconds >= 0
    job.result(120)
    done = job.to_dict()
    assert "eta_seconds" in done and done["eta_seconds"] is None, done
    seen = fractions(reports[job.id], "fit")
    assert seen == sorted(seen), seen  # never backwards
    below = sorted({p for p in seen if p < 1})
    # ten chunks at the least (a tenth of the forest each), whatever the speed
    assert len(below) >= progress.CHUNKS - 1, seen
    assert seen[-1] == 1


@pytest.mark.parametrize(
    "target, rounds",
    [("Survived", 150), ("Pclass", 40)],  # Pclass 1..3: LabelEncoded
)
def test_xgboost_reports_its_rounds_and_fits_as_one_fit_does(
    store_dir: Path, titanic_csv: Path, reports: Seen, target: str, rounds: int
) -> None:
    pytest.importorskip("xgboost")
    options = {**GUIDE_OPTIONS, "target_col": target, "cats": ["Embarked", "Sex"]}
    model = MLModel(
        "boosted", data=str(titanic_csv), store=store_dir, executor="thread", cv_folds=0,
        **{**options, "class": "XGBClassifier"}, n_estimators=rounds, max_depth=2,
    )  # fmt: skip
    job = model.retrain(wait=False)
    job.result(120)
    seen = fractions(reports[job.id], "fit")
    assert seen == sorted(seen) and seen[-1] == 1, seen
    assert len({p for p in seen if 0 < p < 1}) >= 30, seen  # a report a round or two
    assert len(seen) <= 102, len(seen)  # at most a hundred, with the first and the last
    # the stored model is a plain fit's: no callback left in it, the same predictions
    final = model.pipeline.steps[-1][1]
    inner = getattr(final, "estimator_", final)
    assert inner.get_params()["callbacks"] is None
    ready = training.prepare(
        model.info()["options"], model.data(), (), limits.current()
    )  # the same pipeline, unfitted, and its training frame: fitted in one call, no callback
    ready.pipeline.fit(ready.X, ready.y)
    assert model.predict(ready.X) == ready.pipeline.predict(ready.X).tolist()


def test_chunks_follow_the_measured_speed_of_the_trees() -> None:
    """A chunk takes about ``EVERY`` seconds at the speed seen: slow trees one per core, fast
    ones a tenth of the forest (the most), and never none."""
    every = progress.EVERY
    assert progress.chunk_size(every * 3, workers=2, most=30) == 1  # three chunks' time a tree
    assert progress.chunk_size(every / 2.5, workers=2, most=30) == 2  # one per core
    assert progress.chunk_size(every / 7, workers=4, most=30) == 4  # whole rounds of the cores
    assert progress.chunk_size(every / 1000, workers=2, most=30) == 30
    assert progress.chunk_size(0.0, workers=2, most=30) == 30


def test_slow_trees_report_after_each_tree_and_grow_the_same_forest(
    store_dir: Path, titanic_csv: Path, reports: Seen, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With chunks aimed at no time at all (every tree "slow"), each tree is a report; the
    forest is the one grown in ten chunks (its trees' seeds do not depend on the chunks)."""
    model = forest(store_dir, titanic_csv, trees=60)
    model.retrain()
    rows = model.data().head(50)
    coarse = model.predict_proba(rows)
    monkeypatch.setattr(progress, "EVERY", 0.0)
    job = model.retrain(wait=False)
    job.result(120)
    below = {p for p in fractions(reports[job.id], "fit") if 0 < p < 1}
    assert len(below) >= 50, sorted(below)  # 59 chunks of one tree (the first: one per core)
    assert model.predict_proba(rows) == coarse


def test_cross_validation_is_its_own_stage_and_moves_within_its_folds(
    store_dir: Path, titanic_csv: Path, reports: Seen, ceilings
) -> None:
    ceilings(cv_seconds=3600)  # the folds run however long a busy machine makes the fit
    model = forest(store_dir, titanic_csv, trees=100, folds=5)
    with Pause("cv", when=lambda p: p is not None and 0.5 <= p < 1) as pause:
        job = model.retrain(wait=False)
        answer = job.result(120)
        assert answer["cv_score"]["pending"], answer
        assert pause.reached.wait(300)
        follow = pause.job
        assert follow.id == answer["cv_score"]["job"] and follow.action == "crossval"
        state = follow.to_dict()
        assert state["stage"] == "cv" and state["status"] == "running", state
        assert isinstance(state["eta_seconds"], float) and state["eta_seconds"] >= 0, state
    cv_score = follow.result(300)
    assert cv_score["on"] == "5-fold cv"
    assert "cv" not in {s for s, _ in reports[job.id]}  # the retrain's fit is the fit alone
    stages = {s for s, _ in reports[follow.id]}
    assert "cv" in stages and "fit" not in stages, stages  # the folds' fits count as "cv"
    seen = fractions(reports[follow.id], "cv")
    assert seen == sorted(seen), seen
    # each fold's trees move the stage (ten chunks a fold at the least), not the folds alone
    assert len({p for p in seen if p < 1}) >= 5 * (progress.CHUNKS - 1), seen
    assert follow.to_dict()["eta_seconds"] is None


def test_widgets_show_cross_validation_and_the_time_left(
    store_dir: Path, titanic_csv: Path, ceilings
) -> None:
    ceilings(cv_seconds=3600)
    model = forest(store_dir, titanic_csv, trees=100, folds=5)
    app = build_app(model)
    app.editor.refresh()
    line = re.compile(r"cross-validation · \d+% · [\d.]+ s · (about \d+ (s|min) left|almost done)")
    with Pause("cv", when=lambda p: p is not None and 0.5 <= p < 1) as pause:
        app.editor.retrain_button.click()
        assert pause.reached.wait(300)
        wait_until(lambda: bool(line.search(app.editor.status.text)))
        assert pause.holding and app.editor.status.kind == "busy"
    app.wait(300)
    assert app.editor.status.kind == "ok", app.editor.status.text
    assert "left" not in app.editor.status.text
