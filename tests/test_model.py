"""The guide's Titanic walkthrough through the Python API, and MLModel's lifecycle."""

from __future__ import annotations

import pickle

import joblib
import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER, NOTEBOOKS

from mlwidget import BadRequest, MLModel, MLWidgetError, NotFound, list_models


@pytest.fixture
def titanic(titanic_csv, store_dir) -> MLModel:
    return MLModel("titanic", data=titanic_csv, store=store_dir, **GUIDE_OPTIONS)


def test_guide_walkthrough(titanic, titanic_csv):
    info = titanic.info()
    # The guide's misspelled SibSb is a warning, not a failure.
    assert any("SibSb" in w for w in info["warnings"])
    assert info["model"] == "LogisticRegression"
    assert info["fitted"]["model"] == "LogisticRegression"
    assert info["stale"] is False
    assert titanic.predict(GUIDE_PASSENGER) == [0]

    table = pd.read_csv(titanic_csv)
    assert table["Age"].isna().sum() > 100
    rows = table.drop(columns=["Survived"])
    preds = titanic.predict(rows)
    assert len(preds) == 891
    assert set(preds) == {0, 1}
    # Order is kept: row-by-row predictions agree with the bulk ones, missing Age included.
    sample = [5, 17, 0, 1, 888]  # rows 5, 17 and 888 have no Age
    assert all(pd.isna(table.loc[i, "Age"]) for i in (5, 17, 888))
    assert [titanic.predict(rows.iloc[[i]])[0] for i in sample] == [preds[i] for i in sample]

    score = titanic.score(table)
    assert score["metric"] == "accuracy" and score["score"] >= 0.78
    auc = titanic.score(table, metric="roc_auc")
    assert auc["metric"] == "roc_auc" and 0.8 < auc["score"] <= 1
    f1 = titanic.score(table, metric="f1_weighted")
    assert 0.7 < f1["score"] <= 1

    before = titanic.info()["fitted"]
    staged = titanic.configure(class_="RandomForestClassifier", n_estimators=10)
    assert staged["model"] == "RandomForestClassifier"
    assert staged["params"]["n_estimators"] == 10
    assert staged["stale"] is True
    assert staged["fitted"] == before  # staged: the old model still serves
    assert titanic.predict(GUIDE_PASSENGER) == [0]
    result = titanic.retrain()
    assert result["model"] == "RandomForestClassifier"
    after = titanic.info()
    assert after["fitted"]["model"] == "RandomForestClassifier"
    assert after["fitted"]["params"]["n_estimators"] == 10
    assert after["stale"] is False
    assert type(titanic.estimator).__name__ == "RandomForestClassifier"
    assert len(titanic.estimator.estimators_) == 10


def test_predict_proba_and_table(titanic):
    proba = titanic.predict_proba([GUIDE_PASSENGER, {**GUIDE_PASSENGER, "Sex": "female"}])
    assert set(proba[0]) == {0, 1}
    assert proba[0][0] > 0.5 > proba[1][0]
    assert abs(sum(proba[1].values()) - 1) < 1e-9
    table = titanic.predict_table([GUIDE_PASSENGER])
    assert table.loc[0, "Survived"] == 0 and table.loc[0, "Sex"] == "male"


def test_inputs_in_every_shape(titanic, titanic_csv, tmp_path):
    # URL-style strings are cast to the training types; order of columns does not matter.
    as_strings = {k: str(v) for k, v in reversed(list(GUIDE_PASSENGER.items()))}
    assert titanic.predict(as_strings) == [0]
    assert titanic.predict(pd.DataFrame([GUIDE_PASSENGER])) == [0]
    columns = {k: [v, v] for k, v in GUIDE_PASSENGER.items()}
    assert titanic.predict(columns) == [0, 0]
    # Extra columns are ignored; an empty value is imputed.
    assert titanic.predict({**GUIDE_PASSENGER, "Name": "X", "Age": ""}) in ([0], [1])
    path = tmp_path / "rows.json"
    pd.DataFrame([GUIDE_PASSENGER]).to_json(path, orient="records")
    assert titanic.predict(path) == [0]
    # An unseen category is ignored by the encoder, not an error.
    assert len(titanic.predict({**GUIDE_PASSENGER, "Embarked": "Z"})) == 1


