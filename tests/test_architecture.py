"""docs/architecture.md matches the tree; the package has no import cycles; modules stay small."""
import ast
import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "caffelite"
MAP_LINE = re.compile(r"^(caffelite/\S+\.py)\s")
# Modules allowed past LINE_LIMIT, each with its reason in docs/architecture.md.
LINE_LIMIT = 330
LONG_MODULES = {"proto/caffelite_pb2.py", "kernels/pool_phases.py", "solvers/solver.py",
                "net.py", "tools/inspect.py"}


def modules():
    return sorted(p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py"))


def map_entries():
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## The map", 1)[1].split("```")[1]
    return [m.group(1) for line in block.splitlines() if (m := MAP_LINE.match(line))]


def test_every_module_is_on_the_map():
    entries = map_entries()
    missing = [m for m in modules() if not any(fnmatch.fnmatch(m, e) for e in entries)]
    assert not missing, f"add these modules to docs/architecture.md's map: {missing}"


def test_the_map_names_only_modules_that_exist():
    stale = [e for e in map_entries() if not fnmatch.filter(modules(), e)]
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path, known):
    """Modules of the package imported at import time (not inside functions); `from . import
    x` of a submodule x is an edge to x, not to the package."""
    tree = ast.parse(path.read_text())
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("caffelite"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("caffelite"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return found


def test_no_import_cycles():
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: {t for t in _top_level_imports(p, paths) if t in paths and t != name}
             for name, p in paths.items()}
    # A module's package __init__ runs first; an edge into a package is an edge to its
    # __init__, which is the module named by the package itself.
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_modules_stay_small():
    long = {m.removeprefix("caffelite/"): n for m in modules()
            if (n := len((ROOT / m).read_text().splitlines())) > LINE_LIMIT}
    unexplained = {m: n for m, n in long.items() if m not in LONG_MODULES}
    assert not unexplained, (f"modules over {LINE_LIMIT} lines: {unexplained}; split them, or "
                             "explain why not in docs/architecture.md and LONG_MODULES")


def test_public_names_stay_importable():
    """The paths users import from pycaffe habits and earlier releases survive the layout."""
    import importlib

    import caffelite
    for name in ("Net", "NetSpec", "params", "get_solver", "SGDSolver", "read_net_param",
                 "write_net_param", "layer_type_list", "TRAIN", "TEST"):
        assert getattr(caffelite, name) is not None
    for module in ("caffelite.io", "caffelite.draw", "caffelite.net_spec", "caffelite.layers",
                   "caffelite.proto", "caffelite.runtime"):
        importlib.import_module(module)
    from caffelite.draw import draw_net_to_file  # noqa: F401
    from caffelite.io import load_caffemodel, read_binaryproto, save_caffemodel  # noqa: F401
    from caffelite.proto import caffelite_pb2  # noqa: F401
