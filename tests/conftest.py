"""Shared fixtures: a real Jupyter server (pytest-jupyter), temp stores, the bundled data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]

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
# handed out longest first (SLOW: seconds in the CI run of 2026-12-07; only the order depends on
# them, a stale number costs balance, never a result), so the two workers finish together
# instead of one building the binder venv alone at the end.
SPLIT = {
    "test_binder.py", "test_kernel_hygiene.py", "test_server_crash.py", "test_shutdown.py",
    "test_rest.py", "test_job_results.py", "test_extension_app.py",
}  # fmt: skip
# (the entries of the SPLIT files, and of the other files whose tests were last made quicker:
# measured alone, one file at a time; the rest: from the CI run)
SLOW = {
    "test_dask_faults.py": 100,
    "test_fuzz_openapi.py": 45,
    "test_binder.py::test_fresh_environment_from_binder_serves_rest_and_dashboard": 69,
    "test_dashboard_browser.py": 56,
    "test_jobs_dask.py": 52,
    "test_attack_regressions.py": 45,
    "test_concurrency.py": 32,
    "test_fuzz_estimators.py": 20,
    "test_server_crash.py::test_kill_during_retrain": 31,
    "test_main_command.py": 26,
    "test_rest.py::test_docs_curl_commands_work": 25,
    "test_notebooks.py": 25,
    "test_kernel_hygiene.py::test_closing_the_dashboard_again_and_again_leaves_no_kernel": 24,
    "test_screenshots.py": 55,
    "test_dashboard_data_browser.py": 45,
    "test_explain_browser.py": 20,
    "test_offline_browser.py": 20,
    "test_page_history_browser.py": 13,
    "test_page_params_browser.py": 20,
    "test_kernel_hygiene.py::test_idle_kernels_nobody_is_connected_to_are_culled": 23,
    "test_page_browser.py": 20,
    "test_jobs_rest.py": 20,
    "test_extension_app.py::test_six_configured_models_of_every_kind_all_train_at_startup": 19,
    "test_server_crash.py::test_kill_during_append": 18,
    "test_listing_browser.py": 13,
    "test_shutdown.py::test_sigterm_stops_jupyter_mlwidget_during_a_fit": 13,
    "test_shutdown.py::test_sigterm_stops_the_server_during_a_fit[forest]": 12,
    "test_shutdown.py::test_sigterm_stops_the_server_during_a_fit[sgd]": 12,
    "test_versions.py": 11,
    "test_interop.py": 10,
    "test_properties.py": 10,
    "test_extension_app.py::test_the_estimator_catalog_is_built_once_safely_from_many_threads": 9,
    "test_rest.py::test_guide_requests_in_order": 9,
    "test_job_results.py::test_bulk_answers_stay_out_of_the_servers_memory": 9,
    "test_rest.py::test_put_creates_a_model_and_kernel_models_are_served": 8,
    "test_rest.py::TestYAML::test_template": 7,
    "test_rest.py::TestYAML::test_yaml_model_at_its_pattern": 7,
    "test_job_results.py::test_a_job_too_large_to_receive_is_a_413_naming_job_memory": 6,
    "test_extension_app.py::test_a_configured_model_that_failed_is_reported_and_retried": 6,
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


@pytest.fixture
def ceilings():
    """Change this process's default limits for one test: ``ceilings(max_table_cells=10)``;
    the defaults come back after it."""
    from mlwidget import limits

    before = limits.configure()
    yield lambda **changes: limits.configure(**changes)
    limits.configure(before)
