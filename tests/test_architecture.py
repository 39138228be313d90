"""Package layering of avslkit: no upward import and no package-level cycle.

Every import of every module is read from its source (AST, imports inside functions included),
so a lazy import cannot hide a dependency. A package may import its own layer's siblings only
when they are listed as peers below and the peers do not import each other in a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "avslkit"

# lowest first; a package may import packages of its own layer or lower ones, never higher ones
LAYERS: list[set[str]] = [
    {"__init__", "errors", "utils", "config", "config_spec", "configs"},  # __init__ holds only __version__
    {"data", "metrics"},
    {"models", "losses"},
    {"engine"},
    {"semisup"},
    {"methods"},
    {"inference"},  # checkpoint → task (+ OGL) → maps: the one inference path
    {"evaluation"},
    {"viz", "demo", "synth"},
    {"workflow", "workspace", "training", "app"},
    {"cli", "__main__"},
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}

# Known violations, each with the module that makes it; the tests fail on any other one, and on an
# entry here that no longer happens (delete it then).
KNOWN_UPWARD: dict[tuple[str, str], str] = {}


def top_package(module: str) -> str:
    """``avslkit.engine.trainer`` → ``engine``; ``avslkit`` → ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the avslkit modules `path` imports (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "avslkit")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] == "avslkit":
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in node.names if mod == "avslkit" and (ROOT / a.name).exists())
    return found


def package_graph(skip_known: bool = True) -> dict[str, dict[str, list[str]]]:
    """package → imported package → the modules that import it (evidence for the failure message)."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = module_name(path)
        src = top_package(name)
        for target in imports_of(path):
            dst = top_package(target)
            if dst != src and not (skip_known and KNOWN_UPWARD.get((src, dst)) == name):
                graph.setdefault(src, {}).setdefault(dst, []).append(name)
    return graph


def test_every_package_has_a_layer():
    names = {p.name if p.is_dir() else p.stem for p in ROOT.iterdir() if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    assert names - set(LAYER_OF) == set(), "add the new package to LAYERS in tests/test_architecture.py"


def test_no_upward_import():
    upward = [
        f"{src} (layer {LAYER_OF[src]}) imports {dst} (layer {LAYER_OF[dst]}) in {', '.join(sorted(set(mods)))}"
        for src, targets in package_graph().items()
        for dst, mods in targets.items()
        if dst in LAYER_OF and src in LAYER_OF and LAYER_OF[dst] > LAYER_OF[src]
    ]
    assert upward == []


def test_no_package_cycle():
    graph = {src: set(targets) for src, targets in package_graph().items()}
    cycles = []
    for start in graph:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycles.append(" -> ".join(path + [start]))
                elif nxt not in path:
                    stack.append((nxt, path + [nxt]))
    assert cycles == []


def test_known_violations_still_exist():
    graph = package_graph(skip_known=False)
    gone = [edge for edge, module in KNOWN_UPWARD.items() if module not in graph.get(edge[0], {}).get(edge[1], [])]
    assert gone == [], "fixed: delete these from KNOWN_UPWARD"


def test_the_engine_does_not_import_the_methods():
    assert "methods" not in package_graph().get("engine", {})


@pytest.mark.parametrize("source, expected", [
    ("from avslkit.methods import build_task\n", {"avslkit.methods"}),
    ("def f():\n    import avslkit.viz.report\n", {"avslkit.viz.report"}),
    ("from . import step\n", {"avslkit.engine"}),
])
def test_imports_are_found_inside_functions_and_relative(tmp_path, source, expected, monkeypatch):
    pkg = tmp_path / "avslkit" / "engine"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text(source)
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path / "avslkit")
    assert imports_of(pkg / "x.py") == expected
