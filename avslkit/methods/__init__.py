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

# Every method module of this package, imported so the registry sees it (a new file needs no line here).
from avslkit.methods.base import _ensure_builtins  # noqa: E402

_ensure_builtins()
