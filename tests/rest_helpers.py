"""Helpers for the REST suites: requests through pytest-jupyter's ``jp_fetch`` and bodies."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from conftest import NOTEBOOKS

TITANIC = NOTEBOOKS / "titanic.csv"


@dataclass
class Reply:
    code: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


async def call(
    jp_fetch: Any,
    *parts: str,
    method: str = "GET",
    params: Any = None,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Reply:
    """One request; never raises on an HTTP error status (the reply carries it)."""
    if body is None and method in ("POST", "PUT"):
        body = b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    kwargs.setdefault("request_timeout", 120)
    response = await jp_fetch(
        *parts,
        method=method,
        params=params,
        body=body,
        headers=dict(headers or {}),
        raise_error=False,
        **kwargs,
    )
    return Reply(response.code, response.headers, response.body or b"")


def multipart(
    files: list[tuple[str, str, bytes]], fields: dict[str, str] | None = None
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body, as ``curl -F`` or ``requests.post(files=...)`` send it.
    ``files`` are ``(field, filename, content)``."""
    boundary = uuid.uuid4().hex
    chunks: list[bytes] = []
    for key, value in (fields or {}).items():
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        )
    for field, filename, content in files:
        chunks.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + content
            + b"\r\n"
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def assert_clean_error(reply: Reply, status: int, *words: str) -> dict:
    """The reply is a JSON error with this status whose message names ``words``, and it
    carries no traceback and no server path."""
    assert reply.code == status, (reply.code, reply.text)
    assert reply.headers.get("Content-Type", "").startswith("application/json")
    data = reply.json()
    assert isinstance(data.get("error"), str) and data["error"], data
    for word in words:
        assert word.lower() in data["error"].lower(), (word, data["error"])
    assert_no_leak(reply.text)
    return data


def assert_no_leak(text: str) -> None:
    assert "Traceback" not in text
    assert 'File "' not in text
    assert not re.search(r"(/tmp/|/work/|/root/|/home/|site-packages|\.py\b)", text), text
