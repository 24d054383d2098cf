"""What a second attack run found after the safety fixes (issue 10), each reproduced here."""

from __future__ import annotations

import asyncio
import datetime
import io
import json
from pathlib import Path

import filelock
import pandas as pd
import pytest
from conftest import GUIDE_PASSENGER
from rest_helpers import assert_clean_error, call, stored, titanic_server_config, wait_until_async

from mlwidget import BadRequest, MLModel, PayloadTooLarge
from mlwidget.errors import Busy
from mlwidget.tables import read_table

NAME = "titanic"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv)


def put(jp_fetch, name: str, body: dict):
    return call(
        jp_fetch, "mlhandler", name, method="PUT", params={"_model": ""},
        body=json.dumps(body), headers=JSON,
    )  # fmt: skip


async def test_a_refused_put_never_removes_a_model_created_meanwhile(jp_fetch, store_dir):
    """A good and a bad PUT to a new name at once: the bad one removed the good one's model
    (4 times in 6), answered 500 once, and left the name answering 404 until a restart."""
    for i in range(6):
        name = f"race{i}"
        good, bad = await asyncio.gather(
            put(jp_fetch, name, {"class": "LogisticRegression", "C": 0.5}),
            put(jp_fetch, name, {"class": "LogisticRegression", "C": "notanumber"}),
        )
        assert good.code == 200, good.text
        assert_clean_error(bad, 400, "C")
        info = MLModel.open(name, store=store_dir).info()
        assert info["params"]["C"] == 0.5
        assert (await call(jp_fetch, "mlhandler", name, params={"_model": ""})).code == 200


async def test_writers_waiting_for_a_busy_model_hold_no_worker(
    jp_fetch, jp_serverapp, store_dir, monkeypatch
):
    """Three PUTs waiting for a model's lock (held by a long fit) took every worker: the
    listing and ?_model of every model stopped answering."""
    assert (await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})).code == 200
    await put(jp_fetch, "other", {"class": "LogisticRegression"})
    refused = watch_busy_writes(jp_serverapp, monkeypatch)
    lock = filelock.FileLock(str(store_dir / NAME / ".lock"))
    lock.acquire()  # as a retrain in another process holds it
    try:
        writers = [
            asyncio.ensure_future(put(jp_fetch, NAME, {"C": 0.1 * (i + 1)})) for i in range(6)
        ]
        # every writer has found the model busy (and waits); then the rest is asked. A read
        # stuck behind them would wait for the lock this test holds: the timeout bounds that.
        await wait_until_async(lambda: len(refused) == 6, what="six writers finding it busy")
        for params in ({}, {"_model": ""}):
            for name in ("", "other"):
                reply = await call(jp_fetch, "mlhandler", name, params=params, request_timeout=60)
                assert reply.code == 200, reply.text
        reply = await call(jp_fetch, "mlhandler", NAME, params=GUIDE_PASSENGER, request_timeout=60)
        assert reply.json() == [0]
        assert not any(w.done() for w in writers)  # they wait...
    finally:
        lock.release()
    replies = await asyncio.gather(*writers)  # ...and land once the model is free
    assert [r.code for r in replies] == [200] * 6


def watch_busy_writes(serverapp, monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """The server's calls on its worker threads that found a model busy (its lock held), as a
    set that fills as they do: one entry per call however often it is tried again."""
    (app,) = serverapp.extension_manager.extension_apps["mlwidget_server"]
    registry, refused = app.registry, set()
    pool = registry.executor

    class Watched:
        def submit(self, fn, /, *args, **kwargs):
            def watched():
                try:
                    return fn(*args, **kwargs)
                except Busy:
                    refused.add(id(fn))  # the same call each time it is tried again
                    raise

            return pool.submit(watched)

        def __getattr__(self, name: str):
            return getattr(pool, name)

    monkeypatch.setattr(registry, "executor", Watched())
    return refused


async def test_errors_quote_a_huge_value_in_part(jp_fetch):
    """A 50 MB parameter value came back whole in the error (and in the log)."""
    reply = await put(jp_fetch, NAME, {"class": "LogisticRegression", "C": "x" * 200_000})
    assert_clean_error(reply, 400, "C", "characters in all")
    assert len(reply.body) < 5_000


@pytest.mark.parametrize("cls", ["LabelEncoder", "KernelCenterer"])
async def test_classes_without_declared_parameters_are_not_a_500(jp_fetch, store_dir, cls):
    reply = await put(jp_fetch, "odd", {"class": cls})
    assert reply.code < 500, reply.text


@pytest.mark.parametrize(
    "body",
    [
        {"class": "KernelDensity"},
        {"class": "FeatureHasher"},
        {"class": "OneVsRestClassifier", "estimator": "KMeans"},
    ],
    ids=["KernelDensity", "FeatureHasher", "OneVsRest-KMeans"],
)
async def test_estimators_that_cannot_predict_answer_4xx(jp_fetch, body):
    """They trained, then every prediction answered 500."""
    await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})
    assert (await put(jp_fetch, NAME, body)).code == 200
    retrain = await call(jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "retrain"})
    if retrain.code != 200:
        assert_clean_error(retrain, 400)
        return
    rows = json.dumps([GUIDE_PASSENGER] * 3)
    for params in ({}, {"_format": "records"}):
        reply = await call(
            jp_fetch, "mlhandler", NAME, method="POST", params=params, body=rows, headers=JSON
        )
        assert reply.code == 200 or 400 <= reply.code < 500, reply.text
        if reply.code != 200:
            assert_clean_error(reply, reply.code)