def test_bad_prediction_input(titanic):
    row = dict(GUIDE_PASSENGER)
    del row["Fare"]
    with pytest.raises(BadRequest, match="'Fare'") as err:
        titanic.predict(row)
    assert err.value.status == 400
    with pytest.raises(BadRequest, match="Expected a number for column 'Age', got 'old'"):
        titanic.predict({**GUIDE_PASSENGER, "Age": "old"})


def test_score_needs_target(titanic):
    with pytest.raises(BadRequest, match="target column 'Survived'"):
        titanic.score([GUIDE_PASSENGER])
    with pytest.raises(BadRequest, match="scorer name"):
        titanic.score([{**GUIDE_PASSENGER, "Survived": 0}], metric="nope")


def test_open_list_and_state_survives(titanic, store_dir):
    titanic.configure(n_estimators=5, class_="RandomForestClassifier")
    titanic.append(titanic.data().head(1))
    again = MLModel.open("titanic", store=store_dir)
    assert again.info()["params"]["n_estimators"] == 5
    assert len(again.data()) == 892
    assert again.predict(GUIDE_PASSENGER) == [0]  # still the LogisticRegression it was fitted as
    assert list_models(store_dir) == ["titanic"]
    with pytest.raises(NotFound):
        MLModel.open("nope", store=store_dir)
    # Options given to an existing name do not overwrite it (stored state wins)...
    same = MLModel("titanic", store=store_dir, class_="SVC")
    assert same.info()["model"] == "RandomForestClassifier"
    # ...unless asked to.
    fresh = MLModel("titanic", store=store_dir, class_="SVC", overwrite=True)
    assert fresh.info()["model"] == "SVC" and fresh.info()["fitted"] is None


def test_gramex_nesting_and_aliases(titanic_csv, store_dir):
    model = MLModel(
        "nested",
        data=titanic_csv,
        store=store_dir,
        model={
            "class": "LogisticRegression",
            "target_col": "Survived",
            "exclude": ["PassengerId", "Ticket", "Cabin", "Name"],
            "params": {"C": 0.5},
            "drop_duplicates": False,
        },
    )
    info = model.info()
    assert info["params"]["C"] == 0.5
    assert info["options"]["deduplicate"] is False
    assert model.predict(GUIDE_PASSENGER) == [0]


def test_configure_types_and_errors(titanic):
    info = titanic.configure(fit_intercept="false", class_weight="balanced", C="0.5")
    assert info["params"]["fit_intercept"] is False
    assert info["params"]["class_weight"] == "balanced"
    assert info["params"]["C"] == 0.5
    snapshot = titanic.info()
    with pytest.raises(BadRequest, match="The 'C' parameter of LogisticRegression must be"):
        titanic.configure(C="-1")
    with pytest.raises(BadRequest, match="neither an mlwidget option"):
        titanic.configure(nonsense=1)
    with pytest.raises(BadRequest, match="Unknown estimator class 'NoSuchModel'"):
        titanic.configure(class_="NoSuchModel")
    assert titanic.info() == snapshot  # failed configures changed nothing
    info = titanic.configure(class_="RandomForestClassifier", max_depth="none")
    assert info["params"]["max_depth"] is None
    assert titanic.configure(max_depth="3")["params"]["max_depth"] == 3
    # configure(**{"class": ...}) is the same as class_=
    assert titanic.configure(**{"class": "DecisionTreeClassifier"})["model"] == (
        "DecisionTreeClassifier"
    )


def test_retrain_with_data_and_target(titanic, titanic_csv, store_dir):
    table = pd.read_csv(titanic_csv)
    result = titanic.retrain(table.head(400), target_col="Survived")
    assert result["rows"] < 400 and result["score"] > 0.7
    assert len(titanic.data()) == 400  # the body became the training data
    # A failed retrain leaves everything as it was.
    before = titanic.info()
    with pytest.raises(BadRequest, match="target column 'nope'"):
        titanic.retrain(target_col="nope")
    assert titanic.info()["fitted"] == before["fitted"]
    assert titanic.info()["target_col"] == "Survived"


