"""Shared fixtures: a real Jupyter server (pytest-jupyter), temp stores, the bundled data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]

# Models made in tests are fitted to be used, not scored: their 5-fold cross-validation (a job
# after each fit) was CPU the suite spent for nothing. $MLWIDGET_CV_FOLDS=0 turns it off here
# and in every server, kernel and worker a test starts (they inherit the environment); tests of
# scores say @pytest.mark.cross_validates, or start their server with --MLWidgetApp.cv_folds=5.
os.environ["MLWIDGET_CV_FOLDS"] = "0"

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

# Playwright's expect() waits 5 s by default: a page that shows what it should, only later on a
# busy machine, is not a failure. The browser tests wait up to this bound, never measure.
from playwright.sync_api import expect  # noqa: E402

expect.set_options(timeout=90_000)


@pytest.fixture
def titanic_csv(tmp_path: Path) -> Path:
    """A private copy of the bundled Titanic CSV (891 rows)."""
    dest = tmp_path / "data" / "titanic.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(NOTEBOOKS / "titanic.csv", dest)
    return dest


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model store, also exported as MLWIDGET_STORE for code that uses the default."""
    path = tmp_path / "store"
    path.mkdir()
    monkeypatch.setenv("MLWIDGET_STORE", str(path))
    return path


GUIDE_PASSENGER = {
    "Sex": "male",
    "Age": 22,
    "SibSp": 1,
    "Parch": 0,
    "Fare": 7.25,
    "Pclass": 3,
    "Embarked": "S",
}

# The guide's "Creating New Models" config, its misspelled SibSb included.
GUIDE_OPTIONS = {
    "class": "LogisticRegression",
    "target_col": "Survived",
    "exclude": ["PassengerId", "Ticket", "Cabin", "Name"],
    "cats": ["Embarked", "SibSb", "Parch", "Pclass", "Sex"],
}


# --- how pytest-xdist shares the tests out (issue 26) ---------------------------------------
# `.ci/test` runs `--dist loadgroup --no-loadscope-reorder`. Each test file is one group (one
# worker runs all of it, its module fixtures once), except the files in SPLIT, whose tests share
# no module fixture and take long apiece: each of their tests is a group of its own. Groups are
# handed out longest first (SLOW: seconds per group; only the order depends on
# them, a stale number costs balance, never a result), so the two workers finish together
# instead of one building the binder venv alone at the end.
SPLIT = {
    "test_binder.py", "test_kernel_hygiene.py", "test_server_crash.py", "test_shutdown.py",
    "test_rest.py", "test_job_results.py", "test_extension_app.py",
}  # fmt: skip
# (seconds per group in an idle run of 2026-12-07, the fuzz suites and the hub measured again
# after their changes; groups under 15 s go out in collection order after these)
SLOW = {
    "test_fastpath.py": 125,
    "test_dask_faults.py": 112,
    "test_binder.py::test_fresh_environment_from_binder_serves_rest_and_dashboard": 91,
    "test_jobs_dask.py": 89,
    "test_dashboard_browser.py": 89,
    "test_page_browser.py": 78,
    "test_request_safety.py": 63,
    "test_screenshots.py": 61,
    "test_dashboard_data_browser.py": 60,
    "test_versions.py": 49,
    "test_dask_training.py": 47,
    "test_main_command.py": 46,
    "test_rest_errors.py": 45,
    "test_fuzz_openapi.py": 45,
    "test_concurrency.py": 42,
    "test_job_results.py::test_bulk_answers_stay_out_of_the_servers_memory": 40,
    "test_attack_regressions.py": 40,
    "test_jobs_rest.py": 37,
    "test_resource_limits.py": 35,
    "test_share_browser.py": 33,
    "test_listing_browser.py": 33,
    "test_keys.py": 32,
    "test_interop.py": 32,
    "test_sources_cluster.py": 31,
    "test_v2_rest.py": 29,
    "test_properties.py": 29,
    "test_monitor_browser.py": 29,
    "test_delete_browser.py": 28,
    "test_gramex_compat.py": 26,
    "test_table_safety.py": 25,
    "test_jobs.py": 25,
    "test_server_crash.py::test_kill_during_retrain": 24,
    "test_kernel_hygiene.py::test_idle_kernels_nobody_is_connected_to_are_culled": 24,
    "test_kernel_hygiene.py::test_closing_the_dashboard_again_and_again_leaves_no_kernel": 24,
    "test_explain.py": 24,
    "test_widgets.py": 23,
    "test_store.py": 23,
    "test_server_crash.py::test_kill_during_append": 23,
    "test_rest_create.py": 23,
    "test_rest.py::test_docs_curl_commands_work": 23,
    "test_notebooks.py": 23,
    "test_offline_browser.py": 22,
    "test_hub.py": 22,
    "test_explain_browser.py": 22,
    "test_shutdown.py::test_sigterm_stops_jupyter_mlwidget_during_a_fit": 20,
    "test_fuzz_estimators.py": 20,
    "test_cors_browser.py": 20,
    "test_api_vocabulary.py": 20,
    "test_rest.py::test_guide_requests_in_order": 19,
    "test_prediction_log.py": 18,
    "test_extension_app.py::test_six_configured_models_of_every_kind_all_train_at_startup": 17,
    "test_sources.py": 15,
}


