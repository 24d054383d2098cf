"""Global importance: ``model.importance()`` shuffles each column of stored rows held out from a
copy of the model and reports how much the score drops, as a job that stores nothing; the
Summary tab computes it with a button and draws it as bars."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import pytest
from conftest import GUIDE_OPTIONS
from rest_helpers import assert_clean_error, call, stored, titanic_server_config

from mlwidget import BadRequest, Conflict, MLModel, NotFound
from mlwidget.jobs import Job
from mlwidget.widgets import build_app


@pytest.fixture
def titanic(store_dir: Path, titanic_csv: Path) -> MLModel:
    return MLModel("titanic", data=str(titanic_csv), store=store_dir, **GUIDE_OPTIONS)


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[tuple[str, float | None]]]:
    """Every report each job of this process gets, by job id: the stage and the job's
    progress right after it."""
    seen: dict[str, list[tuple[str, float | None]]] = collections.defaultdict(list)
    real = Job.report

    def report(self: Job, stage: str, fraction: float | None = None) -> None:
        real(self, stage, fraction)
        seen[self.id].append((stage, self.progress))

    monkeypatch.setattr(Job, "report", report)
    return seen


def test_sex_matters_most_on_held_out_titanic_rows(
    titanic: MLModel, store_dir: Path, reports: dict
) -> None:
    before = stored(store_dir)
    job = titanic.importance(wait=False)  # in a worker process, the default executor
    answer = job.result(120)
    assert job.action == "importance" and job.status == "done" and not job.writer
    columns = [c["column"] for c in answer["importance"]]
    # one entry per input column the model reads, in the original columns (no one-hot parts)
    assert sorted(columns) == sorted(titanic.info()["features"]), columns
    assert "Sex" in columns[:2], answer["importance"]
    sex = answer["importance"][columns.index("Sex")]
    assert sex["mean"] > 0.05 and sex["std"] >= 0, sex  # shuffling Sex costs accuracy
    assert answer["metric"] == "accuracy" and 0.6 < answer["baseline"] <= 1, answer
    assert answer["rows"] + answer["train_rows"] == 891 and answer["repeats"] == 5, answer
    stages = [s for s, _ in reports[job.id]]
    assert {"holdout", "importance", "save"} <= set(stages), stages  # after "load", its start
    assert stages.index("holdout") < stages.index("importance") < stages.index("save")
    shuffles = [p for s, p in reports[job.id] if s == "importance" and p is not None]
    assert shuffles == sorted(shuffles) and len(set(shuffles)) > 10, shuffles  # each shuffle
    assert job.to_dict()["result"] == answer  # ?_job shows it
    assert stored(store_dir) == before  # nothing stored changed


def test_a_metric_and_bounds_are_used_and_checked(titanic: MLModel, store_dir: Path) -> None:
    answer = titanic.importance(metric="f1_weighted", repeats=2, rows=100)
    assert answer["metric"] == "f1_weighted" and answer["repeats"] == 2 and answer["rows"] == 100
    jobs = len(titanic.jobs())
    for asked, words in [
        ({"repeats": 0}, ["repeats", "1 to 20", "0"]),
        ({"rows": "lots"}, ["rows", "'lots'"]),
        ({"metric": "accuracy_please"}, ["scorer name", "accuracy_please"]),
    ]:
        with pytest.raises(BadRequest) as caught:
            titanic.importance(**asked)
        assert all(w in str(caught.value) for w in words), (asked, caught.value)
    assert len(titanic.jobs()) == jobs  # bad input: no job


def test_a_model_without_training_data_is_a_clear_error(titanic: MLModel, store_dir: Path) -> None:
    titanic.delete_data()  # it still serves; its rows are gone
    before, jobs = stored(store_dir), len(titanic.jobs())
    with pytest.raises(NotFound) as caught:
        titanic.importance()
    text = str(caught.value)
    assert "'titanic' has no training data" in text and "append rows" in text, text
    assert caught.value.status == 404
    assert len(titanic.jobs()) == jobs and stored(store_dir) == before

    empty = MLModel("empty", store=store_dir, **GUIDE_OPTIONS)  # no data: never trained
    with pytest.raises(Conflict, match="'empty' is not trained yet"):
        empty.importance()


def test_the_summary_tab_computes_and_draws_it(titanic: MLModel) -> None:
    app = build_app(titanic)
    view = app.summary.global_importance
    assert view.image.layout.display == "none" and view.answer is None  # only when asked
    view.compute_button.click()
    view.wait(120)
    assert view.status.kind == "ok", view.status.text
    assert view.answer is not None and "Sex" in [c["column"] for c in view.answer["importance"][:2]]
    assert bytes(view.image.value).startswith(b"\x89PNG") and view.image.layout.display == ""
    assert "Most important:" in view.status.text and "Sex" in view.status.text
    assert "held-out rows" in view.caption.value
    assert not view.compute_button.disabled and view.cancel_button.layout.display == "none"


# ------------------------------------------------------------------------------------ REST

GUIDE_FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv)


async def importance_over_rest(jp_fetch, **params: str):
    return await call(
        jp_fetch, "mlhandler", "titanic", method="POST", params={"_action": "importance", **params}
    )


async def test_importance_over_rest_answers_as_python_does(jp_fetch, store_dir: Path) -> None:
    before = stored(store_dir)
    reply = await importance_over_rest(jp_fetch, repeats="3", rows="150", _metric="f1_weighted")
    assert reply.code == 200, reply.text
    answer = reply.json()
    columns = [c["column"] for c in answer["importance"]]
    assert sorted(columns) == sorted(GUIDE_FEATURES) and "Sex" in columns[:2], answer
    assert (answer["metric"], answer["repeats"], answer["rows"]) == ("f1_weighted", 3, 150)
    means = [c["mean"] for c in answer["importance"]]
    assert means == sorted(means, reverse=True)  # the largest drop first
    # a job that stores nothing, listed among the model's jobs
    jobs = (await call(jp_fetch, "mlhandler", "titanic", params={"_jobs": ""})).json()
    assert [j["status"] for j in jobs if j["action"] == "importance"] == ["done"]
    assert stored(store_dir) == before

    started = await importance_over_rest(jp_fetch, repeats="2", _wait="false")
    assert started.code == 202, started.text
    job = started.json()["job"]
    assert started.headers["Location"].endswith(f"?_job={job}")
    state = await job_state(jp_fetch, job)
    assert state["status"] == "done", state
    assert state["result"]["repeats"] == 2 and len(state["result"]["importance"]) == 7


@pytest.mark.parametrize(
    "params, status, words",
    [
        ({"repeats": "0"}, 400, ["repeats", "1"]),
        ({"repeats": "many"}, 400, ["repeats"]),
        ({"rows": "5"}, 400, ["rows", "20"]),
        ({"_metric": "no_such_metric"}, 400, ["scorer", "no_such_metric"]),
    ],
)
async def test_a_bad_importance_request_is_a_400_before_any_job(
    jp_fetch, store_dir: Path, params: dict, status: int, words: list
) -> None:
    before = stored(store_dir)
    jobs = (await call(jp_fetch, "mlhandler", "titanic", params={"_jobs": ""})).json()
    assert_clean_error(await importance_over_rest(jp_fetch, **params), status, *words)
    assert (await call(jp_fetch, "mlhandler", "titanic", params={"_jobs": ""})).json() == jobs
    assert stored(store_dir) == before


async def job_state(jp_fetch, job: str) -> dict:
    """The job's state once it has ended (polled; a bound, not a measurement)."""
    deadline = time.monotonic() + 120
    while True:
        state = (await call(jp_fetch, "mlhandler", "titanic", params={"_job": job})).json()
        if state["status"] in ("done", "failed", "cancelled") or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.1)
