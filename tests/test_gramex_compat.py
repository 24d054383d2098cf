"""Where a Gramex MLHandler user meets mlwidget at once: idempotent DELETEs, an emptied training
table, typed `_format=records` echoes, Gramex's `_params` keys, and the README's list of what
differs (against a real Jupyter server, pytest-jupyter)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER, ROOT
from rest_helpers import TITANIC, assert_clean_error, call, titanic_server_config

from mlwidget import MLModel, NotFound

NAME = "titanic"
JSON = {"Content-Type": "application/json"}
# Gramex 1.94.5's gramex.ml_api.TRANSFORMS: the keys of its `?_params` "opts".
GRAMEX_OPTS = {
    "include",
    "exclude",
    "dropna",
    "drop_duplicates",
    "pipeline",
    "nums",
    "cats",
    "target_col",
    "index_col",
}


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv)


def passenger_params(**extra: object) -> dict:
    return {**{k: str(v) for k, v in GUIDE_PASSENGER.items()}, **extra}


async def delete(jp_fetch, params: dict | list) -> dict:
    r = await call(jp_fetch, "mlhandler", NAME, method="DELETE", params=params)
    assert r.code == 200, r.text
    return r.json()


# ------------------------------------------------------------------ 1. idempotent DELETE


async def test_delete_twice_answers_200_with_what_was_absent(jp_fetch):
    # ?delete=model twice (Gramex's spelling): the second finds nothing to delete
    assert await delete(jp_fetch, {"delete": "model"}) == {
        "name": NAME, "deleted": ["model"], "absent": [],
    }  # fmt: skip
    assert await delete(jp_fetch, {"delete": "model"}) == {
        "name": NAME, "deleted": [], "absent": ["model"],
    }  # fmt: skip
    # ?_model when already gone
    assert await delete(jp_fetch, {"_model": ""}) == {
        "name": NAME, "deleted": [], "absent": ["model"],
    }  # fmt: skip
    # ?_cache twice
    assert await delete(jp_fetch, {"_cache": ""}) == {
        "name": NAME, "deleted": ["cache"], "absent": [],
    }  # fmt: skip
    assert await delete(jp_fetch, {"_cache": ""}) == {
        "name": NAME, "deleted": [], "absent": ["cache"],
    }  # fmt: skip
    # both at once, both gone
    assert await delete(jp_fetch, {"_model": "", "_cache": ""}) == {
        "name": NAME, "deleted": [], "absent": ["model", "cache"],
    }  # fmt: skip
    # unknown items stay a 400 (and nothing is deleted), unknown models a 404
    r = await call(jp_fetch, "mlhandler", NAME, method="DELETE", params={"delete": "foo"})
    assert_clean_error(r, 400, "foo")
    r = await call(jp_fetch, "mlhandler", "nosuch", method="DELETE", params={"_model": ""})
    assert_clean_error(r, 404, "nosuch")


async def test_delete_one_item_present_and_one_absent(jp_fetch):
    await delete(jp_fetch, {"_cache": ""})
    assert await delete(jp_fetch, [("delete", "model"), ("delete", "cache")]) == {
        "name": NAME, "deleted": ["model"], "absent": ["cache"],
    }  # fmt: skip


def test_python_deletes_do_not_raise_when_already_deleted(titanic_csv, store_dir):
    m = MLModel(NAME, data=titanic_csv, store=store_dir, **GUIDE_OPTIONS)
    version = m.info()["commit"]
    assert m.delete_model() == {"name": NAME, "deleted": ["model"], "absent": []}
    assert m.delete_model() == {"name": NAME, "deleted": [], "absent": ["model"]}
    assert m.delete_data() == {"name": NAME, "deleted": ["cache"], "absent": []}
    assert m.delete_data() == {"name": NAME, "deleted": [], "absent": ["cache"]}
    # deleting what is absent writes nothing
    assert m.info()["commit"] == version + 2


# ------------------------------------------------------------------ 2. an emptied table


async def test_cache_after_delete_is_an_empty_table(jp_fetch, store_dir, titanic_csv):
    columns = list(pd.read_csv(titanic_csv).columns)
    await delete(jp_fetch, {"_cache": ""})
    r = await call(jp_fetch, "mlhandler", NAME, params={"_cache": ""})
    assert r.code == 200, r.text
    assert r.json() == []
    # CSV: the header alone
    r = await call(jp_fetch, "mlhandler", NAME, params={"_cache": "", "_format": "csv"})
    assert r.code == 200, r.text
    assert "attachment" in r.headers["Content-Disposition"]
    assert r.body.decode().strip().split(",") == columns
    # Python: an empty DataFrame with the stored columns (and their dtypes)
    data = MLModel.open(NAME, store=store_dir).data()
    assert data.empty and list(data.columns) == columns
    assert data["Age"].dtype == "float64" and data["Pclass"].dtype == "int64"
    # the fitted model keeps serving, typed by its schema
    r = await call(jp_fetch, "mlhandler", NAME, params=passenger_params())
    assert r.code == 200 and r.json() == [0]
    # the next append starts a new table
    rows = pd.read_csv(TITANIC).head(3)
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "append"},
        body=rows.to_json(orient="records"), headers=JSON,
    )  # fmt: skip
    assert r.json() == {"rows": 3, "appended": 3}
    assert len((await call(jp_fetch, "mlhandler", NAME, params={"_cache": ""})).json()) == 3


async def test_cache_of_a_model_that_never_had_data_is_404(jp_fetch):
    r = await call(
        jp_fetch, "mlhandler", "nodata", method="PUT",
        params={"_model": "", "class": "LogisticRegression"},
    )  # fmt: skip
    assert r.code == 200, r.text
    r = await call(jp_fetch, "mlhandler", "nodata", params={"_cache": ""})
    assert_clean_error(r, 404, "no training data")


def test_python_data_after_delete_data(titanic_csv, store_dir):
    m = MLModel("plain", data=titanic_csv, store=store_dir)  # data, no class: never trained
    columns = list(m.data().columns)
    m.delete_data()
    assert m.data().empty and list(m.data().columns) == columns
    assert m.info()["rows"] == 0
    with pytest.raises(NotFound, match="no training data"):
        m.retrain()  # nothing to train on
    with pytest.raises(NotFound, match="no training data"):
        MLModel("empty", store=store_dir).data()  # never had data


# ------------------------------------------------------------------ 3. typed records


async def test_get_records_echo_values_typed_by_the_schema(jp_fetch):
    params = passenger_params(_format="records", Name="Bob", PassengerId="7")
    r = await call(jp_fetch, "mlhandler", NAME, params=params)
    assert r.code == 200, r.text
    [row] = r.json()
    # features as the model reads them: numbers are numbers, text stays text; the columns
    # `?_model` marks integer are integers, as Gramex 1.94.5 answers them (1, 0, 3; not 1.0)
    for key in ("Age", "Fare"):
        assert isinstance(row[key], float) and row[key] == GUIDE_PASSENGER[key], (key, row)
    schema = (await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})).json()["schema"]
    integer = {f["name"] for f in schema if f.get("integer")}
    assert {"SibSp", "Parch", "Pclass"} <= integer and "Age" not in integer
    for key in ("SibSp", "Parch", "Pclass"):
        assert isinstance(row[key], int) and row[key] == GUIDE_PASSENGER[key], (key, row)
    assert json.loads(r.body)[0] == row and b'"Pclass":3,' in r.body
    assert row["Sex"] == "male" and row["Embarked"] == "S"
    # columns that are not features stay as given
    assert row["Name"] == "Bob" and row["PassengerId"] == "7"
    assert row["Survived"] == 0
    # an empty value is a missing one (an integer column's too); a fraction stays a fraction
    r = await call(jp_fetch, "mlhandler", NAME, params={**params, "Age": "", "SibSp": ""})
    assert r.code == 200 and r.json()[0]["Age"] is None and r.json()[0]["SibSp"] is None
    r = await call(jp_fetch, "mlhandler", NAME, params={**params, "SibSp": "1.5"})
    assert r.code == 200 and r.json()[0]["SibSp"] == 1.5


async def test_get_csv_and_xlsx_echo_typed_values(jp_fetch):
    params = passenger_params(Name="Bob")
    r = await call(jp_fetch, "mlhandler", NAME, params={**params, "_format": "csv"})
    assert r.code == 200, r.text
    header, line = r.body.decode().strip().splitlines()
    row = dict(zip(header.split(","), line.split(","), strict=True))
    assert row["Age"] == "22.0" and row["Name"] == "Bob"
    assert row["Pclass"] == "3" and row["SibSp"] == "1" and row["Parch"] == "0"  # integers
    r = await call(jp_fetch, "mlhandler", NAME, params={**params, "_format": "xlsx"})
    assert r.code == 200, r.text
    [row] = pd.read_excel(io.BytesIO(r.body)).to_dict("records")
    assert not isinstance(row["Age"], str) and row["Age"] == 22  # a number cell, not text
    assert isinstance(row["Pclass"], int) and row["Pclass"] == 3  # an integer cell
    assert row["Sex"] == "male" and row["Survived"] == 0


async def test_post_records_keep_typed_values_as_given(jp_fetch):
    rows = pd.read_csv(TITANIC).drop(columns=["Survived"]).head(3)
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST", params={"_format": "records"},
        body=rows.to_json(orient="records"), headers=JSON,
    )  # fmt: skip
    assert r.code == 200, r.text
    out = r.json()
    assert [o["Pclass"] for o in out] == list(rows["Pclass"])
    assert all(isinstance(o["Pclass"], int) for o in out)  # JSON's numbers stay as sent
    # text a model reads as numbers is typed, as for GET
    body = json.dumps([{**{k: str(v) for k, v in GUIDE_PASSENGER.items()}, "Name": "Bob"}])
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST", params={"_format": "records"},
        body=body, headers=JSON,
    )  # fmt: skip
    [row] = r.json()
    assert isinstance(row["Age"], float) and row["Name"] == "Bob"


# ------------------------------------------------------------------ 4. Gramex's `_params`


async def test_params_opts_carry_gramex_keys(jp_fetch):
    r = await call(jp_fetch, "mlhandler", NAME, params={"_params": ""})
    assert r.code == 200, r.text
    data = r.json()
    assert set(data) == {"opts", "params", "attrs"}
    opts = data["opts"]
    assert GRAMEX_OPTS <= set(opts), GRAMEX_OPTS - set(opts)
    assert opts["target_col"] == "Survived"
    assert opts["exclude"] == GUIDE_OPTIONS["exclude"]
    assert opts["cats"] == GUIDE_OPTIONS["cats"]
    assert opts["include"] == [] and opts["nums"] == []
    assert opts["dropna"] is True and opts["drop_duplicates"] is True
    assert opts["pipeline"] is True and opts["index_col"] is None
    # mlwidget's own options beside them
    assert opts["deduplicate"] is True
    assert data["params"]["class"] == "LogisticRegression"
    assert data["params"]["params"]["C"] == 1.0
    assert "coef_" in data["attrs"]
    # drop_duplicates follows mlwidget's deduplicate
    r = await call(
        jp_fetch, "mlhandler", NAME, method="PUT", params={"_model": "", "deduplicate": "false"}
    )
    assert r.code == 200, r.text
    opts = (await call(jp_fetch, "mlhandler", NAME, params={"_params": ""})).json()["opts"]
    assert opts["drop_duplicates"] is False and opts["deduplicate"] is False


# ------------------------------------------------------------------ 5. the README


def test_readme_lists_what_a_gramex_user_meets_at_once():
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Coming from Gramex\s*$(.*?)^## ", text, re.M | re.S)
    assert match, "README.md has no 'Coming from Gramex' section"
    section = match.group(1)
    for words in (
        "_format=records",  # the prediction shape, and how to get Gramex 1.94.5's records
        "`?_model`",  # its shape
        "replaces the stored training data",  # retrain with a body
        "`_action=score` without a body",  # a 400
        "stale: true",  # PUT: both keep serving the old model
        '"absent"',  # idempotent DELETE
        "200 []",  # GET ?_cache after DELETE ?_cache
    ):
        assert words in section, words
    assert "PUT replaces the model at once" not in section


GRAMEX_DATA_YAML = """
url:
  mlhandler/dict-data:
    pattern: /$YAMLURL/dict
    handler: MLHandler
    kwargs:
      data: {url: $YAMLPATH/titanic.csv, config_dir: $YAMLPATH/models}
      config_dir: $YAMLPATH/models
      model: {class: LogisticRegression, target_col: Survived,
              exclude: [Name, Ticket, Cabin, PassengerId]}
  mlhandler/relative-ext:
    pattern: /$YAMLURL/relative
    handler: MLHandler
    kwargs:
      data: {url: passengers, ext: csv}
      model: {class: LogisticRegression, target_col: Survived, exclude: [Name, Ticket, Cabin, PassengerId]}
