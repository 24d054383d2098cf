"""Export to the MLflow model format: a directory that ``mlflow.pyfunc.load_model`` loads and
``mlflow models serve``, MLServer's MLflow runtime and KServe serve, with the same predictions.

Written without MLflow installed: the ``MLmodel`` file (the ``sklearn`` and ``python_function``
flavors, a signature from the feature schema, an input example), the fitted pipeline pickled as
``model.pkl`` (the sklearn flavor's ``pickle`` serialization), and the environment pinned to the
versions running here (``requirements.txt``, ``python_env.yaml``, ``conda.yaml``).
"""

from __future__ import annotations

import io
import json
import pickle
import platform
import time
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import BadRequest
from .versions import libraries

FORMATS = ("mlflow",)


def _column_type(feature: Mapping[str, Any]) -> str:
    if feature.get("kind") == "number":
        return "long" if feature.get("integer") else "double"
    values = [v for v in feature.get("categories") or [] if v is not None]
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "long"
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "double"
    return "string"


def signature(schema: list[Mapping[str, Any]], predictions: list[Any]) -> dict[str, str | None]:
    """MLflow's signature: one named column per feature; the predictions as a tensor."""
    inputs = [{"type": _column_type(f), "name": str(f["name"]), "required": True} for f in schema]
    values = [v for v in predictions if v is not None]
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        outputs: list[dict[str, Any]] = [
            {"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}
        ]
    elif values and all(isinstance(v, int | float) for v in values):
        outputs = [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]
    else:
        outputs = [{"type": "string", "required": True}]
    return {"inputs": json.dumps(inputs), "outputs": json.dumps(outputs), "params": None}


def example_row(schema: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A typical row: each feature's default (its median, or its most frequent category)."""
    row = {}
    for f in schema:
        value = f.get("default")
        kind = _column_type(f)
        if value is not None:
            value = (
                float(value) if kind == "double" else int(value) if kind == "long" else str(value)
            )
        row[str(f["name"])] = value
    return row


def write_mlflow(
    pipeline: Any, schema: list[Mapping[str, Any]], fitted: Mapping[str, Any], path: Path
) -> Path:
    """The MLflow model directory of ``pipeline`` at ``path`` (which must not exist, or be an
    empty folder). Returns ``path``."""
    import pandas as pd
    import yaml

    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BadRequest(
            f"Expected a new or empty folder to export the MLflow model to, got {path.name!r}, "
            "which holds files. Choose another path."
        )
    path.mkdir(parents=True, exist_ok=True)
    libs = libraries()
    row = example_row(schema)
    try:
        sample = pipeline.predict(pd.DataFrame([row]))
        predicted = [v.item() if hasattr(v, "item") else v for v in sample]
    except Exception:  # the signature's output then says string
        predicted = []
    with open(path / "model.pkl", "wb") as out:
        modules = pickle_recording_modules(pipeline, out)
    requirements = [
        "mlflow",
        f"scikit-learn=={libs['scikit-learn']}",
        f"pandas=={libs['pandas']}",
        f"numpy=={libs['numpy']}",
        *requirements_of(modules, skip=("sklearn", "pandas", "numpy")),
    ]
    (path / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (path / "python_env.yaml").write_text(
        yaml.safe_dump(
            {
                "python": platform.python_version(),
                "build_dependencies": ["pip", "setuptools", "wheel"],
                "dependencies": ["-r requirements.txt"],
            },
            sort_keys=False,
        )
    )
    (path / "conda.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "mlflow-env",
                "channels": ["conda-forge"],
                "dependencies": [
                    f"python={platform.python_version()}",
                    "pip",
                    {"pip": [r for r in requirements if not r.startswith("#")]},
                ],
            },
            sort_keys=False,
        )
    )
    columns = list(row)
    (path / "input_example.json").write_text(
        json.dumps({"columns": columns, "data": [[row[c] for c in columns]]})
    )
    (path / "serving_input_example.json").write_text(
        json.dumps(
            {"dataframe_split": {"columns": columns, "data": [[row[c] for c in columns]]}}, indent=2
        )
    )
    mlmodel = {
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn",
                "model_path": "model.pkl",
                "predict_fn": "predict",
                "python_version": platform.python_version(),
            },
            "sklearn": {
                "code": None,
                "pickled_model": "model.pkl",
                "serialization_format": "pickle",
                "sklearn_version": libs["scikit-learn"],
            },
        },
        "model_uuid": uuid.uuid4().hex,
        "saved_input_example_info": {
            "artifact_path": "input_example.json",
            "pandas_orient": "split",
            "serving_input_path": "serving_input_example.json",
            "type": "dataframe",
        },
        "signature": signature(schema, predicted),
        "utc_time_created": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "metadata": {
            "exported_by": f"mlwidget {libs['mlwidget']}",
            "class": fitted.get("model"),
            "version": fitted.get("version"),
            "target_col": fitted.get("target_col"),
        },
    }
    (path / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=False))
    return path


def pickle_recording_modules(obj: Any, out: Any) -> set[str]:
    """Pickle ``obj`` to the file ``out``; returns the top-level modules of the classes and
    functions the pickle names (what loading it imports: ``xgboost`` for an XGBoost model,
    ``mlwidget`` for a pipeline with mlwidget's own steps, such as its date features)."""
    modules: set[str] = set()

    class Recording(pickle.Pickler):
        def reducer_override(self, value: Any) -> Any:
            named = value if isinstance(value, type) or callable(value) else type(value)
            module = getattr(named, "__module__", None)
            if isinstance(module, str):
                modules.add(module.split(".")[0])
            return NotImplemented  # pickled as usual

    Recording(out, protocol=pickle.DEFAULT_PROTOCOL).dump(obj)
    return modules


def requirements_of(modules: set[str], skip: tuple[str, ...] = ()) -> list[str]:
    """``name==version`` of the installed distributions that provide ``modules`` (sorted; the
    standard library's and ``skip``'s left out). A module no installed distribution provides
    is a comment, never a name pip would look up on an index (another project may own it)."""
    import sys
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    providers = packages_distributions()
    out, unknown = set(), []
    for module in modules - set(skip) - set(sys.stdlib_module_names) - {"builtins", "__main__"}:
        for dist in providers.get(module) or [module]:  # (an editable install maps no module)
            try:
                out.add(f"{dist}=={version(dist)}")
            except PackageNotFoundError:
                unknown.append(module)
    notes = [
        f"# the model also imports {name!r}, which no installed distribution provides: "
        "make it importable where the model is served"
        for name in sorted(set(unknown))
    ]
    return sorted(out, key=str.lower) + notes


def zip_folder(folder: Path, top: str) -> bytes:
    """The folder's files in a zip, under the folder name ``top``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, f"{top}/{file.relative_to(folder)}")
    return buffer.getvalue()
