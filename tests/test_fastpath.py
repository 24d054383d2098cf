"""The few-row fast path gives exactly the pipeline's answers, for every covered family."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER

from mlwidget import BadRequest, MLModel, predicting
from mlwidget.fastpath import MAX_ROWS, compile_model
from mlwidget.tables import from_query

FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
EXCLUDE = ["PassengerId", "Ticket", "Cabin", "Name"]
CLASSIFY = {
    "target_col": "Survived",
    "exclude": EXCLUDE,
    "cats": ["Embarked", "Parch", "Pclass", "Sex"],
}
# Multiclass with string labels: predict the port from the rest.
PORT = {"target_col": "Embarked", "exclude": EXCLUDE, "cats": ["Parch", "Pclass", "Sex"]}
REGRESS = {
    "target_col": "Fare",
    "exclude": EXCLUDE,
    "cats": ["Embarked", "Parch", "Pclass", "Sex", "Survived"],
}

CASES = [
    # (class, params, options, family)
    ("LogisticRegression", {}, CLASSIFY, "linear"),
    ("LogisticRegression", {}, PORT, "linear"),
    ("RidgeClassifier", {}, CLASSIFY, "linear"),
    ("SGDClassifier", {"random_state": 0}, CLASSIFY, "linear"),
    ("RandomForestClassifier", {"n_estimators": 25, "random_state": 0}, CLASSIFY, "forest"),
    ("RandomForestClassifier", {"n_estimators": 10, "random_state": 0}, PORT, "forest"),
    ("ExtraTreesClassifier", {"n_estimators": 25, "random_state": 0}, CLASSIFY, "forest"),
    ("GradientBoostingClassifier", {"n_estimators": 40}, CLASSIFY, "gradient boosting"),
    ("GradientBoostingClassifier", {"n_estimators": 10}, PORT, "gradient boosting"),
    ("DecisionTreeClassifier", {"random_state": 0}, CLASSIFY, "tree"),
    ("GaussianNB", {}, CLASSIFY, "naive bayes"),
    ("BernoulliNB", {}, PORT, "naive bayes"),
    ("KNeighborsClassifier", {}, CLASSIFY, "k-neighbours"),
    ("SVC", {"probability": True, "random_state": 0}, CLASSIFY, "SVC.predict"),
    ("LinearRegression", {}, REGRESS, "linear"),
    ("Ridge", {}, REGRESS, "linear"),
    ("Lasso", {"alpha": 0.1}, REGRESS, "linear"),
    ("RandomForestRegressor", {"n_estimators": 15, "random_state": 0}, REGRESS, "forest"),
    ("ExtraTreesRegressor", {"n_estimators": 15, "random_state": 0}, REGRESS, "forest"),
    ("GradientBoostingRegressor", {"n_estimators": 30}, REGRESS, "gradient boosting"),
    ("DecisionTreeRegressor", {"random_state": 0}, REGRESS, "tree"),
    ("KNeighborsRegressor", {}, REGRESS, "k-neighbours"),
]


def _id(case) -> str:
    return f"{case[0]}-{case[2]['target_col']}"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """OpenMP threads make k-neighbours slow and noisy on a busy 2-core machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def titanic() -> pd.DataFrame:
    from conftest import NOTEBOOKS

    return pd.read_csv(NOTEBOOKS / "titanic.csv")


def _odd_rows(features: list[str]) -> list[dict]:
    """Unseen categories, missing values of every spelling, numbers as strings."""
    base = {
        "Pclass": 3,
        "Sex": "male",
        "Age": 22.0,
        "SibSp": 1,
        "Parch": 0,
        "Fare": 7.25,
        "Embarked": "S",
        "Survived": 0,
    }
    variants = [
        {"Embarked": "X", "Sex": "other", "Pclass": 5, "Parch": 9, "Survived": 7},
        {"Age": None, "Fare": None, "Embarked": None, "Sex": None},
        {"Age": float("nan"), "Pclass": float("nan"), "Embarked": ""},
        {"Age": "", "Fare": "  ", "Parch": ""},
        {"Age": "31.5", "Fare": "1e2", "Pclass": "1", "SibSp": "+2", "Parch": "2"},
        {"Age": -3, "Fare": 10_000, "SibSp": 12},
        {"Sex": "female", "Pclass": 1.0, "Parch": 0.0, "Age": ".5"},
    ]
    rows = []
    for change in variants:
        row = {**base, **change}
        rows.append({k: v for k, v in row.items() if k in features})
    rows.append({k: v for k, v in base.items() if k in features and k not in ("Age", "Fare")})
    return rows


