"""The MLflow export's environment (mlwidget/export.py): requirements.txt pins every installed
distribution that loading model.pkl imports, found from the pickle itself, so an environment
built from it (``mlflow models serve``, MLServer, KServe) can load the model: xgboost for an
XGBoost model, mlwidget for a pipeline with mlwidget's own steps (date features)."""

from __future__ import annotations

import io
import pickle
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from conftest import GUIDE_OPTIONS, ROOT

from mlwidget import MLModel

INFLATION = ROOT / "tests" / "data" / "inflation.csv"


def imported_by(pickled: bytes) -> set[str]:
    """The top-level modules that unpickling ``pickled`` imports (read by loading it)."""
    seen: set[str] = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            seen.add(module.split(".")[0])
            return super().find_class(module, name)

    Recording(io.BytesIO(pickled)).load()
    return seen - set(sys.stdlib_module_names) - {"builtins"}


def pinned(folder: Path) -> dict[str, str]:
    """requirements.txt as {distribution: version} (mlflow, unpinned, as "")."""
    lines = (folder / "requirements.txt").read_text().split()
    return {line.split("==")[0]: line.partition("==")[2] for line in lines}


@pytest.mark.parametrize(
    "name, options, needs",
    [
        ("titanic", {**GUIDE_OPTIONS, "class": "LogisticRegression"}, set()),
        ("boosted", {**GUIDE_OPTIONS, "class": "XGBClassifier"}, {"xgboost"}),
        ("inflation", {"target_col": "Dp"}, {"mlwidget"}),  # its date column: DateFeatures
    ],
)
def test_requirements_pin_what_the_pickle_imports(
    store_dir: Path, titanic_csv: Path, tmp_path: Path, name: str, options: dict, needs: set
) -> None:
    if "xgboost" in needs:
        pytest.importorskip("xgboost")
    data = INFLATION if name == "inflation" else titanic_csv
    model = MLModel(name, data=str(data), store=store_dir, executor="thread", **options)
    folder = model.export("mlflow", tmp_path / "exported")
    modules = imported_by((folder / "model.pkl").read_bytes())
    assert needs <= modules, modules
    requirements = pinned(folder)
    providers = packages_distributions()
    for module in modules:  # (an editable install maps no module: its name is the project's)
        assert set(providers.get(module) or [module]) & set(requirements), (module, requirements)
    for dist, version in requirements.items():
        assert dist == "mlflow" or version, dist  # every other one pinned to what runs here
    if not needs:  # a plain scikit-learn pipeline needs neither
        assert not {"mlwidget", "xgboost", "xgboost-cpu"} & set(requirements)


def test_a_module_no_distribution_provides_is_a_comment_not_a_requirement() -> None:
    """pip would install whatever an index has under that name: a note says what to do."""
    from mlwidget.export import requirements_of

    lines = requirements_of({"sklearn", "mlwidget_made_up_module", "json"})
    assert lines[-1].startswith("# the model also imports 'mlwidget_made_up_module'")
    assert not any("json" in line for line in lines)  # the standard library needs nothing
    assert all("==" in line for line in lines[:-1]) and len(lines) >= 2
