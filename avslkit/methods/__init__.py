"""Training methods as Task objects (registry: `register_method`, `build_task`), and inference loading."""

from avslkit.methods.base import METHODS, Task, build_task, get_method, list_methods, register_method
from avslkit.methods.inference import load_official_task, load_task_for_inference, predict_maps

__all__ = [
    "METHODS",
    "Task",
    "build_task",
    "get_method",
    "list_methods",
    "load_official_task",
    "load_task_for_inference",
    "predict_maps",
    "register_method",
]

# Semi-supervised methods (dmt, xpl, supervised, naive-ssl, hard-pl): imported so the registry sees them.
from avslkit.methods import dmt as _dmt, ssl_baselines as _ssl_baselines, xpl as _xpl  # noqa: E402,F401
