"""The package's import structure: layers point down, no cycles, lazy imports only where a reason is given.

Layers, lowest first (a module may import its own package and lower layers, never a package of its own layer):
core -> market, metrics -> config, report -> data, model, tracking -> forecast, fetch -> records -> runtime ->
train, backtest, evaluate, export, serve -> workflows, walkforward, agent -> cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "kronos_cli"
LAYERS = [
    {"__init__", "core"},
    {"market", "metrics"},
    {"config", "configs", "report"},
    {"data", "model", "tracking"},
    {"forecast", "fetch"},
    {"records"},
    {"runtime"},
    {"train", "backtest", "evaluate", "export", "serve"},
    {"workflows", "walkforward", "agent"},
    {"cli"},
    {"__main__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(tree: ast.Module):
    """(imported module, line number, function-level?) for every import of the package's own modules."""
    lazy = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        for n in ast.walk(f)
        if isinstance(n, (ast.Import, ast.ImportFrom))
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kronos_cli"):
            names = [f"{node.module}.{a.name}" for a in node.names]
            yield node.module, names, node.lineno, id(node) in lazy
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("kronos_cli"):
                    yield a.name, [], node.lineno, id(node) in lazy


def _resolve(target: str, names: list[str], known: set[str]) -> list[str]:
    """The modules an import statement loads: `from pkg import mod` names a module too."""
    hits = [n for n in names if n in known]
    return hits or [target]


def test_every_module_has_a_layer():
    missing = sorted({_top(m) for m in _modules()} - set(LAYER))
    assert not missing, f"give these top-level modules a layer in tests/test_layers.py: {missing}"


def test_imports_point_down():
    mods = _modules()
    bad = []
    for name, tree in mods.items():
        here = _top(name)
        for target, names, line, _ in _imports(tree):
            for t in _resolve(target, names, set(mods)):
                there = _top(t)
                if there != here and LAYER[there] >= LAYER[here]:
                    bad.append(f"{name}:{line} imports {t} (layer {LAYER[there]} >= {LAYER[here]})")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    mods = _modules()
    graph = {
        m: {
            t
            for target, names, _, _ in _imports(tree)
            for t in _resolve(target, names, set(mods))
            if t in mods and t != m
        }
        for m, tree in mods.items()
    }
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in graph:
        if m not in index:
            visit(m)
    assert not cycles, f"import cycles (lazy imports included): {cycles}"


def test_lazy_imports_say_why():
    """Outside the CLI (whose commands import the library when they run, so `--help` stays fast), an import
    inside a function is for an optional or heavy dependency and carries a `# lazy:` reason."""
    bad = []
    for path in PACKAGE.rglob("*.py"):
        if "cli" in path.relative_to(PACKAGE).parts[:1]:
            continue
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for f in ast.walk(tree):
            if not isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(f):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    here, above = lines[node.lineno - 1], lines[node.lineno - 2] if node.lineno > 1 else ""
                    if "# lazy:" not in here and "# lazy:" not in above:
                        bad.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {here.strip()}")
    assert not bad, "imports inside functions without a `# lazy:` reason:\n" + "\n".join(bad)
