"""server_extension/mlwidget_server/bodies.py: a POST body as one table (JSON, CSV, forms,
multipart uploads), a PUT's changes through the request allow-list, and the small readers of
query flags."""

from __future__ import annotations

import json

import pytest
from mlwidget_server import bodies

from mlwidget.errors import BadRequest, Forbidden, UnsupportedFormat

CSV = b"Age,Sex\n22,male\n38,female\n"
RECORDS = [{"Age": 22, "Sex": "male"}, {"Age": 38, "Sex": "female"}]


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body as a browser or ``curl -F`` sends it, and its content type."""
    boundary = "----mlwidgetboundary"
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, content) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# ------------------------------------------------------------------------------ parse_body


def test_a_json_body_is_a_table() -> None:
    frame = bodies.parse_body(json.dumps(RECORDS).encode(), "application/json", {})
    assert frame.to_dict("records") == RECORDS


def test_a_csv_body_is_a_table_whatever_generic_type_it_came_as() -> None:
    for content_type in ("text/csv", "text/plain", "application/octet-stream", ""):
        frame = bodies.parse_body(CSV, content_type, {})
        assert frame.to_dict("records") == RECORDS, content_type


def test_curl_data_sends_a_csv_as_a_form_and_it_is_still_the_table() -> None:
    args: dict[str, list[str]] = {}
    frame = bodies.parse_body(CSV, "application/x-www-form-urlencoded", args)
    assert frame.to_dict("records") == RECORDS and args == {}


def test_a_real_form_carries_arguments_and_no_table() -> None:
    args = {"target_col": ["Age"]}
    body = b"target_col=Sex&_action=retrain&token=secret"
    assert bodies.parse_body(body, "application/x-www-form-urlencoded", args) is None
    assert args == {"target_col": ["Age", "Sex"], "_action": ["retrain"]}  # no token


def test_junk_as_a_form_is_unsupported() -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        bodies.parse_body(b"\x00\x01\x02junk", "application/x-www-form-urlencoded", {})
    assert caught.value.status == 415


def test_an_empty_body_is_no_table() -> None:
    assert bodies.parse_body(b"  \n", "text/csv", {}) is None


def test_a_multipart_upload_is_its_table_and_its_fields_are_arguments() -> None:
    body, content_type = multipart(
        {"target_col": "Sex", "_xsrf": "x"}, {"file": ("passengers.csv", CSV)}
    )
    args: dict[str, list[str]] = {}
    frame = bodies.parse_body(body, content_type, args)
    assert frame.to_dict("records") == RECORDS
    assert args == {"target_col": ["Sex"]}


def test_several_uploaded_files_are_one_table() -> None:
    more = json.dumps([{"Age": 4, "Sex": "female"}]).encode()
    body, content_type = multipart({}, {"a": ("a.csv", CSV), "b": ("b.json", more)})
    frame = bodies.parse_body(body, content_type, {})
    assert frame["Age"].tolist() == [22, 38, 4]
    assert list(frame.index) == [0, 1, 2]


def test_a_multipart_form_without_files_is_no_table() -> None:
    body, content_type = multipart({"target_col": "Sex"}, {})
    args: dict[str, list[str]] = {}
    assert bodies.parse_body(body, content_type, args) is None
    assert args == {"target_col": ["Sex"]}


def test_a_broken_multipart_body_is_a_400() -> None:
    with pytest.raises(BadRequest, match="multipart/form-data body cannot be parsed"):
        bodies.parse_body(b"not multipart at all", "multipart/form-data; boundary=zz", {})


# ------------------------------------------------------------------------------ put_changes


def test_put_changes_merges_the_body_and_the_query() -> None:
    body = json.dumps({"class": "RandomForestClassifier", "n_estimators": 10}).encode()
    query = {"n_estimators": ["20"], "exclude": ["Name", "Ticket"], "_action": ["x"]}
    assert bodies.put_changes(body, query) == {
        "class": "RandomForestClassifier",
        "n_estimators": "20",  # the query wins
        "exclude": ["Name", "Ticket"],
    }


def test_put_changes_makes_a_single_column_name_a_list() -> None:
    assert bodies.put_changes(b"", {"cats": ["Sex"], "exclude": [""]}) == {
        "cats": ["Sex"],
        "exclude": [],
    }
    assert bodies.put_changes(b'{"include": "Age"}', {}) == {"include": ["Age"]}


def test_put_changes_refuses_server_files() -> None:
    with pytest.raises(Forbidden, match="'model.path'"):
        bodies.put_changes(b'{"model": {"path": "/etc/passwd"}}', {})
    with pytest.raises(Forbidden, match="'data'"):
        bodies.put_changes(b"", {"data": ["/etc/passwd"]})


@pytest.mark.parametrize("body, message", [(b"{nope", "not valid JSON"), (b"[1, 2]", "not a list")])
def test_put_changes_refuses_a_body_that_is_not_an_object(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        bodies.put_changes(body, {})


# ------------------------------------------------------------------------------ small readers


def test_clip_bounds_a_message() -> None:
    assert bodies.clip("short") == "short"
    long = "x" * 5000
    clipped = bodies.clip(long, 100)
    assert clipped.startswith("x" * 100 + "...") and "5,000 characters in all" in clipped
    assert len(clipped) < 200


@pytest.mark.parametrize(
    "args, expected",
    [
        ({}, True),
        ({"_wait": ["false"]}, False),
        ({"_wait": ["0"]}, False),
        ({"_wait": ["No "]}, False),
        ({"_wait": [""]}, True),
        ({"_wait": ["false", "yes"]}, True),  # the last one counts
    ],
)
def test_wants_wait(args: dict, expected: bool) -> None:
    assert bodies.wants_wait(args) is expected


def test_wants_wait_refuses_anything_else_quoting_it_clipped() -> None:
    with pytest.raises(BadRequest, match="_wait=true or _wait=false, got 'later'"):
        bodies.wants_wait({"_wait": ["later"]})
    with pytest.raises(BadRequest) as caught:
        bodies.wants_wait({"_wait": ["y" * 10_000]})
    assert len(str(caught.value)) < 2200


# ------------------------------------------------------------------------------ preview


def test_preview_describes_the_table_for_the_target_given() -> None:
    body = b"Age,Sex\n22,male\n38,female\n26,female\n"
    answer = bodies.preview(body, "text/csv", {"target_col": ["Sex"]})
    assert answer["rows"] == 3 and answer["target"] == "Sex"
    assert [c["name"] for c in answer["columns"]] == ["Age", "Sex"]
    assert answer["kind"] == "classifier" and answer["class"] == "RandomForestClassifier"
    assert answer["preview"][0] == {"Age": 22, "Sex": "male"}


def test_preview_of_a_multipart_upload_reads_the_target_from_its_fields() -> None:
    body, content_type = multipart({"target_col": "Age"}, {"file": ("p.csv", CSV)})
    answer = bodies.preview(body, content_type, {})
    assert answer["target"] == "Age" and answer["kind"] == "regressor"


def test_preview_without_a_table_is_a_400() -> None:
    with pytest.raises(BadRequest, match="_action=preview needs a table"):
        bodies.preview(b"", "text/csv", {})
