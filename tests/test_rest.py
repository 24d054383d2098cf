"""The MLHandler guide's requests, in order, against a real Jupyter server (pytest-jupyter)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER, ROOT
from rest_helpers import (
    TITANIC,
    assert_clean_error,
    call,
    jupyter_server,
    multipart,
    titanic_server_config,
)

from mlwidget import MLModel

NAME = "titanic"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d @file` sends
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv)


@pytest.fixture
def titanic() -> pd.DataFrame:
    return pd.read_csv(TITANIC)


def records(df: pd.DataFrame) -> bytes:
    return df.to_json(orient="records").encode()


def xlsx(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_excel(buf, index=False)
    return buf.getvalue()


def passenger_params(**extra: object) -> dict:
    return {**{k: str(v) for k, v in GUIDE_PASSENGER.items()}, **extra}


async def test_guide_requests_in_order(jp_fetch, titanic, store_dir):
    features = titanic.drop(columns=["Survived"])

    # "Getting predictions": GET with the passenger's features
    r = await call(jp_fetch, "mlhandler", NAME, params=passenger_params())
    assert r.code == 200, r.text
    assert r.json() == [0]

    # "Getting bulk predictions": curl -X POST -d @titanic_predict.json ?_action=predict
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "predict"},
        body=records(features), headers=FORM,
    )  # fmt: skip
    assert r.code == 200, r.text
    preds = r.json()
    assert len(preds) == len(titanic) and set(preds) == {0, 1}
    # the same with an explicit JSON content type, and without _action (predict is the default)
    r = await call(jp_fetch, "mlhandler", NAME, method="POST", body=records(features), headers=JSON)
    assert r.json() == preds

    # bulk upload of a CSV file and of an XLSX file (requests.post(files=...) / curl -F)
    body, headers = multipart([("file", "titanic.csv", TITANIC.read_bytes())])
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "predict"},
        body=body, headers=headers,
    )  # fmt: skip
    assert r.code == 200, r.text
    assert r.json() == preds
    body, headers = multipart([("file", "titanic.xlsx", xlsx(features))])
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "predict"},
        body=body, headers=headers,
    )  # fmt: skip
    assert r.code == 200, r.text
    assert r.json() == preds
    # curl -X POST -d @titanic.xlsx: the content decides
    r = await call(jp_fetch, "mlhandler", NAME, method="POST", body=xlsx(features), headers=FORM)
    assert r.json() == preds

    # "Retraining the model": POST -d @titanic.json ?_action=retrain&target_col=Survived
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST",
        params={"_action": "retrain", "target_col": "Survived"}, body=records(titanic), headers=FORM,
    )  # fmt: skip
    assert r.code == 200, r.text
    assert 0.75 < r.json()["score"] < 0.9
    # ... and with the CSV as a file upload
    body, headers = multipart([("file", "titanic.csv", TITANIC.read_bytes())])
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST",
        params={"_action": "retrain", "target_col": "Survived"}, body=body, headers=headers,
    )  # fmt: skip
    assert r.code == 200, r.text
    assert 0.75 < r.json()["score"] < 0.9
    # ... and as curl -d @titanic.csv sends it
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST",
        params={"_action": "retrain", "target_col": "Survived"}, body=TITANIC.read_bytes(),
        headers=FORM,
    )  # fmt: skip
    assert r.code == 200, r.text
    assert r.json()["metric"] == "accuracy"

    # "See model parameters": GET ?_model
    r = await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})
    info = r.json()
    assert info["model"] == "LogisticRegression"
    assert info["params"]["C"] == 1.0 and info["params"]["solver"] == "lbfgs"
    assert info["target_col"] == "Survived" and info["stale"] is False
    assert any("SibSb" in w for w in info["warnings"])  # the guide's typo is reported

    # "Change the model": PUT ?_model&class=RandomForestClassifier (staged, not retrained)
    r = await call(
        jp_fetch, "mlhandler", NAME, method="PUT",
        params={"_model": "", "class": "RandomForestClassifier"},
    )  # fmt: skip
    assert r.code == 200, r.text
    info = r.json()
    assert info["model"] == "RandomForestClassifier" and info["params"]["n_estimators"] == 100
    assert info["stale"] is True and info["fitted"]["model"] == "LogisticRegression"
    # a kernel sees the PUT
    assert MLModel.open(NAME, store=store_dir).info()["model"] == "RandomForestClassifier"

    # PUT ?_model&n_estimators=10
    r = await call(
        jp_fetch, "mlhandler", NAME, method="PUT", params={"_model": "", "n_estimators": "10"}
    )
    assert r.code == 200, r.text
    assert r.json()["params"]["n_estimators"] == 10
    r = await call(jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "retrain"})
    assert r.code == 200, r.text
    assert r.json()["model"] == "RandomForestClassifier"
    r = await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})
    assert r.json()["fitted"]["params"]["n_estimators"] == 10

    # PUT ?_model&class=SGDClassifier&loss=log_loss
    r = await call(
        jp_fetch, "mlhandler", NAME, method="PUT",
        params={"_model": "", "class": "SGDClassifier", "loss": "log_loss"},
    )  # fmt: skip
    assert r.code == 200, r.text
    info = r.json()
    assert info["model"] == "SGDClassifier" and info["params"]["loss"] == "log_loss"

    # PUT ?_model&exclude=PassengerId&exclude=Name&cats=Embarked (repeated keys: a list)
    r = await call(
        jp_fetch, "mlhandler", NAME, method="PUT",
        params=[("_model", ""), ("exclude", "PassengerId"), ("exclude", "Name"), ("cats", "Embarked")],
    )  # fmt: skip
    assert r.code == 200, r.text
    options = r.json()["options"]
    assert options["exclude"] == ["PassengerId", "Name"] and options["cats"] == ["Embarked"]
    r = await call(jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "retrain"})
    assert r.code == 200, r.text
    assert r.json()["model"] == "SGDClassifier"
    # the PUT list replaced the stored one: Ticket and Cabin are features now (empty: imputed)
    r = await call(jp_fetch, "mlhandler", NAME, params=passenger_params(Ticket="", Cabin=""))
    assert r.code == 200, r.text
    assert r.json() in ([0], [1])

    # "Delete a model": DELETE ?_model; predictions answer 404 until the next train
    r = await call(jp_fetch, "mlhandler", NAME, method="DELETE", params={"_model": ""})
    assert r.code == 200, r.text
    assert r.json()["deleted"] == ["model"]
    assert_clean_error(
        await call(jp_fetch, "mlhandler", NAME, params=passenger_params()), 404, "retrain"
    )
    r = await call(jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "train"})
    assert r.code == 200, r.text

    # FAQ: score by multipart: curl -X POST -F "file=@test.csv" ?_action=score
    body, headers = multipart([("file", "test.csv", TITANIC.read_bytes())])
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "score"},
        body=body, headers=headers,
    )  # fmt: skip
    assert r.code == 200, r.text
    # (an unseeded SGDClassifier at this point of the guide: any accuracy is possible)
    assert r.json()["metric"] == "accuracy" and 0 <= r.json()["score"] <= 1
    assert r.json()["rows"] == 891
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST",
        params={"_action": "score", "_metric": "f1_weighted"}, body=body, headers=headers,
    )  # fmt: skip
    assert r.json()["metric"] == "f1_weighted"

    # FAQ: ?_download gives a joblib-loadable model
    r = await call(jp_fetch, "mlhandler", NAME, params={"_download": ""})
    assert r.code == 200
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert "attachment" in r.headers["Content-Disposition"]
    pipeline = joblib.load(io.BytesIO(r.body))
    assert pipeline.predict(features.head(3)).shape == (3,)

    # FAQ: ?_cache gives the training data (JSON; _format=csv downloads it)
    r = await call(jp_fetch, "mlhandler", NAME, params={"_cache": ""})
    assert r.code == 200
    assert len(r.json()) == len(titanic) and "Survived" in r.json()[0]
    r = await call(jp_fetch, "mlhandler", NAME, params={"_cache": "", "_format": "csv"})
    assert r.code == 200 and "attachment" in r.headers["Content-Disposition"]
    assert len(pd.read_csv(io.BytesIO(r.body))) == len(titanic)

    # FAQ: append as JSON (Content-Type: application/json) and as a file (-F file=@data.json)
    rows = titanic.head(5)
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "append"},
        body=records(rows), headers=JSON,
    )  # fmt: skip
    assert r.code == 200, r.text
    assert r.json() == {"rows": len(titanic) + 5, "appended": 5}
    body, headers = multipart([("file", "data.json", records(rows))])
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "append"},
        body=body, headers=headers,
    )  # fmt: skip
    assert r.code == 200, r.text
    assert r.json() == {"rows": len(titanic) + 10, "appended": 5}
    assert len(MLModel.open(NAME, store=store_dir).data()) == len(titanic) + 10

    # FAQ: DELETE ?_cache; the fitted model keeps serving, the training data is an empty table
    r = await call(jp_fetch, "mlhandler", NAME, method="DELETE", params={"_cache": ""})
    assert r.code == 200 and r.json()["deleted"] == ["cache"]
    r = await call(jp_fetch, "mlhandler", NAME, params={"_cache": ""})
    assert r.code == 200 and r.json() == []
    r = await call(jp_fetch, "mlhandler", NAME, params=passenger_params(Ticket="", Cabin=""))
    assert r.code == 200


async def test_list_models_and_params(jp_fetch, jp_base_url):
    r = await call(jp_fetch, "mlhandler", "")
    assert r.code == 200, r.text
    [entry] = r.json()["models"]
    url = f"{jp_base_url}mlhandler/{NAME}"
    state = {k: entry.pop(k) for k in ("state", "loaded", "job", "stage", "progress") if k in entry}
    assert entry == {"name": NAME, "url": url, "openapi": f"{url}?_openapi"}
    assert state["state"] in ("training", "ready") and state["loaded"] is False  # never waits
    r = await call(jp_fetch, "mlhandler", NAME, params={"_params": ""})
    data = r.json()
    assert data["params"]["class"] == "LogisticRegression"
    assert "coef_" in data["attrs"] and data["opts"]["target_col"] == "Survived"
    # Gramex's ?delete=model|cache
    for item in ("cache", "model"):
        r = await call(jp_fetch, "mlhandler", NAME, method="DELETE", params={"delete": item})
        assert r.code == 200 and r.json()["deleted"] == [item]
    info = (await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})).json()
    assert info["fitted"] is None and info["rows"] == 0


async def test_prediction_formats(jp_fetch, titanic):
    rows = titanic.drop(columns=["Survived"]).head(4)
    # repeated GET keys give several rows; an empty value is a missing (imputed) value
    params = [(k, str(v)) for k, v in GUIDE_PASSENGER.items() for _ in range(2)]
    params[2] = ("Age", "")
    r = await call(jp_fetch, "mlhandler", NAME, params=params)
    assert r.code == 200, r.text
    assert len(r.json()) == 2
    # _format=records: input rows with the prediction in the target column
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST", params={"_format": "records"},
        body=records(rows), headers=JSON,
    )  # fmt: skip
    out = r.json()
    assert [o["PassengerId"] for o in out] == list(rows["PassengerId"])
    assert all(o["Survived"] in (0, 1) for o in out)
    for fmt in ("csv", "xlsx"):
        r = await call(
            jp_fetch, "mlhandler", NAME, method="POST", params={"_format": fmt},
            body=records(rows), headers=JSON,
        )  # fmt: skip
        assert r.code == 200 and f".{fmt}" in r.headers["Content-Disposition"]
        table = (
            pd.read_csv(io.BytesIO(r.body)) if fmt == "csv" else pd.read_excel(io.BytesIO(r.body))
        )
        assert list(table["Survived"]) == [o["Survived"] for o in out]
    r = await call(
        jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "predict_proba"},
        body=json.dumps(GUIDE_PASSENGER), headers=JSON,
    )  # fmt: skip
    [proba] = r.json()
    assert set(proba) == {"0", "1"} and proba["0"] > 0.5
    # several files in one multipart body are concatenated
    csv = rows.to_csv(index=False).encode()
    body, headers = multipart([("file", "a.csv", csv), ("file", "b.csv", csv)])
    r = await call(jp_fetch, "mlhandler", NAME, method="POST", body=body, headers=headers)
    assert len(r.json()) == 8
    # requests.post(files={"file": open("titanic.csv", "rb")}) sends no Content-Type per file
    body, headers = multipart([("file", "titanic.csv", csv)], content_type=None)
    r = await call(jp_fetch, "mlhandler", NAME, method="POST", body=body, headers=headers)
    assert r.code == 200, r.text
    assert len(r.json()) == 4


async def test_put_creates_a_model_and_kernel_models_are_served(jp_fetch, store_dir, titanic):
    # PUT to a new name creates it; a JSON body is a flat object
    r = await call(
        jp_fetch, "mlhandler", "fresh", method="PUT", params={"_model": ""},
        body=json.dumps({"class": "DecisionTreeClassifier", "max_depth": 3, "target_col": "Survived"}),
    )  # fmt: skip
    assert r.code == 200, r.text
    assert r.json()["params"]["max_depth"] == 3
    body, headers = multipart(
        [("file", "titanic.csv", TITANIC.read_bytes())], fields={"_target_col": "Survived"}
    )
    r = await call(
        jp_fetch, "mlhandler", "fresh", method="POST", params={"_action": "retrain"},
        body=body, headers=headers,
    )  # fmt: skip
    assert r.code == 200, r.text
    assert (
        MLModel.open("fresh", store=store_dir).info()["fitted"]["model"] == "DecisionTreeClassifier"
    )

    # a model created in a kernel after the server started is served without a restart
    MLModel("kernel-made", data=titanic, store=store_dir, **GUIDE_OPTIONS)
    r = await call(jp_fetch, "mlhandler", "kernel-made", params=passenger_params())
    assert r.code == 200 and r.json() == [0]
    # and a retrain in the kernel is seen by the server's next request
    MLModel.open("kernel-made", store=store_dir).configure(class_="DecisionTreeClassifier")
    MLModel.open("kernel-made", store=store_dir).retrain()
    r = await call(jp_fetch, "mlhandler", "kernel-made", params={"_model": ""})
    assert r.json()["fitted"]["model"] == "DecisionTreeClassifier"


async def test_default_page(jp_fetch, jp_base_url):
    r = await call(jp_fetch, "mlhandler", NAME)
    assert r.code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/html")
    html = r.text
    assert "_xsrf=" in r.headers.get("Set-Cookie", "")
    assert f"{jp_base_url}mlhandler/{NAME}" in html
    assert '<select name="Sex"' in html and 'name="Age"' in html
    assert "X-XSRFToken" in html
    assert "http://" not in html and "https://" not in html  # self-contained: no CDN
    # a model with nothing yet (created by an empty PUT) has a page too
    r = await call(jp_fetch, "mlhandler", "blank", method="PUT", params={"_model": ""})
    assert r.code == 200 and r.json()["model"] is None
    r = await call(jp_fetch, "mlhandler", "blank")
    assert r.code == 200, r.text
    assert "No fitted model yet" in r.text and "RandomForestClassifier" in r.text


GUIDE_YAML = """\
mlhandler/tutorial:
  pattern: /$YAMLURL/ml
  handler: MLHandler
  kwargs:
    data: $YAMLPATH/titanic.csv  # Path to the training dataset
    model:
      # The classification or regression algorithm to use
      class: LogisticRegression

      # Location where the trained model will be saved
      path: $YAMLPATH/titanic.pkl

      # The target column
      target_col: Survived

      # Columns to ignore during training
      exclude: [PassengerId, Ticket, Cabin, Name]

      # Columns to be treated as categorical variables
      cats: [Embarked, SibSb, Parch, Pclass, Sex]
