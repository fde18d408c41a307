"""The package's layout, checked with ``ast`` (docs/design.md, "Architecture").

Each folder under ``src/earshot`` is one layer; a module imports only its own layer and the
layers above it in :data:`LAYERS`. These tests fail on a back-edge, an import cycle, a private
name imported across packages, a module loose at the root, a module over 500 lines or a
function over 100 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "earshot"

#: Lowest first. A module may import its own layer and any layer before it.
LAYERS = [
    "errors",
    "_util",
    "io",
    "features",
    "evaluation",
    "datasets",
    "synth",
    "models",
    "detection",
    "bundle",
    "timeline",
    "plots",
    "reports",
    "pipeline",
    "service",
    "cli",
]
#: The edges: nothing imports the command line; only the command line (``earshot serve``)
#: imports the service.
EDGES = {"cli", "service"}
ROOT_FILES = {"__init__.py", "errors.py", "__main__.py"}
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 100


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules(src: Path = SRC) -> dict[str, Path]:
    return {_module_name(p, src): p for p in sorted(src.rglob("*.py"))}


def _imports(path: Path) -> list[tuple[str, list[str], bool, int]]:
    """``(module, names, at_top, line)`` for every ``earshot`` import of a file."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("earshot") and not node.level:
            found.append((node.module, [a.name for a in node.names], id(node) in top, node.lineno))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("earshot"):
                    found.append((a.name, [], id(node) in top, node.lineno))
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _target(module: str, name: str, modules: dict[str, Path]) -> str:
    """The module an ``from module import name`` reaches (a submodule when ``name`` is one)."""
    return f"{module}.{name}" if f"{module}.{name}" in modules else module


def test_every_module_sits_in_a_layer_of_the_map():
    modules = _modules()
    loose = sorted(p.name for p in SRC.glob("*.py") if p.name not in ROOT_FILES)
    assert not loose, f"modules loose at the package root: {loose}"
    unknown = sorted({_layer(m) for m in modules} - set(LAYERS) - {"__init__", "__main__"})
    assert not unknown, f"folders missing from the layer map: {unknown}"


def _back_edges(src: Path = SRC) -> list[str]:
    """Every import of a module from a layer below it in :data:`LAYERS`."""
    modules = _modules(src)
    rank = {name: i for i, name in enumerate(LAYERS)}
    bad = []
    for mod, path in modules.items():
        here = _layer(mod)
        if here not in rank:
            continue
        for target, names, _, line in _imports(path):
            for t in {_target(target, n, modules) for n in names} or {target}:
                there = _layer(t)
                if there not in rank or there == here:
                    continue
                if rank[there] > rank[here]:
                    bad.append(f"{path.relative_to(src)}:{line} ({here}) imports {t} ({there})")
    return bad


def test_no_module_imports_a_layer_below_it():
    bad = _back_edges()
    assert not bad, "imports against the layer map:\n" + "\n".join(bad)


def _cycles(src: Path = SRC) -> list[list[str]]:
    """The import cycles between modules (strongly connected components of two or more)."""
    modules = _modules(src)
    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        deps = set()
        for target, names, _, _ in _imports(path):  # deferred imports count too
            for t in {_target(target, n, modules) for n in names} or {target}:
                if t in modules and t != mod and not mod.startswith(t + "."):
                    deps.add(t)
        graph[mod] = deps
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles_between_modules():
    cycles = _cycles()
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_name_is_imported_from_another_package():
    modules = _modules()
    bad = []
    for mod, path in modules.items():
        package = mod.rsplit(".", 1)[0] if path.name != "__init__.py" else mod
        for target, names, _, line in _imports(path):
            for n in names:
                t = _target(target, n, modules)
                home = t if t in modules and modules[t].name == "__init__.py" else t.rsplit(".", 1)[0]
                if n.startswith("_") and not n.startswith("__") and t == target and home != package:
                    bad.append(f"{path.relative_to(SRC)}:{line} imports {n} from {target}")
    assert not bad, "private names imported across packages:\n" + "\n".join(bad)


def test_modules_and_functions_stay_small():
    big_modules, big_functions = [], []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        n = len(text.splitlines())
        if n > MAX_MODULE_LINES:
            big_modules.append(f"{path.relative_to(SRC)}: {n} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    big_functions.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {length} lines")
    assert not big_modules, f"modules over {MAX_MODULE_LINES} lines: {big_modules}"
    assert not big_functions, f"functions over {MAX_FUNCTION_LINES} lines: {big_functions}"


def test_deferred_imports_say_why():
    """An import inside a function is a deliberate deferral (a heavy optional dependency, or
    ``earshot --help`` kept fast): a comment on its line or the line above says so."""
    bad = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                here = lines[node.lineno - 1]
                above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                if "#" not in here and not above.startswith("#"):
                    bad.append(f"{path.relative_to(SRC)}:{node.lineno}: {here.strip()}")
    assert not bad, f"{len(bad)} imports inside functions without a reason:\n" + "\n".join(bad)


def _fake_package(root: Path, files: dict[str, str]) -> Path:
    src = root / "earshot"
    for name, text in {"__init__.py": "", **files}.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src


@pytest.mark.parametrize("edge", sorted(EDGES))
def test_the_layer_check_catches_a_back_edge(tmp_path, edge):
    """The check itself: a made-up low module importing an edge (or a deferred import of a
    higher layer) is reported; the same import the other way round is not."""
    src = _fake_package(tmp_path, {
        "features/__init__.py": "",
        "features/low.py": f"def f():\n    from earshot.{edge}.high import g  # deferred\n",
        f"{edge}/__init__.py": "",
        f"{edge}/high.py": "from earshot.features.low import f\n",
    })
    bad = _back_edges(src)
    assert len(bad) == 1 and bad[0].startswith("features/low.py:2 (features) imports earshot." + edge)


def test_the_cycle_check_catches_a_cycle_through_a_deferred_import(tmp_path):
    src = _fake_package(tmp_path, {
        "io/__init__.py": "",
        "io/a.py": "from earshot.io.b import x\n",
        "io/b.py": "def x():\n    from earshot.io import a  # deferred\n",
    })
    assert _cycles(src) == [["earshot.io.a", "earshot.io.b"]]