def _pipeline_predict(m: MLModel, rows, proba: bool = False):
    """What the pipeline answers for these rows (the path predict took before the fast path)."""
    X = predicting.features_frame(m.snapshot(), rows)
    if proba:
        return m.pipeline.predict_proba(X)
    return np.asarray(m.pipeline.predict(X))


def _same(got: list, want: np.ndarray, kind: str) -> None:
    if kind == "classifier":
        assert got == want.tolist()
    else:
        np.testing.assert_allclose(np.asarray(got, dtype=float), want, rtol=1e-12, atol=1e-9)


def _as_query(rows: list[dict], features: list[str]) -> dict[str, list[str]]:
    def text(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return str(v)

    return {name: [text(r.get(name)) for r in rows] for name in features}


@pytest.mark.parametrize("dropna", [True, False], ids=["dropna", "impute"])
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_fast_equals_pipeline_on_every_training_row(case, dropna, titanic, store_dir):
    cls, params, options, family = case
    m = MLModel(
        "fp", data=titanic, store=store_dir, dropna=dropna, **{"class": cls}, **options, **params
    )
    m.predict(titanic.head(1))  # info() never loads or compiles: the first prediction does
    info = m.info()
    kind = info["fitted"]["kind"]
    assert info["predict_path"] == f"fast ({family})"
    features = info["features"]
    fast = compile_model(m.pipeline, m.features, kind)
    assert fast is not None and fast.label == info["predict_path"]
    target = options["target_col"]
    # the odd rows first, so the one without Age and Fare shares a batch with complete rows
    rows = _odd_rows(features) + titanic[titanic[target].notna()][features].to_dict("records")
    assert any(any(isinstance(v, float) and math.isnan(v) for v in r.values()) for r in rows)
    probas = kind == "classifier" and hasattr(m.pipeline, "predict_proba")

    for start in range(0, len(rows), MAX_ROWS):
        batch = rows[start : start + MAX_ROWS]
        want = _pipeline_predict(m, batch)
        got = fast.predict(batch)
        assert got is not None, "the fast path declined a covered batch"
        _same(got, want, kind)
        assert m.predict(batch) == got
        query = _as_query(batch, features)
        assert m.predict_query(query) == got
        assert m.predict(from_query(query)) == got
        if probas:
            want_p = _pipeline_predict(m, batch, proba=True)
            got_p = fast.predict_proba(batch)
            assert got_p is not None
            assert list(got_p[0]) == fast.classes_json
            np.testing.assert_allclose(
                [list(p.values()) for p in got_p], want_p, rtol=0, atol=1e-12
            )
            assert m.predict_proba(batch) == got_p

    # one row at a time: the first rows and every row with a missing value or an odd one
    singles = [r for r in rows[:30] if len(r) == len(features)]
    singles += [r for r in rows if any(v is None or v != v for v in r.values())][:30]
    for row in singles:
        want = _pipeline_predict(m, [row])
        _same(fast.predict(row), want, kind)
        assert m.predict(row) == fast.predict([row])
        assert m.predict_query(_as_query([row], features)) == fast.predict(row)


@pytest.mark.parametrize("case", [c for c in CASES if c[3] != "k-neighbours"], ids=_id)
def test_fast_batches_equal_one_pipeline_call(case, titanic, store_dir):
    """Beyond batch-for-batch: the fast path's answers equal one pipeline call on all rows
    (k-neighbours is left out: scikit-learn itself breaks distance ties differently by batch)."""
    cls, params, options, family = case
    m = MLModel(
        "fp", data=titanic, store=store_dir, dropna=False, **{"class": cls}, **options, **params
    )
    features = m.info()["features"]
    kind = m.info()["fitted"]["kind"]
    rows = titanic[titanic[options["target_col"]].notna()][features].to_dict("records")
    want = _pipeline_predict(m, rows)
    got = []
    for start in range(0, len(rows), MAX_ROWS):
        got += m.predict(rows[start : start + MAX_ROWS])
    _same(got, want, kind)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_bulk_frames_skip_the_column_transformer_with_the_same_answers(case, titanic, store_dir):
    """More than MAX_ROWS rows: the compiled transform feeds the estimator's own predict."""
    cls, params, options, family = case
    m = MLModel(
        "fp", data=titanic, store=store_dir, dropna=False, **{"class": cls}, **options, **params
    )
    features = m.info()["features"]
    kind = m.info()["fitted"]["kind"]
    fast = compile_model(m.pipeline, m.features, kind)
    rows = _odd_rows(features) + titanic[titanic[options["target_col"]].notna()][features].to_dict(
        "records"
    )
    for data in (rows, pd.DataFrame(rows), titanic):
        frame = predicting.features_frame(m.snapshot(), data)
        got = fast.predict_frame(frame)
        assert got is not None
        want = m.pipeline.predict(frame)
        assert np.array_equal(got, want)
        assert m.predict(data) == want.tolist()
        if kind == "classifier" and hasattr(m.pipeline, "predict_proba"):
            proba = m.pipeline.predict_proba(frame)
            assert np.array_equal(fast.predict_frame(frame, proba=True), proba)
            assert [list(p.values()) for p in m.predict_proba(data)] == proba.tolist()


TREE_CASES = [c for c in CASES if c[3] in ("forest", "tree", "gradient boosting")]


@pytest.mark.parametrize("case", TREE_CASES, ids=_id)
def test_numpy_tree_walk_equals_pipeline(case, titanic, store_dir, monkeypatch):
    """Ensembles too large for generated code are walked with numpy: same answers."""
    import mlwidget.fastpath.trees as fp

    monkeypatch.setattr(fp, "CODEGEN_MAX_NODES", 0)
    cls, params, options, family = case
    m = MLModel(
        "fp", data=titanic, store=store_dir, dropna=False, **{"class": cls}, **options, **params
    )
    fast = compile_model(m.pipeline, m.features, m.info()["fitted"]["kind"])
    assert fast.estimator.walk.code is None
    features = m.info()["features"]
    kind = m.info()["fitted"]["kind"]
    rows = _odd_rows(features) + titanic[titanic[options["target_col"]].notna()][features].to_dict(
        "records"
    )
    for start in range(0, len(rows), MAX_ROWS):
        batch = rows[start : start + MAX_ROWS]
        _same(fast.predict(batch), _pipeline_predict(m, batch), kind)
        if kind == "classifier":
            np.testing.assert_allclose(
                [list(p.values()) for p in fast.predict_proba(batch)],
                _pipeline_predict(m, batch, proba=True),
                rtol=0,
                atol=1e-12,
            )


def test_values_too_large_for_float32_go_to_the_pipeline(titanic, store_dir):
    m = _model(titanic, store_dir, cls="DecisionTreeClassifier", random_state=0)
    row = {**GUIDE_PASSENGER, "Fare": 1e300}  # finite, but scaled beyond float32
    assert m.snapshot().fast().predict(row) is None
    with pytest.raises(BadRequest, match="could not predict"):
        m.predict(row)


def _model(titanic, store_dir, cls="LogisticRegression", **params) -> MLModel:
    return MLModel("guide", data=titanic, store=store_dir, **{"class": cls}, **CLASSIFY, **params)


def _error(call) -> tuple[int, str]:
    with pytest.raises(BadRequest) as err:
        call()
    return err.value.status, str(err.value)


def test_predict_query_errors_match_predict(titanic, store_dir):
    m = _model(titanic, store_dir)
    q = {k: [str(v)] for k, v in GUIDE_PASSENGER.items()}
    assert m.predict_query(q) == m.predict(from_query(q)) == [0]
    cases = {
        "ragged": {**q, "Age": ["22", "23"]},
        "missing": {k: v for k, v in q.items() if k != "Fare"},
        "uncastable": {**q, "Age": ["old"]},
        "nan text": {**q, "Fare": ["nan"]},
        "nothing": {"_format": ["json"]},
        "infinite": {**q, "Fare": ["inf"]},
    }
    for label, args in cases.items():
        status, message = _error(lambda a=args: m.predict_query(a))
        assert (status, message) == _error(lambda a=args: m.predict(from_query(a))), label
        assert status == 400
    assert "'Fare'" in _error(lambda: m.predict_query(cases["missing"]))[1]
    assert "'Age'" in _error(lambda: m.predict_query(cases["uncastable"]))[1]
    # empty values are missing: imputed, one answer per row
    blank = {**q, "Age": [""], "Embarked": [""]}
    assert m.predict_query(blank) == m.predict({**GUIDE_PASSENGER, "Age": None, "Embarked": None})
    # underscore keys are not features; extra columns are ignored
    assert m.predict_query({**q, "_format": ["json"], "Name": ["x"]}) == [0]
    # bytes values (as a server may hand them over)
    assert m.predict_query({k: [v[0].encode()] for k, v in q.items()}) == [0]


def test_every_input_shape_agrees(titanic, store_dir):
    m = _model(titanic, store_dir, cls="RandomForestClassifier", n_estimators=10, random_state=0)
    rows = titanic[FEATURES].head(10)
    want = _pipeline_predict(m, rows).tolist()
    records = rows.to_dict("records")
    assert m.predict(rows) == want
    assert m.predict(records) == want
    assert m.predict(rows.to_dict("list")) == want
    assert m.predict(records[0]) == want[:1]
    assert m.predict(rows.astype(object)) == want
    assert m.predict(rows[FEATURES[::-1]].assign(extra=1)) == want  # by name, extras ignored
    # inputs the fast path leaves to the pipeline still answer (or fail) the same way
    big = pd.concat([titanic[FEATURES]] * 1, ignore_index=True).head(MAX_ROWS + 1)
    assert m.predict(big) == _pipeline_predict(m, big).tolist()
    assert m.predict(rows.assign(Age=rows["Age"].astype("Float64"))) == want
    status, message = _error(lambda: m.predict({**GUIDE_PASSENGER, "Age": [1, 2]}))
    assert status == 400 and "mix" in message
    status, message = _error(
        lambda: m.predict({k: v for k, v in GUIDE_PASSENGER.items() if k != "Sex"})
    )
    assert "'Sex'" in message


def test_not_covered_falls_back_to_the_pipeline(titanic, store_dir):
    m = MLModel(
        "pca", data=titanic, store=store_dir, **{"class": "PCA"}, exclude=EXCLUDE + ["Survived"]
    )
    assert len(m.predict(GUIDE_PASSENGER)[0]) == m.estimator.n_components_
    assert m.info()["predict_path"] == "pipeline"
    m2 = MLModel("none", store=store_dir)
    assert m2.info()["predict_path"] is None


def test_fast_path_follows_the_model_file(titanic, store_dir):
    m = _model(titanic, store_dir)
    # fitted in a worker process (as every fit is): not in this process until a prediction
    assert m.info()["predict_path"] == "not loaded"
    m.predict(GUIDE_PASSENGER)
    assert m.info()["predict_path"] == "fast (linear)"
    other = MLModel.open("guide", store=store_dir)  # another process, in effect
    other.configure(class_="DecisionTreeClassifier", random_state=0)
    other.retrain()
    assert m.info()["predict_path"] == "not loaded"
    rows = titanic[FEATURES].head(30).to_dict("records")
    assert m.predict(rows) == _pipeline_predict(other, rows).tolist()
    assert m.info()["predict_path"] == "fast (tree)"
    other.delete_model()
    assert m.info()["predict_path"] is None
    with pytest.raises(Exception) as err:
        m.predict_query({k: [str(v)] for k, v in GUIDE_PASSENGER.items()})
    assert getattr(err.value, "status", None) == 404


# ---------------------------------------------------------------------------------------------
# bulk: columnar casting and JSON parsing give the same tables as before


CAST_VALUES = [None, float("nan"), "", " ", "a", "3", "2.5", "1e3", 1, 2.5, -0.0, 7, "x y"]


@pytest.mark.parametrize("dtype", ["number", "string"])
def test_whole_column_cast_equals_value_by_value(dtype, titanic):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from mlwidget import schema

    feature = [{"name": "c", "kind": "category", "dtype": dtype}]

    def same(frame: pd.DataFrame) -> None:
        try:
            want = schema._cast_values(frame, feature)
        except BadRequest as exc:
            with pytest.raises(BadRequest) as err:
                schema.cast(frame, feature)
            assert str(err.value) == str(exc)
            return
        pd.testing.assert_frame_equal(schema.cast(frame, feature), want)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.sampled_from(CAST_VALUES), min_size=1, max_size=6))
    def check(values):
        same(pd.DataFrame({"c": values}))
        same(pd.DataFrame({"c": pd.Series(values, dtype=object)}))

    check()
    for column in titanic.columns:  # every dtype a CSV gives
        same(titanic[[column]].rename(columns={column: "c"}))
    same(pd.DataFrame({"c": pd.array([1, None], dtype="Int64")}))
    same(pd.DataFrame({"c": [True, False]}))


