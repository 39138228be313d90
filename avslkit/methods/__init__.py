"""Training methods as Task objects (registry: `register_method`, `build_task`).

Loading a trained task for inference lives in `avslkit.inference`.
"""

from avslkit.methods.base import METHODS, Task, build_task, get_method, list_methods, register_method

__all__ = [
    "METHODS",
    "Task",
    "build_task",
    "get_method",
    "list_methods",
    "register_method",
]

# Every method module of this package, imported so the registry sees it (a new file needs no line here).
from avslkit.methods.base import _ensure_builtins  # noqa: E402

_ensure_builtins()