def test_delete_model_and_data(titanic, store_dir):
    titanic.delete_data()
    # The fitted model keeps serving and its schema still types inputs.
    assert titanic.predict({k: str(v) for k, v in GUIDE_PASSENGER.items()}) == [0]
    assert titanic.data().empty  # an empty table with the stored columns
    # The next append starts a new table.
    assert titanic.append([{**GUIDE_PASSENGER, "Survived": 1}]) == {"rows": 1, "appended": 1}
    titanic.delete_model()
    with pytest.raises(NotFound, match="no fitted estimator") as err:
        titanic.predict(GUIDE_PASSENGER)
    assert err.value.status == 404
    # Deleting a model does not retrain it on the next open.
    assert MLModel.open("titanic", store=store_dir).info()["fitted"] is None


def test_download_is_joblib_loadable(titanic, tmp_path):
    path = titanic.download(tmp_path / "m.joblib")
    pipeline = joblib.load(path)
    frame = pd.DataFrame([GUIDE_PASSENGER])
    assert list(pipeline.predict(frame)) == [0]
    # a plain pickle too: loadable without joblib (joblib.dump's array wrappers are not)
    with open(path, "rb") as handle:
        assert list(pickle.load(handle).predict(frame)) == [0]


def test_model_path_export_and_import(titanic_csv, store_dir, tmp_path):
    path = tmp_path / "titanic.pkl"
    MLModel("exporter", data=titanic_csv, store=store_dir, path=str(path), **GUIDE_OPTIONS)
    assert path.is_file()
    # The guide's "Exposing Existing Models": only model.path, no data.
    brought = MLModel("existing", store=store_dir, model={"path": str(path)})
    assert brought.predict({k: str(v) for k, v in GUIDE_PASSENGER.items()}) == [0]
    info = brought.info()
    assert info["fitted"]["model"] == "LogisticRegression"
    assert set(info["features"]) >= {"Sex", "Age", "Pclass"}
    assert info["path"] == "titanic.pkl"  # never a server path


def test_unsupervised(store_dir):
    circles = pd.read_csv("notebooks/circles.csv")
    km = MLModel("km", data=circles, store=store_dir, class_="KMeans", n_clusters=2, exclude=["y"])
    labels = km.predict(circles.drop(columns="y"))
    assert len(labels) == len(circles) and set(labels) == {0, 1}
    pca = MLModel("pca", data=circles, store=store_dir, class_="PCA", n_components=2)
    rows = pca.predict(circles.head(3))
    assert len(rows) == 3 and all(len(r) == 2 for r in rows)


def test_regressor(store_dir):
    table = pd.read_csv("notebooks/titanic.csv")
    reg = MLModel(
        "fare",
        data=table,
        store=store_dir,
        class_="Ridge",
        target_col="Fare",
        exclude=["PassengerId", "Ticket", "Cabin", "Name"],
    )
    assert reg.info()["kind"] == "regressor"
    assert reg.info()["fitted"]["metric"] == "r2"
    assert isinstance(reg.predict(table.head(2))[0], float)
    assert reg.score(table, metric="neg_mean_absolute_error")["score"] < 0


def test_errors_are_one_family():
    from mlwidget import errors

    for cls in (errors.BadRequest, errors.NotFound, errors.Conflict, errors.UnsupportedFormat):
        assert issubclass(cls, MLWidgetError)
    assert (errors.BadRequest("x").status, errors.Conflict("x").status) == (400, 409)
    assert errors.PayloadTooLarge("x").status == 413
    assert errors.UnsupportedFormat("x").status == 415


def test_bad_names_and_missing_class(store_dir, titanic_csv):
    with pytest.raises(BadRequest, match="model name"):
        MLModel("../escape", store=store_dir)
    empty = MLModel("empty", store=store_dir)
    with pytest.raises(NotFound, match="no training data"):
        empty.retrain()
    with pytest.raises(BadRequest, match="no model class"):  # no class and no target
        empty.retrain(pd.read_csv(titanic_csv))
    assert empty.info()["fitted"] is None and empty.versions() == []


def test_opening_an_existing_model_with_other_options_says_what_was_not_applied(
    store_dir, titanic_csv
):
    """MLModel("t", class_="RandomForestClassifier") on a stored LogisticRegression returned it
    unchanged without a word."""
    import warnings

    options = {"target_col": "Survived", "exclude": ["Name", "Ticket", "Cabin"]}
    MLModel("t", data=str(titanic_csv), class_="LogisticRegression", **options)
    with pytest.warns(UserWarning) as caught:
        m = MLModel("t", class_="RandomForestClassifier", n_estimators=10, target_col="Age")
    text = str(caught[0].message)
    assert "class=RandomForestClassifier (stored: LogisticRegression)" in text
    assert "n_estimators=10" in text and "target_col='Age'" in text
    assert "configure" in text and "overwrite=True" in text
    assert m.options["class"] == "LogisticRegression"
    with warnings.catch_warnings():  # the same options: nothing to say
        warnings.simplefilter("error")
        MLModel("t", data=str(titanic_csv), class_="LogisticRegression", **options)
        MLModel.open("t")