def _big_records(titanic: pd.DataFrame, rows: int = 4000) -> pd.DataFrame:
    frame = pd.concat([titanic] * (rows // len(titanic) + 1), ignore_index=True).head(rows)
    return frame.assign(PassengerId=range(rows))


def _json_path(body: bytes) -> pd.DataFrame:
    import json

    return pd.DataFrame.from_records(json.loads(body))


def test_large_json_records_parse_in_columns(titanic):
    import json

    from mlwidget.json_tables import ARROW_JSON_MIN_BYTES, records_columnar
    from mlwidget.tables import read_table

    frame = _big_records(titanic)
    records = frame.to_dict("records")
    clean = [{k: v for k, v in r.items() if v == v} for r in records]  # NaN: key left out
    bodies = {
        "pandas": frame.to_json(orient="records").encode(),
        "json.dumps": json.dumps(clean).encode(),
        "compact": json.dumps(clean, separators=(",", ":")).encode(),
        "indented": json.dumps(clean, indent=2).encode(),
        "null": json.dumps(
            [{k: (None if v != v else v) for k, v in r.items()} for r in records]
        ).encode(),
    }
    for label, body in bodies.items():
        assert len(body) > ARROW_JSON_MIN_BYTES
        columnar = records_columnar(body)
        assert columnar is not None, label
        pd.testing.assert_frame_equal(columnar, _json_path(body))
        pd.testing.assert_frame_equal(read_table(body), _json_path(body))


@pytest.mark.parametrize(
    "extra",
    [
        {"When": "2020-01-01"},  # pyarrow would read a date
        {"Big": 12345678901234567890},  # beyond int64: json keeps it exact
        {"Flag": True},  # with gaps below: NaN vs None
        {"Mixed": "x"},  # a string in a numeric column below
        {"Text": 'a},{"b": 1'},  # a separator inside a string
    ],
)
def test_large_json_that_only_json_reads_alike(extra, titanic):
    import json

    from mlwidget.json_tables import records_columnar
    from mlwidget.tables import read_table

    records = [
        {k: v for k, v in r.items() if v == v} for r in _big_records(titanic).to_dict("records")
    ]
    records[0].update(extra)
    key = next(iter(extra))
    if key == "Mixed":
        records[1]["Mixed"] = 3
    body = json.dumps(records).encode()
    assert records_columnar(body) is None
    pd.testing.assert_frame_equal(read_table(body), _json_path(body))


def test_large_json_with_nested_values_is_a_clear_400(titanic):
    """Tables hold one value per cell: a nested object is refused, naming its column."""
    import json

    from mlwidget import BadRequest
    from mlwidget.json_tables import records_columnar
    from mlwidget.tables import read_table

    records = [
        {k: v for k, v in r.items() if v == v} for r in _big_records(titanic).to_dict("records")
    ]
    records[0]["Nested"] = {"a": 1}
    body = json.dumps(records).encode()
    assert records_columnar(body) is None
    with pytest.raises(BadRequest, match="Nested"):
        read_table(body)


def test_predict_query_fast_only_answers_from_memory_or_not_at_all(titanic, store_dir):
    m = _model(titanic, store_dir)
    q = {k: [str(v)] for k, v in GUIDE_PASSENGER.items()}
    fresh = MLModel.open("guide", store=store_dir)
    assert fresh.predict_query(q, fast_only=True) is None  # nothing loaded yet
    assert fresh.predict_query(q) == [0]  # loads and compiles
    assert fresh.predict_query(q, fast_only=True) == [0]
    for bad in ({**q, "Age": ["old"]}, {**q, "Age": ["1", "2"]}, {"Sex": ["male"]}):
        assert fresh.predict_query(bad, fast_only=True) is None
        with pytest.raises(BadRequest):
            fresh.predict_query(bad)
    many = {k: v * (MAX_ROWS + 1) for k, v in q.items()}
    assert fresh.predict_query(many, fast_only=True) is None
    assert fresh.predict_query(many) == [0] * (MAX_ROWS + 1)
    m.configure(class_="DecisionTreeClassifier", random_state=0)
    m.retrain()  # a new model file: not in fresh's memory yet
    assert fresh.predict_query(q, fast_only=True) is None
    assert fresh.predict_query(q) == m.predict(GUIDE_PASSENGER)
    assert fresh.predict_query(q, fast_only=True) == m.predict(GUIDE_PASSENGER)
    m.destroy()
    assert fresh.predict_query(q, fast_only=True) is None


def test_very_large_ensembles_use_the_estimators_own_predict(titanic, store_dir, monkeypatch):
    import mlwidget.fastpath.trees as fp

    monkeypatch.setattr(fp, "WALK_MAX_NODES", 10)
    m = _model(titanic, store_dir, cls="RandomForestClassifier", n_estimators=5, random_state=0)
    rows = titanic[FEATURES].head(40).to_dict("records")
    assert m.predict(rows) == _pipeline_predict(m, rows).tolist()
    assert m.info()["predict_path"] == "fast (RandomForestClassifier.predict)"


@pytest.mark.parametrize("cats", [["Embarked", "Parch", "Pclass", "Sex"], ["Parch", "Pclass"]])
def test_infinite_category_values_are_left_to_the_pipeline(cats, titanic, store_dir):
    """inf in a numeric categorical: scikit-learn rejects it or encodes it as unknown,
    depending on the other categorical columns; the fast path defers either way."""
    m = MLModel("inf", data=titanic, store=store_dir, **{"class": "LogisticRegression"},
                target_col="Survived", exclude=EXCLUDE, cats=cats)  # fmt: skip
    row = {**GUIDE_PASSENGER, "Pclass": float("inf")}
    assert m.snapshot().fast().predict(row) is None
    rows = [row] + titanic[FEATURES].head(MAX_ROWS + 5).to_dict("records")
    frame = predicting.features_frame(m.snapshot(), rows)
    assert m.snapshot().fast().predict_frame(frame) is None
    try:
        want = m.pipeline.predict(frame).tolist()
    except ValueError:
        with pytest.raises(BadRequest):
            m.predict(rows)
        with pytest.raises(BadRequest):
            m.predict(row)
    else:
        assert m.predict(rows) == want
        assert m.predict(row) == want[:1]


# ---------------------------------------------------------------------------------------------
# why a pipeline is not compiled


def _compile(m: MLModel, pipeline=None) -> tuple[object, list[str]]:
    reasons: list[str] = []
    kind = m.info()["fitted"]["kind"]
    fast = compile_model(
        pipeline if pipeline is not None else m.pipeline, m.features, kind, reasons
    )
    return fast, reasons


OWN = "has no compiled form: its own predict is used"


@pytest.mark.parametrize(
    "cls, params, reason",
    [
        ("LogisticRegression", {}, None),
        ("RandomForestClassifier", {"n_estimators": 3, "random_state": 0}, None),
        ("KNeighborsClassifier", {}, f"estimator family KNeighborsClassifier {OWN}"),
        ("SVC", {"random_state": 0}, f"estimator family SVC {OWN}"),
    ],
)
def test_compiled_or_own_predict_says_why(cls, params, reason, titanic, store_dir):
    m = _model(titanic, store_dir, cls=cls, **params)
    fast, reasons = _compile(m)
    assert fast is not None and fast.reason == reason
    assert reasons == ([] if reason is None else [reason])


def test_declined_pipelines_say_why(titanic, store_dir):
    from sklearn.linear_model import LogisticRegression

    from mlwidget.estimators import build_pipeline

    m = _model(titanic, store_dir)
    cats = [f["name"] for f in m.features if f["kind"] == "category"]
    nums = [f["name"] for f in m.features if f["kind"] == "number"]
    grouped = build_pipeline(LogisticRegression(), cats, nums, max_categories=2)
    grouped.fit(predicting.features_frame(m.snapshot(), titanic), titanic["Survived"])
    assert _compile(m, grouped) == (None, ["OneHotEncoder with infrequent categories"])
    assert _compile(m, m.pipeline.steps[1][1])[1] == [
        "LogisticRegression is not a two-step Pipeline (columns, estimator)"
    ]
    reasons: list[str] = []
    assert compile_model(m.pipeline, m.features, "transformer", reasons) is None
    assert reasons == ["kind 'transformer': only classifiers and regressors have a fast path"]
    assert compile_model(None, m.features, "classifier", reasons) is None
    assert reasons[-1] == "no fitted pipeline"
    assert compile_model(m.pipeline, m.features, "classifier") is not None  # reasons optional


def test_a_missing_private_attribute_declines_with_the_scikit_learn_version(titanic, store_dir):
    import copy

    m = _model(titanic, store_dir, cls="GradientBoostingClassifier", n_estimators=5)
    pipeline = copy.deepcopy(m.pipeline)
    del pipeline.steps[1][1]._loss  # a fitted private attribute the compiler reads
    assert _compile(m, pipeline) == (
        None,
        [
            "scikit-learn private attribute _loss missing: this scikit-learn version is not "
            "supported by the fast path"
        ],
    )


def test_very_large_ensembles_say_why_their_own_predict_answers(titanic, store_dir, monkeypatch):
    import mlwidget.fastpath.trees as fp

    monkeypatch.setattr(fp, "WALK_MAX_NODES", 10)
    m = _model(titanic, store_dir, cls="RandomForestClassifier", n_estimators=5, random_state=0)
    fast, reasons = _compile(m)
    nodes = sum(t.tree_.node_count for t in m.estimator.estimators_)
    assert reasons == [
        f"RandomForestClassifier: {nodes:,} tree nodes, more than the 10 copied into arrays "
        "(WALK_MAX_NODES): its own predict is used"
    ]
    assert fast.reason == reasons[0] and fast.label == "fast (RandomForestClassifier.predict)"


def test_unexpected_compile_errors_are_logged_and_reported(titanic, store_dir, caplog):
    import copy
    import logging

    m = _model(titanic, store_dir)
    pipeline = copy.deepcopy(m.pipeline)
    del pipeline.steps[1][1].coef_  # read by the linear family: an AttributeError, unforeseen
    with caplog.at_level(logging.WARNING, logger="mlwidget.fastpath"):
        fast, reasons = _compile(m, pipeline)
    assert fast is None
    assert reasons == [
        "compilation failed: AttributeError: 'LogisticRegression' object has no attribute 'coef_'"
    ]
    (record,) = [r for r in caplog.records if r.name == "mlwidget.fastpath"]
    assert record.levelno == logging.WARNING
    assert reasons[0] in record.getMessage() and record.exc_info[0] is AttributeError
    assert m.predict(GUIDE_PASSENGER) == [0]  # the model's own pipeline is untouched


def test_model_info_says_why_the_fast_path_does_not_answer(titanic, store_dir):
    m = MLModel("knn", data=titanic, class_="KNeighborsClassifier", store=store_dir,
                **{k: v for k, v in GUIDE_OPTIONS.items() if k != "class"})  # fmt: skip
    m.predict(GUIDE_PASSENGER)  # info() never compiles: the first prediction does
    info = m.info()
    assert info["predict_path"].startswith(("fast", "pipeline"))
    assert "KNeighborsClassifier" in info["predict_path_reason"]
    guide = MLModel("lr", data=titanic, store=store_dir, **GUIDE_OPTIONS)
    assert guide.info()["predict_path_reason"] is None