def test_a_small_parquet_whose_text_decodes_to_gigabytes_is_413():
    """346 KB of dictionary-encoded text took the server to 4 GB (and kept it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    # 1.5 million rows of four 2000-character texts: 3 GB of text once decoded. Written from
    # the dictionary-encoded column itself (never building the 3 GB in this process), as a
    # plain text column (no Arrow schema stored: a reader sees strings, not categories); its
    # pages are byte for byte what writing the decoded column with use_dictionary gives.
    indices = pa.array([0, 1, 2, 3] * 375_000, type=pa.int32())
    texts = pa.array(["a" * 2000, "b" * 2000, "c" * 2000, "d" * 2000])
    table = pa.table({"Sex": pa.DictionaryArray.from_arrays(indices, texts)})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", use_dictionary=True, store_schema=False)
    content = buf.getvalue()
    assert pq.ParquetFile(io.BytesIO(content)).schema_arrow.field("Sex").type == pa.string()
    assert len(content) < 2_000_000
    with pytest.raises(PayloadTooLarge, match="unpacks"):
        read_table(content)
    # an ordinary table of the same shape still reads
    small = pd.DataFrame({"Sex": ["male", "female"] * 1000})
    buf = io.BytesIO()
    small.to_parquet(buf)
    pd.testing.assert_frame_equal(read_table(buf.getvalue()), small)


# --- third attack run (issue 15's new paths: preview, _format=table, default class, names) ---

CSV = {"Content-Type": "text/csv"}


def preview(jp_fetch, body: bytes, **params: str):
    return call(
        jp_fetch, "mlhandler", "", method="POST", params={"_action": "preview", **params},
        body=body, headers=CSV,
    )  # fmt: skip


def wide_csv(columns: int) -> bytes:
    header = ",".join(f"c{i}" for i in range(columns))
    return f"{header}\n{','.join('1' for _ in range(columns))}\n".encode()


async def test_a_preview_of_a_very_wide_header_is_refused_not_minutes_of_work(jp_fetch):
    """A 1 MB CSV of 100,000 columns held a worker for 108 s (a quadratic duplicate check) and
    answered 8 MB; a wide table is now a 413 at once, and 2,000 columns still preview."""
    from mlwidget import suggest

    reply = await preview(jp_fetch, wide_csv(suggest.MAX_COLUMNS + 1), request_timeout=30)
    assert_clean_error(reply, 413, f"{suggest.MAX_COLUMNS:,} columns", "PUT")
    reply = await preview(jp_fetch, wide_csv(suggest.MAX_COLUMNS), request_timeout=30)
    assert reply.code == 200, reply.text
    assert len(reply.json()["columns"]) == suggest.MAX_COLUMNS


async def test_a_preview_of_a_header_without_rows_says_so(jp_fetch):
    """A header-only file previewed as "0 rows ... y holds 0 distinct text values, so this is
    classification", and Create then failed after the model was made."""
    reply = await preview(jp_fetch, b"x,y\n")
    assert_clean_error(reply, 400, "no rows", "header")