"""

# The guide's template placement: beside handler:
TEMPLATE_YAML = """\
mlhandler/templated:
  pattern: /$YAMLURL/page
  handler: MLHandler
  template: $YAMLPATH/template.html
  kwargs:
    data: $YAMLPATH/titanic.csv
    model:
      class: LogisticRegression
      target_col: Survived
      exclude: [PassengerId, Ticket, Cabin, Name]
"""

TEMPLATE = """<p id="est">{{ type(handler.model.steps[-1][1]).__name__ }}</p>
<p id="rows">{{ len(data) }}</p><p id="cols">{{ ",".join(data.columns[:2]) }}</p>"""


class TestYAML:
    @pytest.fixture
    def app_dir(self, jp_root_dir: Path) -> Path:
        folder = jp_root_dir / "app"
        folder.mkdir()
        shutil.copy(TITANIC, folder / "titanic.csv")
        (folder / "gramex.yaml").write_text(GUIDE_YAML + "\n" + TEMPLATE_YAML)
        (folder / "template.html").write_text(TEMPLATE)
        return folder

    @pytest.fixture
    def jp_server_config(self, store_dir: Path, app_dir: Path) -> dict:
        return {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {
                "store_dir": str(store_dir),
                "config_yaml": str(app_dir / "gramex.yaml"),
            },
        }

    async def test_yaml_model_at_its_pattern(self, jp_fetch, jp_base_url, app_dir):
        r = await call(jp_fetch, "app", "ml", params=passenger_params())
        assert r.code == 200, r.text
        assert r.json() == [0]
        # the same model at mlhandler/{name}, with the name from the YAML key
        r = await call(jp_fetch, "mlhandler", "mlhandler-tutorial", params={"_model": ""})
        info = r.json()
        assert info["model"] == "LogisticRegression" and info["fitted"]["rows"] > 600
        assert info["path"] == "titanic.pkl"
        assert (app_dir / "titanic.pkl").is_file()
        r = await call(jp_fetch, "mlhandler", "")
        patterns = {m["name"]: m.get("pattern") for m in r.json()["models"]}
        assert patterns["mlhandler-tutorial"] == f"{jp_base_url}app/ml"
        # writes work at the pattern too
        r = await call(jp_fetch, "app", "ml", method="PUT", params={"_model": "", "class": "SVC"})
        assert r.code == 200 and r.json()["model"] == "SVC"

    async def test_template(self, jp_fetch):
        r = await call(jp_fetch, "app", "page")
        assert r.code == 200, r.text
        assert '<p id="est">LogisticRegression</p>' in r.text
        assert '<p id="rows">891</p>' in r.text
        assert '<p id="cols">PassengerId,Survived</p>' in r.text


DOCS = ROOT / "docs" / "rest.md"


def test_every_trait_is_documented():
    from mlwidget_server import MLWidgetApp

    text = DOCS.read_text()
    traits = MLWidgetApp.class_own_traits(config=True)
    assert {"models", "config_yaml", "store_dir", "allowed_classes", "max_body_size"} <= set(traits)
    for name in traits:
        assert f"| `{name}` |" in text, f"MLWidgetApp.{name} is not in the table of docs/rest.md"


def doc_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOCS.read_text(), re.S)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_docs_curl_commands_work(tmp_path, monkeypatch):
    """Every curl command of docs/rest.md, in order, against a real server."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(TITANIC, work / "titanic.csv")
    store = tmp_path / "store"
    monkeypatch.setenv("MLWIDGET_STORE", str(store))
    monkeypatch.chdir(work)
    # the docs' own steps: make the data files, create the model in "a notebook"
    [make_files] = [b for b in doc_blocks("bash") if b.startswith("python -c")]
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    subprocess.run(
        ["bash", "-c", make_files], check=True, timeout=120, env={**os.environ, "PATH": path}
    )
    [create] = [b for b in doc_blocks("python") if b.startswith("from mlwidget import MLModel")]
    exec(create, {})
    commands = [
        line.strip()
        for block in doc_blocks("bash")
        for line in block.replace("\\\n", " ").splitlines()
        if line.strip().startswith("curl ")
    ]
    assert len(commands) >= 24
    (tmp_path / ".curlrc").write_text("fail-with-body\nsilent\nshow-error\n")
    outputs = []
    with jupyter_server(tmp_path, store) as (url, token):
        env = {
            **os.environ,
            "URL": url,
            "TOKEN": token,
            "AUTH": f"Authorization: token {token}",
            "CURL_HOME": str(tmp_path),
        }
        for command in commands:
            done = subprocess.run(
                ["bash", "-c", command], env=env, capture_output=True, timeout=120
            )
            assert done.returncode == 0, (command, done.stdout[:500], done.stderr[:500])
            outputs.append(done.stdout)
    assert json.loads(outputs[0]) == [0]
    assert joblib.load(work / "titanic.joblib").predict is not None
    assert len(pd.read_csv(work / "data.csv")) > 800
