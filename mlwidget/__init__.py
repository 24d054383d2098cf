"""mlwidget: Gramex's MLHandler in Jupyter.

One on-disk model store, three faces: ``MLModel`` in Python, ipywidgets forms, and the
MLHandler REST API served by a Jupyter server extension.
"""

from .errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MLWidgetError,
    NotFound,
    PayloadTooLarge,
    UnsupportedFormat,
)
from .model import MLModel, list_models

__version__ = "0.1.0"

__all__ = [
    "MLModel",
    "list_models",
    "MLWidgetError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "UnsupportedFormat",
    "__version__",
]
