"""Sources that workers read themselves (issue 27): a model trains from a configured Parquet
source and predicts a source into an output folder of Parquet partitions, without the rows
passing through the process that started the job; requests name sources, never paths or URLs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rest_helpers import (
    assert_clean_error,
    assert_no_leak,
    call,
    settled,
    stored,
    titanic_server_config,
)

from mlwidget import MLModel, datasets
from mlwidget.errors import BadRequest, Conflict, Forbidden, NotFound

ROWS = 6_000  # rows of the generated source: 3 files of 2 row groups


def make_rows(n: int, seed: int, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(start, start + n),
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "c": rng.choice(["x", "y", "z"], n),
        }
    )
    frame["y"] = np.where(frame["a"] + frame["b"] + (frame["c"] == "x") > 0.3, "yes", "no")
    return frame


def write_source(folder: Path, frame: pd.DataFrame, files: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(frame) // files)
    for i in range(files):
        piece = frame.iloc[i * size : (i + 1) * size]
        piece.to_parquet(folder / f"part-{i}.parquet", row_group_size=max(1, size // 2))


def answers(out: Path, folder: str) -> pd.DataFrame:
    files = sorted((out / folder).glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


@pytest.fixture
def named_sources(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """``train`` (a folder of Parquet files), ``out`` (an empty output folder)."""
    write_source(tmp_path / "train", make_rows(ROWS, 0))
    paths = {"train": tmp_path / "train", "out": tmp_path / "out"}
    datasets.configure({name: str(path) for name, path in paths.items()})
    yield paths
    datasets.configure({})


def model_of(store_dir: Path, executor: str = "thread") -> MLModel:
    return MLModel(
        "sales",
        store=store_dir,
        class_="LogisticRegression",
        target_col="y",
        exclude=["id"],
        executor=executor,
    )


# ---------------------------------------------------------------------------- from Python


def test_a_worker_process_trains_from_the_source_and_reads_it_again(named_sources, store_dir):
    model = model_of(store_dir, "process")
    answer = model.retrain(source="train")
    assert answer["rows"] == ROWS and answer["version"] == 1
    info = model.info()
    assert info["source"] == "train" and info["rows"] == ROWS
    # the source is the data: the store keeps no copy of its rows
    assert not list((store_dir / "sales").glob("data-*"))
    # a retrain without rows reads the source again, as it is now
    write_source(named_sources["train"] / "more", make_rows(600, 1, start=ROWS), files=1)
    assert model.retrain()["rows"] == ROWS + 600


def test_a_source_job_writes_every_row_once_as_the_model_predicts_it(named_sources, store_dir):
    model = model_of(store_dir, "process")
    model.retrain(source="train")
    result = model.predict_source("train", "out", keys=["id"], proba=True)
    assert result["output"] == "out" and result["source"] == "train"
    assert result["rows"] == ROWS and result["parts"] == 3
    written = answers(named_sources["out"], result["folder"])
    assert sorted(written["id"]) == list(range(ROWS))  # every row, once
    assert list(written.columns) == ["id", "predicted y", "P(no)", "P(yes)", "correct"]
    source = pd.concat(
        [pd.read_parquet(f) for f in sorted(named_sources["train"].glob("*.parquet"))]
    ).set_index("id")
    expected = model.predict(source.loc[written["id"]].drop(columns="y").reset_index())
    assert written["predicted y"].tolist() == expected
    assert np.allclose(written["P(no)"] + written["P(yes)"], 1.0)
    assert result["preview"] == written.head(5).to_dict(orient="records")


def test_a_source_job_without_keys_keeps_the_input_and_marks_the_correct_rows(
    named_sources, store_dir
):
    model = model_of(store_dir)
    model.retrain(source="train")
    result = model.predict_source("train", "out")
    written = answers(named_sources["out"], result["folder"])
    assert list(written.columns) == ["id", "a", "b", "c", "y", "predicted y", "correct"]
    assert written["correct"].tolist() == (written["y"] == written["predicted y"]).tolist()


def test_bad_source_requests_are_refused_before_a_job_and_change_nothing(
    named_sources, store_dir, tmp_path
):
    model = model_of(store_dir)
    with pytest.raises(Conflict, match="not trained"):
        model.predict_source("train", "out")
    model.retrain(source="train")
    before = sorted(p.name for p in (store_dir / "sales").iterdir())
    with pytest.raises(BadRequest, match="keys among the columns"):
        model.predict_source("train", "out", keys=["id", "nope"])
    with pytest.raises(BadRequest, match="other than the source"):
        model.predict_source("train", "train")
    csv_out = datasets.Dataset(str(tmp_path / "csv-out"), format="csv", name="csv-out")
    with pytest.raises(BadRequest, match="Parquet"):
        model.predict_source("train", csv_out)
    with pytest.raises(NotFound, match="Sources: out, train"):
        model.predict_source("nope", "out")
    with pytest.raises(BadRequest, match="data or source"):
        model.retrain(data=make_rows(10, 3), source="train")
    with pytest.raises(Conflict, match="append them to the source"):
        model.append(make_rows(10, 3))
    assert not named_sources["out"].exists()  # no answers folder was started
    assert sorted(p.name for p in (store_dir / "sales").iterdir()) == before
    unclassed = MLModel("plain", store=store_dir, target_col="y", executor="thread")
    with pytest.raises(BadRequest, match="no model class can be chosen"):
        unclassed.retrain(source="train")


def test_a_request_names_a_source_never_a_path_or_url(named_sources):
    assert datasets.from_request("train").url == str(named_sources["train"])
    for location in ("/etc", "../train", "s3://bucket/x", "file:///etc", "~/x", "tr*", ".x"):
        with pytest.raises(Forbidden, match="a path or URL is not accepted"):
            datasets.from_request(location)
    with pytest.raises(NotFound, match="Unknown source 'nope'"):
        datasets.from_request("nope")


def test_sources_come_from_the_environment_until_configured(monkeypatch, tmp_path):
    unconfigured = datasets.Naming({}, configured=False)  # as in a fresh process
    datasets.restore(unconfigured)
    monkeypatch.setenv(datasets.ENV_SOURCES, json.dumps({"logs": str(tmp_path / "*.csv")}))
    assert datasets.named()["logs"].format == "csv"
    datasets.restore(unconfigured)
    monkeypatch.setenv(datasets.ENV_SOURCES, "[1, 2]")
    with pytest.raises(BadRequest, match="JSON object"):
        datasets.named()
    datasets.configure({})
    with pytest.raises(BadRequest, match="source name"):
        datasets.configure({"1bad name": "x.parquet"})
    with pytest.raises(BadRequest, match="parquet or csv"):
        datasets.configure({"text": "notes.txt"})


# ------------------------------------------------------------------------------ over REST


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path, tmp_path: Path) -> dict:
    write_source(tmp_path / "train", make_rows(ROWS, 0))
    sources = {"train": str(tmp_path / "train"), "out": str(tmp_path / "out")}
    config = titanic_server_config(store_dir, titanic_csv, data_sources=sources)
    yield config
    datasets.configure({})


async def test_rest_source_jobs_train_and_predict_by_name(jp_fetch, store_dir, tmp_path):
    put = await call(
        jp_fetch, "mlhandler", "sales", method="PUT",
        params={"_model": "", "class": "LogisticRegression", "target_col": "y", "exclude": "id"},
    )  # fmt: skip
    assert put.code == 200, put.text
    trained = await call(
        jp_fetch, "mlhandler", "sales", method="POST",
        params={"_action": "retrain", "source": "train"},
    )  # fmt: skip
    assert trained.code == 200, trained.text
    assert trained.json()["rows"] == ROWS
    started = await call(
        jp_fetch, "mlhandler", "sales", method="POST",
        params={"_action": "predict", "source": "train", "output": "out", "keys": "id",
                "_wait": "false"},
    )  # fmt: skip
    assert started.code == 202, started.text
    job = started.json()["job"]

    await settled(jp_fetch)  # the job ends (done, failed or cancelled)
    done = (await call(jp_fetch, "mlhandler", "sales", params={"_job": job})).json()
    assert done["status"] == "done", done
    result = done["result"]
    assert result["rows"] == ROWS and result["output"] == "out"
    written = answers(tmp_path / "out", result["folder"])
    assert sorted(written["id"]) == list(range(ROWS))


async def test_rest_refuses_paths_urls_and_bodies_with_sources(jp_fetch, store_dir):
    before = stored(store_dir)
    for value in ("/etc/passwd", "s3://bucket/data", "../train", "file:///etc"):
        for params in (
            {"_action": "retrain", "source": value},
            {"_action": "predict", "source": "train", "output": value},
        ):
            reply = await call(jp_fetch, "mlhandler", "titanic", method="POST", params=params)
            assert_clean_error(reply, 403, "configured source")
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST",
        params={"_action": "predict", "source": "nope", "output": "out"},
    )  # fmt: skip
    assert_clean_error(reply, 404, "Unknown source", "train")
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST",
        params={"_action": "predict", "source": "train"},
    )  # fmt: skip
    assert_clean_error(reply, 400, "output=")
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST",
        params={"_action": "retrain", "source": "train"},
        body="Survived,Age\n1,3\n", headers={"Content-Type": "text/csv"},
    )  # fmt: skip
    assert_clean_error(reply, 400, "got both")
    assert stored(store_dir) == before


class TestConfiguredSource:
    """A configured model whose ``data: {url: ...}`` is a folder (or a glob, or an s3:// URL)
    trains from it as a source at start-up: its job's worker reads the rows."""

    @pytest.fixture
    def jp_server_config(self, store_dir: Path, tmp_path: Path) -> dict:
        write_source(tmp_path / "yaml-rows", make_rows(ROWS, 0))
        options = {"class": "LogisticRegression", "target_col": "y", "exclude": ["id"]}
        yield {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {
                "store_dir": str(store_dir),
                "models": {"yaml_sales": {"data": {"url": str(tmp_path / "yaml-rows")}, **options}},
            },
        }
        datasets.configure({})

    async def test_it_trains_from_the_folder_and_retrains_from_it(self, jp_fetch, tmp_path):
        await settled(jp_fetch)  # the start-up job
        reply = await call(jp_fetch, "mlhandler", "yaml_sales", params={"_model": ""})
        assert reply.code == 200, reply.text
        info = reply.json()
        assert info["source"] == "yaml_sales.data" and info["rows"] == ROWS
        assert_no_leak(reply.text)  # the source's name, not its path
        write_source(tmp_path / "yaml-rows" / "more", make_rows(60, 1, start=ROWS), files=1)
        again = await call(
            jp_fetch, "mlhandler", "yaml_sales", method="POST", params={"_action": "retrain"}
        )
        assert again.code == 200, again.text
        assert again.json()["rows"] == ROWS + 60


class TestAStoppedServerGivesTheProcessItsSourcesBack:
    """A kernel (or test process) that ran a server goes on with its own names of sources: the
    stopped server's names, with the storage options they carry, no longer resolve in it."""

    @pytest.fixture
    def jp_server_config(self, store_dir: Path, tmp_path: Path, monkeypatch) -> dict:
        write_source(tmp_path / "theirs", make_rows(ROWS, 0))
        write_source(tmp_path / "mine", make_rows(ROWS // 2, 1))
        monkeypatch.setenv(datasets.ENV_SOURCES, json.dumps({"mine": str(tmp_path / "mine")}))
        before = datasets.current_naming()
        datasets.restore(datasets.Naming({}, configured=False))  # a fresh process: $ENV names
        yield {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {
                "store_dir": str(store_dir),
                "data_sources": {"theirs": str(tmp_path / "theirs")},
            },
        }
        datasets.restore(before)

    async def test_a_model_after_the_server_trains_from_the_process_own_source(
        self, jp_serverapp, store_dir
    ):
        (app,) = jp_serverapp.extension_manager.extension_apps["mlwidget_server"]
        assert sorted(datasets.named()) == ["theirs"]  # the server's, while it runs
        await app.stop_extension()
        model = model_of(store_dir)
        assert model.retrain(source="mine")["rows"] == ROWS // 2
        with pytest.raises(NotFound, match="Unknown source 'theirs'. Sources: mine"):
            model.retrain(source="theirs")