def xdist_group(item: pytest.Item) -> str:
    """The test's group: its file's name, or ``file::test`` for the files in SPLIT."""
    file, _, test = item.nodeid.partition("::")
    name = Path(file).name
    return f"{name}::{test}" if name in SPLIT else name


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        if not any(item.iter_markers("xdist_group")):
            item.add_marker(pytest.mark.xdist_group(xdist_group(item)))
        first.setdefault(xdist_group(item), index)
    # longest groups first; the others (and each group's tests) keep their order
    items.sort(key=lambda item: (-SLOW.get(xdist_group(item), 0), first[xdist_group(item)]))


def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Stop at once if xdist lost the groups (no "@group" on a test's id): every test would go
    to any worker, and a module's fixtures would be built again on each (see pyproject.toml)."""
    if node.config.getvalue("dist") == "loadgroup" and ids and not any("@" in i for i in ids):
        pytest.exit(
            "pytest-xdist's loadgroup sees no groups with this pytest: install the versions "
            "pyproject.toml's test extras name (bash .ci/setup-tests).",
            returncode=3,
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cross_validates: models made in this test, in this process or what it starts, "
        "cross-validate each fit, as by default (elsewhere MLWIDGET_CV_FOLDS=0)",
    )


@pytest.fixture(autouse=True)
def _fits_skip_cross_validation_unless_marked(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
):
    """``cv_folds=0`` in this process (see ``MLWIDGET_CV_FOLDS`` above) at every test's start,
    unless the test says ``@pytest.mark.cross_validates``: then the default folds, here and in
    what it starts (``$MLWIDGET_CV_FOLDS`` unset: an in-process server's ``cv_folds`` too)."""
    from mlwidget import limits

    # Set at every test's start: pytest-jupyter stops a test's server after this fixture's
    # teardown, and the server then gives back the cv_folds it started under.
    marked = request.node.get_closest_marker("cross_validates")
    if marked:
        monkeypatch.delenv(limits.ENV_CV_FOLDS)
    before = limits.configure()
    limits.configure(cv_folds=limits.Limits().cv_folds if marked else 0)
    yield
    limits.configure(before)


@pytest.fixture
def ceilings():
    """Change this process's default limits for one test: ``ceilings(max_table_cells=10)``;
    the defaults come back after it."""
    from mlwidget import limits

    before = limits.configure()
    yield lambda **changes: limits.configure(**changes)
    limits.configure(before)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, for one test module (Playwright's sync API: the module
    also imports sync_browser's event-loop fixtures)."""
    from playwright.sync_api import sync_playwright
    from rest_helpers import launch_chromium

    with sync_playwright() as p:
        launched = launch_chromium(p)
        try:
            yield launched
        finally:
            launched.close()
