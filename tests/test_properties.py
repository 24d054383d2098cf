"""Property tests (hypothesis): whatever arrives, the core answers a result or an MLWidgetError
with the documented status, never another exception (which the REST API would turn into a 500).

- ``read_table``: arbitrary bytes, content types and file names -> a DataFrame, or 400/415;
- ``from_query``: arbitrary query arguments -> rows, or 400;
- ``to_bytes``: arbitrary text tables -> every format, or 400;
- ``parse_params`` + ``make_estimator``: arbitrary strings for the parameters of several
  estimators -> typed values and an estimator, or 400;
- ``MLModel.predict`` / ``predict_proba`` / ``predict_query``: arbitrary rows of strings (and
  JSON values) -> one answer per row, or 400; and the few-row fast path answers exactly as the
  pipeline does, errors included.

Examples are derandomized (reproducible in CI); ``MLWIDGET_HYPOTHESIS=explore`` draws new ones,
more of them.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_helpers import TITANIC

from mlwidget import MLModel, MLWidgetError
from mlwidget.estimators import make_estimator, parse_params, resolve_class, valid_param_names
from mlwidget.tables import MIME, from_query, read_table, to_bytes

EXPLORE = os.environ.get("MLWIDGET_HYPOTHESIS") == "explore"


def examples(n: int) -> settings:
    return settings(
        max_examples=n * 5 if EXPLORE else n,
        derandomize=not EXPLORE,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def expect_ok_or(statuses: tuple[int, ...], call: Any) -> Any:
    """``call()``'s result, or None if it raised an MLWidgetError with one of ``statuses``."""
    try:
        return call()
    except MLWidgetError as exc:
        assert exc.status in statuses, (exc.status, str(exc))
        assert str(exc), "an error without a message"
        assert "Traceback" not in str(exc)
        return None


# ---------------------------------------------------------------------------------- tables

TITANIC_HEAD = pd.read_csv(TITANIC).head(5)


def _valid_files() -> list[bytes]:
    files = []
    for fmt in ("csv", "json", "xlsx", "parquet"):
        files.append(to_bytes(TITANIC_HEAD, fmt)[0])
    return files


VALID_FILES = _valid_files()

json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_file(draw: st.DrawFn) -> bytes:
    """A real CSV/JSON/XLSX/Parquet file, truncated or with a few bytes changed."""
    content = bytearray(draw(st.sampled_from(VALID_FILES)))
    if draw(st.booleans()):
        content = content[: draw(st.integers(0, len(content)))]
    for _ in range(draw(st.integers(0, 4))):
        if content:
            content[draw(st.integers(0, len(content) - 1))] = draw(st.integers(0, 255))
    return bytes(content)


bodies = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(st.dictionaries(st.text(max_size=5), json_values, max_size=4), max_size=5).map(
        lambda v: json.dumps(v).encode()
    ),
    st.lists(st.lists(st.text(max_size=6), min_size=1, max_size=4), max_size=6).map(
        lambda rows: "\n".join(",".join(row) for row in rows).encode("utf-8", "surrogatepass")
    ),
    st.sampled_from([b"PK\x03\x04", b"PAR1", b"[", b"{", b"\xef\xbb\xbf"]).flatmap(
        lambda magic: st.binary(max_size=200).map(lambda rest: magic + rest)
    ),
    mutated_file(),
)
content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "",
            *MIME.values(),
            "text/plain",
            "application/octet-stream",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "application/vnd.ms-excel",
            "image/png",
            "text/csv; charset=latin-1",
            "application/json; charset=utf-8",
            "TEXT/CSV",
        ]
    ),
    st.text(max_size=30),
)
filenames = st.one_of(
    st.none(),
    st.sampled_from(
        ["a.csv", "a.json", "a.xlsx", "a.parquet", "a.txt", "a.xls", "a.pq", "a", "../../x.csv"]
    ),
    st.text(max_size=20),
)


@examples(400)
@given(content=bodies, content_type=content_types, filename=filenames)
def test_read_table_gives_a_frame_or_400_or_415(content, content_type, filename):
    frame = expect_ok_or(
        (400, 415),
        lambda: read_table(content, filename=filename, content_type=content_type),
    )
    if frame is not None:
        assert isinstance(frame, pd.DataFrame)


