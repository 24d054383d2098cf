"""The REST API's vocabulary, defined once: actions, query keys, formats and their media
types, and the metrics offered. The handlers, the OpenAPI document, the widgets and the docs
tests all read these names (tests/test_api_vocabulary.py checks that they agree)."""

from __future__ import annotations

from .options import BOOL_OPTIONS, LIST_OPTIONS

__all__ = ["BOOL_OPTIONS", "LIST_OPTIONS"]

# POST ?_action=...
ACTIONS = (
    "predict",
    "predict_proba",
    "explain",
    "importance",
    "score",
    "retrain",
    "train",
    "append",
    "rollback",
    "search",
    "share",
    "feedback",
    "replay",
)
# need `write` (the rest need `read`)
WRITE_ACTIONS = ("retrain", "train", "append", "rollback", "search", "share", "replay")
# What the widgets' Upload tab offers (the same actions, those a file upload makes sense for).
UPLOAD_ACTIONS = ("predict", "retrain", "append", "score")
# GET ?<key> (besides feature values), and DELETE items
GET_KEYS = (
    "_model",
    "_download",
    "_cache",
    "_params",
    "_openapi",
    "_job",
    "_result",
    "_jobs",
    "_versions",
    "_keys",
    "_feedback",
)
# POST ?_action=...&_wait=false: start a job and answer 202 at once (MLModel.start_job takes
# the model-level names, tasks.PREDICT_JOB_ACTIONS)
JOB_ACTIONS = (
    "retrain",
    "train",
    "score",
    "predict",
    "predict_proba",
    "search",
    "importance",
    "replay",
)
DELETE_ITEMS = ("model", "cache", "all")  # all: the whole model (removal.py)
# PUT ?<flag>: `_model` (Gramex's spelling, optional); `_create` creates only (409 if it exists)
PUT_KEYS = ("_model", "_create")
# POST {base_url}mlhandler/?_action=... on the listing (needs `write`; stores nothing)
LIST_ACTIONS = ("preview",)
# POST ?_action=predict&_format=table&_proba=true: one P(<class>) column per class
TABLE_KEYS = ("_proba",)
# Query keys Jupyter itself consumes: never features or options.
JUPYTER_KEYS = ("token", "_xsrf")

# Table formats: what a body may be, what a download may be, and their media types.
FORMATS = ("csv", "json", "xlsx", "parquet")
MIME = {
    "csv": "text/csv",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "parquet": "application/vnd.apache.parquet",
    "binary": "application/octet-stream",
}
PREDICT_FORMATS = ("json", "records", "csv", "xlsx", "table")  # ?_format= of predictions
CACHE_FORMATS = ("json", "records", "csv", "xlsx", "parquet")  # ?_cache&_format=
# Content types that say nothing about a body's format: the file name or the bytes decide.
# ("application/unknown" is what tornado gives a multipart file sent without a Content-Type, as
# requests.post(files={"file": open("titanic.csv", "rb")}) does; browsers on Windows send
# application/vnd.ms-excel for .csv files.)
GENERIC_TYPES = (
    "",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/unknown",
    "multipart/form-data",
    "application/vnd.ms-excel",
    "binary/octet-stream",
)

# Scorer names offered in the page and the widgets, by kind (any scikit-learn scorer works).
METRICS = {
    "classifier": (
        "accuracy",
        "balanced_accuracy",
        "f1",
        "f1_weighted",
        "f1_macro",
        "precision_weighted",
        "recall_weighted",
        "roc_auc",
        "neg_log_loss",
    ),
    "regressor": (
        "r2",
        "neg_mean_absolute_error",
        "neg_mean_squared_error",
        "neg_root_mean_squared_error",
        "explained_variance",
    ),
}
