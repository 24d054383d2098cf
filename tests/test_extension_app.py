"""The extension app: configured models are created safely at startup, and one that fails is
reported and tried again on the next start (issue 10)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import NOTEBOOKS
from rest_helpers import call, jupyter_server, titanic_server_config

RACE = """
import threading, sys
from mlwidget import estimators
barrier = threading.Barrier(4)
errors = []
def work(i):
    barrier.wait()
    try:
        (estimators._kinds if i % 2 else estimators.catalog)()
        estimators.list_estimators("classifier")
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(errors)
sys.exit(1 if errors else 0)
"""


def test_the_estimator_catalog_is_built_once_safely_from_many_threads():
    """Four threads using the catalog first in a fresh process raised KeyError (pkgutil)."""
    for _ in range(3):
        proc = subprocess.run(
            [sys.executable, "-c", RACE], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


SIX_MODELS = """
url:
  logistic:
    pattern: /$YAMLURL/logistic
    handler: MLHandler
    kwargs:
      data: $YAMLPATH/titanic.csv
      model: {class: LogisticRegression, target_col: Survived, exclude: [Name, Ticket, Cabin]}
  forest:
    pattern: /$YAMLURL/forest
    handler: MLHandler
    kwargs:
      data: $YAMLPATH/titanic.csv
      model: {class: RandomForestClassifier, n_estimators: 5, target_col: Survived,
              exclude: [Name, Ticket, Cabin]}
  fare:
    pattern: /$YAMLURL/fare
    handler: MLHandler
    kwargs:
      data: $YAMLPATH/titanic.csv
      model: {class: DecisionTreeRegressor, target_col: Fare, exclude: [Name, Ticket, Cabin]}
  weight:
    pattern: /$YAMLURL/weight
    handler: MLHandler
    kwargs:
      data: $YAMLPATH/weight.csv
      model: {class: Ridge, target_col: weight}
  clusters:
    pattern: /$YAMLURL/clusters
    handler: MLHandler
    kwargs:
      data: $YAMLPATH/iris.csv
      model: {class: KMeans, n_clusters: 3, exclude: [species]}
  components:
    pattern: /$YAMLURL/components
    handler: MLHandler
    kwargs:
      data: $YAMLPATH/iris.csv
      model: {class: PCA, n_components: 2, exclude: [species]}
"""


def get(url: str, token: str) -> object:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.load(reply)


def test_six_configured_models_of_every_kind_all_train_at_startup(tmp_path):
    """Models configured in one YAML are created at once, on several threads, in a fresh
    process: they used to race in the estimator catalog and stay saved untrained."""
    app = tmp_path / "app"
    app.mkdir()
    for name in ("titanic.csv", "weight.csv", "iris.csv"):
        shutil.copy(NOTEBOOKS / name, app / name)
    (app / "gramex.yaml").write_text(SIX_MODELS)
    config = tmp_path / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"MLWidgetApp": {"config_yaml": str(app / "gramex.yaml")}})
    )
    with jupyter_server(tmp_path, tmp_path / "store") as (url, token):
        listing = get(f"{url}/mlhandler/", token)["models"]
        assert sorted(m["name"] for m in listing) == sorted(
            ["logistic", "forest", "fare", "weight", "clusters", "components"]
        )
        for name, kind in [
            ("logistic", "classifier"),
            ("forest", "classifier"),
            ("fare", "regressor"),
            ("weight", "regressor"),
            ("clusters", "clusterer"),
            ("components", "transformer"),
        ]:
            info = get(f"{url}/mlhandler/{name}?_model", token)
            assert info["fitted"] and info["fitted"]["kind"] == kind, (name, info)
        assert not [m for m in get(f"{url}/mlhandler/", token)["models"] if "error" in m]


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv)


async def test_a_configured_model_that_failed_is_reported_and_retried(
    jp_fetch, jp_serverapp, store_dir, titanic_csv
):
    app = jp_serverapp.web_app.settings["mlwidget"].registry
    broken = {"data": str(titanic_csv), "class": "LogisticRegression", "target_col": "Survivd"}
    app.configured["broken"] = (broken, None)  # as a start with this config does
    with pytest.raises(Exception, match="Survivd"):
        app.create_configured("broken", broken, None)
    assert not (store_dir / "broken").exists()  # nothing half-made: the next start retries
    listing = (await call(jp_fetch, "mlhandler", "")).json()["models"]
    entry = next(m for m in listing if m["name"] == "broken")
    assert "Survivd" in entry["error"] and "saved untrained" not in entry["error"]
    reply = await call(jp_fetch, "mlhandler", "broken", params={"_model": ""})
    assert reply.code == 404 and "Survivd" in reply.json()["error"], reply.text
    # the config fixed, the next start creates and trains it
    fixed = dict(broken, target_col="Survived", exclude=["Name", "Ticket", "Cabin"])
    model = app.create_configured("broken", fixed, None)
    assert model.info()["fitted"]["model"] == "LogisticRegression"
    listing = (await call(jp_fetch, "mlhandler", "")).json()["models"]
    assert "error" not in next(m for m in listing if m["name"] == "broken")