@examples(100)
@given(
    rows=st.lists(
        st.dictionaries(st.text(max_size=5), json_values, min_size=1, max_size=4),
        min_size=1,
        max_size=5,
    )
)
def test_json_records_give_one_row_per_record(rows):
    frame = expect_ok_or((400,), lambda: read_table(json.dumps(rows).encode()))
    if frame is not None:
        assert len(frame) == len(rows)


@examples(15)
@given(
    record=st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
        min_size=1,
        max_size=4,
    ),
    odd=st.dictionaries(st.text(max_size=5), json_values, max_size=3),
)
def test_large_json_records_give_one_row_per_record(record, odd):
    """Bodies over 256 KiB take the columnar (pyarrow) reader first: same contract."""
    rows = [record] * 4000 + [odd or record]
    body = json.dumps(rows).encode()
    if len(body) < 256 * 1024:
        body = json.dumps(rows * (256 * 1024 // len(body) + 1)).encode()
        rows = rows * (256 * 1024 // len(json.dumps(rows)) + 1)
    frame = expect_ok_or((400,), lambda: read_table(body))
    if frame is not None:
        assert len(frame) == len(json.loads(body))


query_args = st.dictionaries(
    st.text(max_size=6),
    st.lists(st.text(max_size=8) | st.binary(max_size=8), max_size=3),
    max_size=5,
)


@examples(300)
@given(args=query_args)
def test_from_query_gives_rows_or_400(args):
    frame = expect_ok_or((400,), lambda: from_query(args))
    if frame is not None:
        columns = [k for k in args if not k.startswith("_")]
        assert list(frame.columns) == columns
        assert len(frame) == len(args[columns[0]])
        assert not (frame == "").any().any()  # empty values are missing


@examples(150)
@given(
    table=st.lists(
        st.lists(st.text(max_size=6) | st.integers() | st.none(), min_size=2, max_size=2),
        max_size=6,
    ),
    names=st.lists(st.text(max_size=5), min_size=2, max_size=2, unique=True),
    fmt=st.sampled_from(["csv", "json", "xlsx", "parquet"]),
)
def test_to_bytes_writes_any_table_or_400(table, names, fmt):
    frame = pd.DataFrame(table, columns=names)
    result = expect_ok_or((400,), lambda: to_bytes(frame, fmt))
    if result is not None:
        content, mime, ext = result
        assert isinstance(content, bytes) and mime == MIME[fmt]
        if table and fmt in ("json", "parquet"):  # reads back with one row per row
            assert len(read_table(content, fmt=fmt)) == len(table)


# ---------------------------------------------------------------------------------- params

ESTIMATORS = [
    "LogisticRegression",
    "RandomForestClassifier",
    "SGDClassifier",
    "GradientBoostingRegressor",
    "SVC",
    "KMeans",
    "PCA",
    "MLPClassifier",
    "KNeighborsRegressor",
    "BaggingClassifier",  # takes an inner estimator by class name
]
TRICKY = [
    "", " ", "none", "None", "null", "true", "FALSE", "yes", "off", "0", "1", "-1", "2.5",
    "1e309", "-1e309", "inf", "-inf", "nan", "NaN", "1_000", "0x10", " 7 ", "٣", "+4", "-0",
    "00012", "1,5", "1e-400", "9" * 30, "balanced", "auto", "sqrt", "log2", "lbfgs", "l2",
    "LogisticRegression", "os.system", "__import__", "[]", "{}", "1.0",
]  # fmt: skip
param_text = st.sampled_from(TRICKY) | st.text(max_size=12)


@st.composite
def param_request(draw: st.DrawFn) -> tuple[type, dict[str, Any]]:
    cls = resolve_class(draw(st.sampled_from(ESTIMATORS)))
    names = valid_param_names(cls)
    keys = draw(st.lists(st.sampled_from(names) | st.text(max_size=6), max_size=4, unique=True))
    raw = {k: draw(param_text | st.lists(param_text, min_size=1, max_size=3)) for k in keys}
    return cls, raw


@examples(400)
@given(request=param_request())
def test_parse_params_gives_typed_values_or_400(request):
    cls, raw = request

    def build() -> Any:
        typed = parse_params(cls, raw)
        assert set(typed) == set(raw)
        for value in typed.values():
            assert value is None or isinstance(value, bool | int | float | str | list | tuple)
        return make_estimator(cls, typed)

    estimator = expect_ok_or((400,), build)
    if estimator is not None:
        assert isinstance(estimator, cls)


# ---------------------------------------------------------------------------------- predict

FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
PASSENGER = {k: [str(v)] for k, v in GUIDE_PASSENGER.items()}
MODELS = {
    "linear": {"class": "LogisticRegression"},
    "forest": {"class": "RandomForestClassifier", "n_estimators": 10, "random_state": 0},
    "svc": {"class": "SVC", "probability": True, "random_state": 0},
    "ridge": {
        "class": "Ridge",
        "target_col": "Fare",
        "exclude": ["PassengerId", "Ticket", "Cabin", "Name"],
    },
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[MLModel, MLModel]]:
    """name -> (the model, the same model answering through its pipeline only)."""
    store = tmp_path_factory.mktemp("properties") / "store"
    out = {}
    for name, options in MODELS.items():
        MLModel(name, data=str(TITANIC), store=store, **{**GUIDE_OPTIONS, **options})
        reference = MLModel.open(name, store=store)
        reference.fast_path = False
        out[name] = (MLModel.open(name, store=store), reference)
    return out


number_text = st.one_of(
    st.floats().map(str),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(TRICKY),
    st.text(max_size=8),
)
category_text = st.one_of(
    st.sampled_from(["male", "female", "S", "C", "Q", "1", "2", "3", "3.0", "0", " male", "MALE"]),
    st.text(max_size=8),
)


@st.composite
def query(draw: st.DrawFn) -> dict[str, list[str]]:
    """GET arguments: usually every feature, the same number of times; sometimes not."""
    n = draw(st.integers(1, 3))
    args: dict[str, list[str]] = {}
    for name in FEATURES:
        values = number_text if name in ("Age", "Fare", "SibSp") else category_text
        args[name] = draw(st.lists(values, min_size=n, max_size=n))
    if draw(st.integers(0, 9)) == 0:
        args.pop(draw(st.sampled_from(FEATURES)))
    if draw(st.integers(0, 9)) == 0:
        args[draw(st.sampled_from(sorted(args)))].append("1")  # ragged
    if draw(st.booleans()):
        args.update(draw(query_args))  # extra keys, or features overwritten
    return args


def outcome(call: Any) -> Any:
    try:
        return ("ok", call())
    except MLWidgetError as exc:
        return ("error", exc.status)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (a != a and b != b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("name", list(MODELS))
@examples(120)
@given(args=query())
@example(args={**PASSENGER, "Age": ["١٢"]})  # other scripts' digits: float() reads them
@example(args={**PASSENGER, "Fare": ["1" + "0" * 400]})
def test_predict_from_any_query(models, name, args):
    model, reference = models[name]
    got = outcome(lambda: model.predict_query(args))
    if got[0] == "error":
        assert got[1] == 400, got
    else:
        rows = len(next(v for k, v in args.items() if not k.startswith("_")))
        assert isinstance(got[1], list) and len(got[1]) == rows
        if name != "ridge":
            assert set(got[1]) <= {0, 1}, got
    # the fast path (if any) answers exactly as the pipeline does, errors included
    want = outcome(lambda: reference.predict(from_query(args)))
    assert got[0] == want[0] and same(got[1], want[1]), (got, want, args)


record_values = st.one_of(
    number_text,
    category_text,
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**64, 2**63, -(2**63) - 1]),  # JSON has no limit
    st.floats(),
    json_values,
)


@pytest.mark.parametrize("name", ["linear", "forest"])
@examples(120)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {k: record_values for k in FEATURES}, optional={"extra": json_values}
        ),
        min_size=1,
        max_size=4,
    )
)
@example(rows=[{**GUIDE_PASSENGER, "Age": 10**400}])
@example(rows=[{**GUIDE_PASSENGER, "Fare": "١٢"}])
def test_predict_from_any_records(models, name, rows):
    model, reference = models[name]
    got = outcome(lambda: model.predict(rows))
    if got[0] == "ok":
        assert len(got[1]) == len(rows)
    else:
        assert got[1] == 400, got
    want = outcome(lambda: reference.predict(rows))
    assert got[0] == want[0] and same(got[1], want[1]), (got, want, rows)
    proba = outcome(lambda: model.predict_proba(rows))
    assert proba[0] == got[0] or proba == ("error", 400), (proba, got)
    if proba[0] == "ok":
        assert len(proba[1]) == len(rows)
        for row in proba[1]:
            assert set(row) == {0, 1} and math.isclose(sum(row.values()), 1, rel_tol=1e-6)
