"""ipywidgets forms over an :class:`mlwidget.MLModel`: predict, upload, editor, summary, history.

``build_app(model)`` composes them in tabs; ``MLModel.widget()`` returns that.
"""

from .app import MLApp, build_app
from .editor import EditorForm
from .history import HistoryPanel
from .predict import PredictForm
from .summary import SummaryPanel
from .upload import UploadForm

__all__ = [
    "MLApp",
    "build_app",
    "EditorForm",
    "HistoryPanel",
    "PredictForm",
    "SummaryPanel",
    "UploadForm",
]
