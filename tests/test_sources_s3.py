"""Sources on S3: the same flow against an S3 API on 127.0.0.1 (moto's server mode), read and
written through s3fs by the worker process that runs the job. The credentials stay in the
configuration: the model's stored state names the source, never its storage options."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from test_sources import make_rows

from mlwidget import MLModel, datasets

pytest.importorskip("s3fs")
boto3 = pytest.importorskip("boto3")
MOTO = str(Path(sys.executable).with_name("moto_server"))
BUCKET = "sales-bucket"
SECRET = "not-a-real-secret-42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[dict]:
    """An S3 API on 127.0.0.1 with an empty bucket; yields fsspec storage options for it."""
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90  # a bound for a busy machine, not a measurement
        while True:
            assert server.poll() is None, (tmp_path / "moto.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.1)
        keys = {"aws_access_key_id": "test", "aws_secret_access_key": SECRET}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys).create_bucket(
            Bucket=BUCKET
        )
        yield {
            "key": "test",
            "secret": SECRET,
            "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    finally:
        datasets.configure({})
        server.terminate()
        server.wait(30)
        log.close()


def test_a_model_trains_from_s3_and_predicts_into_s3(s3, store_dir):
    frame = make_rows(3_000, 0)
    for i in range(3):
        piece = frame.iloc[i * 1000 : (i + 1) * 1000]
        piece.to_parquet(f"s3://{BUCKET}/train/part-{i}.parquet", storage_options=s3)
    datasets.configure(
        {
            "train": {"url": f"s3://{BUCKET}/train/", "storage_options": s3},
            "out": {"url": f"s3://{BUCKET}/scored", "storage_options": s3},
        }
    )
    model = MLModel(
        "sales",
        store=store_dir,
        class_="LogisticRegression",
        target_col="y",
        exclude=["id"],
        executor="process",  # a worker process reads and writes S3 itself
    )
    assert model.retrain(source="train")["rows"] == 3_000
    result = model.predict_source("train", "out", keys=["id"])
    assert result["rows"] == 3_000 and result["parts"] == 3
    written = pd.read_parquet(f"s3://{BUCKET}/scored/{result['folder']}/", storage_options=s3)
    assert sorted(written["id"]) == list(range(3_000))
    assert written["predicted y"].tolist() == model.predict(
        frame.set_index("id").loc[written["id"]].drop(columns="y").reset_index()
    )
    state = (store_dir / "sales" / "state.json").read_text()
    assert "scored" not in state and SECRET not in state and "train" in state
