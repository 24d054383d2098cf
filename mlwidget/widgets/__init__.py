"""ipywidgets forms over an :class:`mlwidget.MLModel`: predict, upload, editor, summary, history.

``build_app(model)`` composes them in tabs; ``MLModel.widget()`` returns that. ``Dashboard``
adds a model picker and a "New model" form (make a model from a file, no code) above them.
"""

from .app import MLApp, build_app
from .editor import EditorForm
from .history import HistoryPanel
from .newmodel import NewModelForm
from .picker import Dashboard
from .predict import PredictForm
from .summary import SummaryPanel
from .upload import UploadForm

__all__ = [
    "MLApp",
    "build_app",
    "Dashboard",
    "NewModelForm",
    "EditorForm",
    "HistoryPanel",
    "PredictForm",
    "SummaryPanel",
    "UploadForm",
]