def test_no_class_with_a_target_trains_the_default_for_its_kind(store_dir, titanic_csv):
    iris = MLModel("iris", data=NOTEBOOKS / "iris.csv", target_col="species", store=store_dir)
    info = iris.info()
    assert info["model"] == "RandomForestClassifier" and info["fitted"]["kind"] == "classifier"
    assert info["notes"] == [
        "No class was given: species holds 3 distinct text values, so this is classification; "
        "using RandomForestClassifier."
    ]
    assert info["stale"] is False and iris.versions()[0]["class"] == "RandomForestClassifier"
    weight = MLModel("weight", data=NOTEBOOKS / "weight.csv", target_col="weight", store=store_dir)
    assert weight.info()["model"] == "RandomForestRegressor"
    assert "so this is regression" in weight.info()["notes"][0]
    # data without a target stays untrained; a retrain naming the target picks the class
    titanic = MLModel("t", data=titanic_csv, store=store_dir, exclude=["Name", "Ticket"])
    assert titanic.info()["fitted"] is None
    (note,) = titanic.info()["notes"]  # what it would pick
    assert "not trained" in note and "target_col='Survived'" in note
    answer = titanic.retrain(target_col="Survived")
    assert answer["model"] == "RandomForestClassifier" and "2 distinct whole" in answer["notes"][0]
    assert titanic.info()["notes"] == answer["notes"]
    # a class given explicitly: no note, and the next retrain clears an old one
    titanic.configure(class_="LogisticRegression")
    assert titanic.retrain()["notes"] == [] and titanic.info()["notes"] == []
    # a target that is not a column: a clear error, nothing stored
    with pytest.raises(BadRequest, match="target column 'specie'.*sepal_length"):
        MLModel("bad", data=NOTEBOOKS / "iris.csv", target_col="specie", store=store_dir)
    assert "bad" not in list_models(store_dir)


def test_predict_results_keeps_the_input_and_adds_what_a_person_reads(titanic, titanic_csv):
    table = pd.read_csv(titanic_csv).head(20)
    table.loc[3, "Survived"] = None
    out = titanic.predict_results(table)
    frame = out["table"]
    assert list(frame.columns) == [*table.columns, "predicted Survived", "correct"]
    pd.testing.assert_frame_equal(frame[table.columns], table)  # the input, untouched
    assert frame["predicted Survived"].tolist() == titanic.predict(table)
    assert out["predicted"] == "predicted Survived" and out["actual"] == "Survived"
    assert frame.loc[3, "correct"] is None  # no actual value: not judged
    judged = frame.drop(index=3)
    assert (judged["correct"] == (judged["predicted Survived"] == judged["Survived"])).all()
    assert out["score"]["metric"] == "accuracy" and out["score"]["rows"] == 19
    assert out["score"]["score"] == pytest.approx(judged["correct"].mean())
    without = titanic.predict_results(table.drop(columns=["Survived"]), proba=True)
    assert without["actual"] is None and without["score"] is None
    assert without["proba"] == ["P(0)", "P(1)"]
    assert list(without["table"].columns)[-3:] == ["predicted Survived", "P(0)", "P(1)"]
    probs = without["table"][["P(0)", "P(1)"]].sum(axis=1)
    assert probs.round(9).eq(1).all()


def test_predict_results_of_a_regressor_give_the_error(store_dir):
    weight = MLModel("weight", data=NOTEBOOKS / "weight.csv", target_col="weight", store=store_dir)
    out = weight.predict_results(NOTEBOOKS / "weight.csv")
    frame = out["table"]
    assert list(frame.columns) == ["male", "age", "height", "weight", "predicted weight", "error"]
    assert frame["error"].tolist() == pytest.approx(
        (frame["predicted weight"] - frame["weight"]).tolist()
    )
    assert out["score"]["metric"] == "r2" and out["score"]["score"] > 0.5
