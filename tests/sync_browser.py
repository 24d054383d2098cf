"""For the test modules that drive Chromium with Playwright's sync API against servers in
subprocesses: pytest-jupyter's autouse event-loop fixtures, which would close Playwright's loop
after each test, replaced by fixtures that do nothing. Such a module imports both:
``from sync_browser import jp_asyncio_loop, jp_server_cleanup  # noqa: F401`` (and takes the
``browser`` fixture from conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def jp_asyncio_loop():
    yield None


@pytest.fixture(autouse=True)
def jp_server_cleanup():
    yield