async def test_a_target_of_one_value_is_not_trained_as_a_constant_model(jp_fetch, store_dir):
    """A target holding one value got "1 distinct text values, so this is classification" and,
    with no class given, a RandomForestClassifier that always answers it, scored 1.0."""
    body = b"x,y\n1,a\n2,a\n3,a\n4,a\n"
    reply = await preview(jp_fetch, body)
    assert reply.code == 200
    assert "cannot learn" in reply.json()["reason"] and "'a'" in reply.json()["reason"]
    missing = await preview(jp_fetch, b"x,y\n1,\n2,\n")
    assert "no values" in missing.json()["reason"]

    assert (await call(jp_fetch, "mlhandler", "one", method="PUT",
                       params={"_model": "", "target_col": "y"})).code == 200  # fmt: skip
    before = stored(store_dir, "one")
    reply = await call(jp_fetch, "mlhandler", "one", method="POST", body=body, headers=CSV,
                       params={"_action": "retrain", "target_col": "y"})  # fmt: skip
    assert_clean_error(reply, 400, "No class was given", "only the value 'a'", "two or more")
    assert stored(store_dir, "one") == before


async def test_class_probabilities_are_held_to_max_table_cells(jp_fetch, store_dir, ceilings):
    """_proba=true (and predict_proba) built rows x classes cells with no ceiling: a classifier
    of 10,000 classes made a 200,000-row file into two billion probabilities."""

    rows = "\n".join(f"{i},c{i}" for i in range(60))
    train = f"x,y\n{rows}\n".encode()
    assert (await call(jp_fetch, "mlhandler", "many", method="PUT",
                       params={"_model": "", "class": "DecisionTreeClassifier",
                               "target_col": "y"})).code == 200  # fmt: skip
    fit = await call(jp_fetch, "mlhandler", "many", method="POST", body=train, headers=CSV,
                     params={"_action": "retrain", "target_col": "y"})  # fmt: skip
    assert fit.code == 200, fit.text
    body = ("x\n" + "\n".join(str(i % 60) for i in range(300)) + "\n").encode()
    ceilings(max_table_cells=10_000)  # 300 rows x 60 classes = 18,000 cells
    before = stored(store_dir, "many")
    for params in (
        {"_action": "predict_proba"},
        {"_action": "predict", "_format": "table", "_proba": "true"},
    ):
        reply = await call(jp_fetch, "mlhandler", "many", method="POST", body=body,
                           headers=CSV, params=params)  # fmt: skip
        assert_clean_error(reply, 413, "300 rows", "probabilities", "max_table_cells")
    # without the probabilities, the same rows fit
    reply = await call(jp_fetch, "mlhandler", "many", method="POST", body=body, headers=CSV,
                       params={"_action": "predict", "_format": "table"})  # fmt: skip
    assert reply.code == 200 and len(reply.json()["rows"]) == 300
    assert stored(store_dir, "many") == before


async def test_names_that_cannot_be_served_are_refused_in_words(jp_fetch, store_dir):
    """PUT mlhandler/v2 answered "Method Not Allowed"; a 300-letter name was "expected letters,
    digits, ..." and told to try the same 300 letters."""
    reply = await call(jp_fetch, "mlhandler", "v2", method="PUT",
                       params={"_model": "", "class": "LogisticRegression"})  # fmt: skip
    assert_clean_error(reply, 400, "Open Inference Protocol", "another name")
    reply = await call(jp_fetch, "mlhandler", "a" * 300, method="PUT",
                       params={"_model": "", "class": "LogisticRegression"})  # fmt: skip
    data = assert_clean_error(reply, 400, "at most 128 characters", "300 characters")
    assert f"Try '{'a' * 128}'" in data["error"]
    assert sorted(p.name for p in store_dir.iterdir()) in ([], ["titanic"])  # nothing made


def test_the_dashboard_never_makes_a_model_named_v2(tmp_path):
    """The dashboard's New model named a model after its file, v2.csv made "v2": a model the
    server cannot serve (mlhandler/v2 is the Open Inference Protocol's path)."""
    from mlwidget.widgets.picker import NewModelForm, model_name_for

    assert model_name_for("v2.csv", []) == "model-v2"
    form = NewModelForm(store=tmp_path)
    content = b"x,y\n1,a\n2,b\n3,a\n"
    form.upload.value = (  # as ipywidgets 8 sends it from the browser
        {
            "name": "v2.csv",
            "type": "text/csv",
            "size": len(content),
            "content": memoryview(content),
            "last_modified": datetime.datetime.now(datetime.timezone.utc),
        },
    )
    form._on_upload()
    assert form.name.value == "model-v2"
    form.name.value = "v2"
    assert form.create() is False
    assert "Open Inference Protocol" in form.status.text
    assert not (tmp_path / "v2").exists()
    with pytest.raises(BadRequest) as err:  # the same words as MLModel("v2"): one check
        MLModel("v2", store=tmp_path)
    assert str(err.value) in form.status.text


