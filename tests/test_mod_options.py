"""mlwidget/options.py: option names vs estimator parameters (flat or Gramex's ``model:``),
typed option values, and what a request may not set."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwidget import options as opt
from mlwidget.errors import BadRequest, Forbidden

# ------------------------------------------------------------------------------ split


def test_split_tells_options_from_estimator_params() -> None:
    options, params, warnings = opt.split(
        {"class": "LogisticRegression", "target_col": "y", "exclude": ["id"], "C": 0.5}
    )
    assert options == {"class": "LogisticRegression", "target_col": "y", "exclude": ["id"]}
    assert params == {"C": 0.5}
    assert warnings == []


def test_split_reads_aliases() -> None:
    options, params, _ = opt.split({"class_": "KMeans", "drop_duplicates": False, "dopna": False})
    assert options == {"class": "KMeans", "deduplicate": False, "dropna": False}
    assert params == {}


def test_split_reads_gramex_nesting_under_model() -> None:
    raw = {
        "data": "titanic.csv",
        "model": {
            "class": "RandomForestClassifier",
            "target_col": "Survived",
            "params": {"n_estimators": 10},
            "max_depth": 3,
        },
    }
    options, params, _ = opt.split(raw)
    assert options == {
        "data": "titanic.csv",
        "class": "RandomForestClassifier",
        "target_col": "Survived",
    }
    assert params == {"n_estimators": 10, "max_depth": 3}


def test_split_warns_about_gramex_handler_settings_and_ignores_them() -> None:
    options, params, warnings = opt.split({"xsrf_cookies": False, "auth": True, "C": 1})
    assert options == {} and params == {"C": 1}
    assert len(warnings) == 2 and "'xsrf_cookies'" in warnings[0] and "ignored" in warnings[0]


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"model": "LogisticRegression"}, "'model' to be a mapping"),
        ({"params": [1, 2]}, "'params' to be a mapping"),
        ({1: "x"}, "option names as strings"),
    ],
)
def test_split_refuses_malformed_input(raw: dict, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        opt.split(raw)


def test_split_skips_params_none() -> None:
    assert opt.split({"params": None}) == ({}, {}, [])


# ------------------------------------------------------------------------------ clean


def test_clean_types_list_options() -> None:
    got = opt.clean({"exclude": "Name", "cats": ["a", "b", "a", ""], "nums": None, "include": ()})
    assert got == {"exclude": ["Name"], "cats": ["a", "b"], "nums": [], "include": []}


def test_clean_refuses_a_list_option_of_non_names() -> None:
    with pytest.raises(BadRequest, match="option 'exclude' to be a list of column names"):
        opt.clean({"exclude": [1, 2]})


@pytest.mark.parametrize(
    "value, expected", [("false", False), ("Yes", True), (["0"], False), (True, True)]
)
def test_clean_types_flags(value, expected) -> None:
    assert opt.clean({"dropna": value}) == {"dropna": expected}


def test_clean_refuses_a_flag_that_is_neither() -> None:
    with pytest.raises(BadRequest, match="option 'deduplicate' to be true or false, got 'maybe'"):
        opt.clean({"deduplicate": "maybe"})


def test_clean_reads_paths_relative_to_base_dir(tmp_path: Path) -> None:
    got = opt.clean({"path": "model.pkl", "template": "none"}, tmp_path)
    assert got == {"path": str(tmp_path / "model.pkl"), "template": None}


def test_clean_reads_counts() -> None:
    assert opt.clean({"keep_versions": "3", "cv_folds": 0}) == {"keep_versions": 3, "cv_folds": 0}
    assert opt.clean({"keep_versions": "", "cv_folds": None}) == {
        "keep_versions": None,
        "cv_folds": None,
    }


@pytest.mark.parametrize(
    "options, message",
    [
        ({"cv_folds": 1}, "cv_folds to be 0"),
        ({"keep_versions": 0}, "keep_versions to be a whole number from 1"),
        ({"keep_versions": "-2"}, "got '-2'"),
        ({"cv_folds": "2.5"}, "plain digits"),
    ],
)
def test_clean_refuses_bad_counts(options: dict, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        opt.clean(options)


def test_clean_reads_none_as_no_class_or_target() -> None:
    assert opt.clean({"class": "null", "target_col": ["Survived"]}) == {
        "class": None,
        "target_col": "Survived",
    }


# ------------------------------------------------------------------------------ requests


@pytest.mark.parametrize("key", ["data", "path", "template"])
def test_a_request_cannot_set_server_only_options(key: str) -> None:
    with pytest.raises(Forbidden, match=f"cannot set '{key}'") as caught:
        opt.from_request({"class": "LogisticRegression", key: "/etc/passwd"})
    assert caught.value.status == 403


def test_a_request_is_checked_at_every_depth_and_every_refusal_named() -> None:
    changes = {
        "model": {"path": "x.pkl", "params": {"memory": "/tmp/cache"}},
        "estimator": {"model_file": "y"},
        "pre_dispatch": "2*n_jobs",
    }
    with pytest.raises(Forbidden) as caught:
        opt.from_request(changes)
    message = str(caught.value)
    for key in ("model.path", "model.params.memory", "estimator.model_file", "pre_dispatch"):
        assert repr(key) in message


def test_a_request_may_set_options_and_ordinary_params() -> None:
    changes = {
        "class": "Lars",
        "target_col": "y",
        "fit_path": True,  # a flag, not a path
        "importance_getter": "coef_",
        "model": {"params": {"alpha": 1}},
    }
    assert opt.from_request(changes) == changes


def test_a_request_may_name_only_a_public_attribute_path() -> None:
    with pytest.raises(Forbidden, match="importance_getter"):
        opt.from_request({"importance_getter": "__class__.__init__"})


def test_refused_reason_explains_the_refusal() -> None:
    assert opt.refused_reason("data") == "names a file on the server"
    assert "caches" in opt.refused_reason("memory")
    assert "file, folder or URL" in opt.refused_reason("cache_dir")
    assert opt.refused_reason("path_method") is None
    assert opt.refused_reason("C") is None


# ------------------------------------------------------------------------------ Gramex YAML


def test_load_yaml_reads_mlhandler_entries(tmp_path: Path) -> None:
    (tmp_path / "gramex.yaml").write_text(
        "url:\n"
        "  titanic/model:\n"
        "    pattern: /$YAMLURL/titanic\n"
        "    handler: MLHandler\n"
        "    kwargs:\n"
        "      data: $YAMLPATH/titanic.csv\n"
        "      model: {class: LogisticRegression, target_col: Survived}\n"
        "  other:\n"
        "    handler: FormHandler\n",
        encoding="utf-8",
    )
    entries = opt.load_yaml(tmp_path / "gramex.yaml")
    assert len(entries) == 1
    entry = entries[0]
    assert entry["name"] == "titanic-model" and entry["pattern"] == "/titanic"
    assert entry["options"]["data"] == f"{tmp_path.resolve()}/titanic.csv"
    assert entry["options"]["model"]["class"] == "LogisticRegression"


def test_load_yaml_of_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="'absent.yaml' does not exist"):
        opt.load_yaml(tmp_path / "absent.yaml")