"""


class TestGramexDataSources:
    """Gramex 1.94.5 requires `data: {url: ...}` (and rejects the guide's bare string); mlwidget
    read that dict as a one-row table with a column `url`."""

    @pytest.fixture
    def jp_server_config(self, store_dir: Path, titanic_csv: Path, jp_root_dir: Path) -> dict:
        app = jp_root_dir / "app"
        app.mkdir()
        (app / "titanic.csv").write_bytes(titanic_csv.read_bytes())
        (app / "passengers").write_bytes(titanic_csv.read_bytes())  # no extension: ext says
        (app / "gramex.yaml").write_text(GRAMEX_DATA_YAML)
        return {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {"store_dir": str(store_dir), "config_yaml": str(app / "gramex.yaml")},
        }

    @pytest.mark.parametrize("name", ["mlhandler-dict-data", "mlhandler-relative-ext"])
    async def test_a_gramex_data_dict_trains_the_model(self, jp_fetch, name):
        info = (await call(jp_fetch, "mlhandler", name, params={"_model": ""})).json()
        assert info["rows"] == 891, info
        assert info["fitted"]["model"] == "LogisticRegression"
        assert "/" not in json.dumps(info["options"]["data"])  # a file name, not a server path
        reply = await call(jp_fetch, "mlhandler", name, params=passenger_params())
        assert reply.json() == [0]

    async def test_ignored_gramex_keys_are_warned_about(self, jp_fetch):
        info = await call(jp_fetch, "mlhandler", "mlhandler-dict-data", params={"_model": ""})
        warnings = " ".join(info.json()["warnings"])
        assert "data.config_dir" in warnings and "'config_dir'" in warnings