def test_python_never_makes_a_model_named_v2(tmp_path):
    """REST refused a model named v2 but MLModel("v2") made one: a model the server cannot
    reach (mlhandler/v2 is the Open Inference Protocol's path)."""
    for make in (
        lambda: MLModel("v2", store=tmp_path, **{"class": "LogisticRegression"}),
        lambda: MLModel("v2", data=pd.DataFrame({"x": [1, 2], "y": [0, 1]}), store=tmp_path),
        lambda: MLModel.open("v2", store=tmp_path),
    ):
        with pytest.raises(BadRequest) as err:
            make()
        assert err.value.status == 400
        message = str(err.value)
        assert "other than 'v2'" in message and "Open Inference Protocol" in message, message
        assert "Choose another name, such as 'model-v2'" in message, message
    assert not (tmp_path / "v2").exists()
    assert MLModel("model-v2", store=tmp_path, **{"class": "LogisticRegression"}).name


# Third attack run (issue 25)

TAG = "<!--<script>"


async def test_v2_an_integer_past_float64_is_a_400_naming_the_input(jp_fetch):
    """V2 infer answered 500 for a 400-digit integer in an FP64 input (np.asarray raised
    OverflowError), where the MLHandler API answered 400 for the same value."""
    assert (await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})).code == 200
    huge = 10**400

    def infer(row: dict, datatypes: dict | None = None):
        inputs = [
            {
                "name": key,
                "datatype": (datatypes or {}).get(key, "BYTES" if isinstance(v, str) else "FP64"),
                "shape": [1],
                "data": [v],
            }
            for key, v in row.items()
        ]
        return call(jp_fetch, "mlhandler", "v2", "models", NAME, "infer", method="POST",
                    body=json.dumps({"inputs": inputs}), headers=JSON)  # fmt: skip

    for value in (huge, -huge):
        reply = await infer(dict(GUIDE_PASSENGER, Age=value))
        assert_clean_error(reply, 400, "'Age'", "401 digits", "row 1", "FP64")
    # an INT64 input out of range (Pclass: categories that are numbers) is the same 400
    reply = await infer(dict(GUIDE_PASSENGER, Pclass=huge), {"Pclass": "INT64"})
    assert_clean_error(reply, 400, "'Pclass'", "401 digits")
    # one 2-D input whose columns are named: the column is named
    row = dict(GUIDE_PASSENGER, Fare=huge)
    body = {"inputs": [{"name": "rows", "datatype": "BYTES", "shape": [1, len(row)],
                        "data": [list(row.values())], "parameters": {"columns": list(row)}}]}  # fmt: skip
    reply = await call(jp_fetch, "mlhandler", "v2", "models", NAME, "infer", method="POST",
                       body=json.dumps(body), headers=JSON)  # fmt: skip
    assert_clean_error(reply, 400, "'Fare'", "401 digits")
    # many rows (the worker's path, not the compiled predictor's): the row is named
    rows = [GUIDE_PASSENGER] * 300
    inputs = [
        {"name": key, "datatype": "BYTES" if isinstance(v, str) else "FP64", "shape": [300],
         "data": [r[key] for r in rows[:-1]] + [huge if key == "Age" else v]}
        for key, v in GUIDE_PASSENGER.items()
    ]  # fmt: skip
    reply = await call(jp_fetch, "mlhandler", "v2", "models", NAME, "infer", method="POST",
                       body=json.dumps({"inputs": inputs}), headers=JSON)  # fmt: skip
    assert_clean_error(reply, 400, "'Age'", "row 300")
    # a huge number where a category belongs is a category the model has not seen: answered
    reply = await infer(dict(GUIDE_PASSENGER, Sex=huge), {"Sex": "INT64"})
    assert reply.code == 200, reply.text
    # as the MLHandler API does for the same value
    body = json.dumps([dict(GUIDE_PASSENGER, Age=huge)])
    reply = await call(jp_fetch, "mlhandler", NAME, method="POST", body=body, headers=JSON)
    assert_clean_error(reply, 400, "'Age'")


@pytest.mark.parametrize("option", ["keep_versions", "cv_folds"])
@pytest.mark.parametrize(
    "value", ["²", "⁵", "1" * 5000, "٣", "-3", "2.0", "1000001"],
    ids=["superscript-2", "superscript-5", "5000-digits", "arabic-indic-3", "negative",
         "fraction", "over-a-million"],
)  # fmt: skip
async def test_counts_in_other_digits_or_huge_are_a_400_naming_the_option(
    jp_fetch, store_dir, option, value
):
    """PUT ?_model&keep_versions=%C2%B2 (or ⁵, or 5,000 digits) answered 500: "²".isdigit()
    is true, then int("²") raised."""
    assert (await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})).code == 200
    before = stored(store_dir)
    reply = await call(jp_fetch, "mlhandler", NAME, method="PUT",
                       params={"_model": "", option: value})  # fmt: skip
    data = assert_clean_error(reply, 400, option, "whole number", "1,000,000", "digits 0-9")
    assert len(data["error"]) < 400  # 5,000 digits are quoted in part
    reply = await put(jp_fetch, NAME, {option: value})  # a JSON body: the same
    assert_clean_error(reply, 400, option, "whole number")
    assert stored(store_dir) == before
    reply = await call(jp_fetch, "mlhandler", NAME, method="PUT",
                       params={"_model": "", option: " 3 "})  # fmt: skip
    assert reply.code == 200, reply.text
    assert reply.json()["options"][option] == 3


def test_counts_from_python_raise_bad_request(tmp_path):
    """MLModel.configure(keep_versions="²") raised a plain ValueError (int()'s), not an
    MLWidgetError; a 5,000-digit int was taken as the number of versions to keep."""
    from mlwidget.options import parse_count

    model = MLModel("counts", store=tmp_path, **{"class": "LogisticRegression"})
    for value in ("²", "⁵", "1" * 5000, 10**5000, 10**6 + 1, True, 2.0):
        with pytest.raises(BadRequest, match="keep_versions") as err:
            model.configure(keep_versions=value)
        assert err.value.status == 400 and len(str(err.value)) < 400
    with pytest.raises(BadRequest, match="cv_folds"):
        model.configure(cv_folds=1)
    model.configure(keep_versions="4", cv_folds=0)
    assert (model.options["keep_versions"], model.options["cv_folds"]) == (4, 0)
    assert parse_count("n", "0007") == 7
    with pytest.raises(BadRequest, match="n to be a whole number from 0 to 5"):
        parse_count("n", "7", most=5)


async def test_a_category_that_opens_an_html_comment_keeps_the_page_working(jp_fetch, store_dir):
    """A training value <!--<script> left the model page's parameter editor empty and its
    forms dead: tornado's json_encode escaped </ but not <!-- or <script in the inline JSON,
    so </script> no longer ended the page's script."""
    import re

    values = [TAG, "a", TAG, "b", "</script>", "a & <b>"]
    frame = pd.DataFrame({"x": [1, 2, 3, 4, 5, 6], "c": values, "y": [0, 1] * 3})
    options = {"class": "LogisticRegression", "target_col": "y"}
    MLModel("tagged", data=frame, store=store_dir, **options)
    reply = await call(jp_fetch, "mlhandler", "tagged")
    assert reply.code == 200 and reply.headers["Content-Type"].startswith("text/html")
    match = re.search(r"^let INFO = (.*);$", reply.text, re.MULTILINE)
    assert match, reply.text[-2000:]
    raw = match.group(1)
    for text in ("<!--", "<script", "</", "<", ">", "&"):
        assert text not in raw, text
    info = json.loads(raw)  # the same value the script reads
    categories = next(f for f in info["schema"] if f["name"] == "c")["categories"]
    assert sorted(categories) == sorted(set(values))
    model = await call(jp_fetch, "mlhandler", "tagged", params={"_model": ""})
    assert info["schema"] == model.json()["schema"]
    # the listing page's inline JSON is written the same way
    reply = await call(jp_fetch, "mlhandler", "", headers={"Accept": "text/html"})
    assert reply.code == 200
    lines = re.findall(r"^const [A-Z_]+ = (.*);$", reply.text, re.MULTILINE)
    assert "/mlhandler/" in json.loads(lines[1])  # LIST, the API the page asks
    assert "tagged" in reply.text and not any("<" in line for line in lines)
