"""The package's own imports form no cycle, and ``import slamfront`` stays cheap.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import`` of a
``slamfront`` module, wherever it sits (module level, ``if TYPE_CHECKING:`` blocks, inside
functions), absolute or relative. ``from slamfront.x import y`` is an edge to ``slamfront.x.y``
when that is a module, else to ``slamfront.x``. The implicit import of parent packages is
not an edge.
"""

from __future__ import annotations

import ast
import itertools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import slamfront

PACKAGE_DIR = Path(slamfront.__file__).resolve().parent
HEAVY = ("torch", "onnxruntime", "gtsam", "rerun", "tensorrt", "pyrealsense2", "ray")


@dataclass(frozen=True)
class ImportSite:
    """Where a module imports another: file relative to the package's parent, line."""

    path: str
    line: int


def package_modules(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package."""
    root = package_dir.parent
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its longest prefix that is a module of the package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(package_dir: Path) -> dict[str, dict[str, ImportSite]]:
    """module -> {imported module: first place it is imported}, package modules only."""
    modules = package_modules(package_dir)
    root = package_dir.parent
    graph: dict[str, dict[str, ImportSite]] = {name: {} for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.append(submodule if submodule in modules else base)
            for target in targets:
                known = _known(target, modules)
                if known is not None and known != name:
                    site = ImportSite(str(path.relative_to(root)), node.lineno)
                    graph[name].setdefault(known, site)
    return graph


def strongly_connected(graph: dict[str, dict[str, ImportSite]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def cycle_in(component: list[str], graph: dict[str, dict[str, ImportSite]]) -> list[str]:
    """One shortest cycle through the first module of a strongly connected component."""
    members = set(component)
    start = component[0]
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node]):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if nxt in members and nxt not in parent:
                    parent[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - SCC has one


def describe(cycle: list[str], graph: dict[str, dict[str, ImportSite]]) -> str:
    """The cycle, one import per line with where it is made."""
    steps = [cycle[0]]
    for a, b in itertools.pairwise(cycle):
        site = graph[a][b]
        steps.append(f"  -> {b}  ({site.path}:{site.line})")
    return "\n".join(steps)


def test_the_graph_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "sub/__init__.py": "from . import extra\n",
        "sub/extra.py": "import os\n",
        "sub/leaf.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pkg import top\n"
            "def f():\n    from .. import other\n"
        ),
        "top.py": "from pkg.sub import name\nfrom . import sub\n",
        "other.py": "def g():\n    import pkg.sub.leaf as leaf\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph = import_graph(pkg)
    assert {name: set(imported) for name, imported in graph.items()} == {
        "pkg": set(),
        "pkg.sub": {"pkg.sub.extra"},
        "pkg.sub.extra": set(),
        "pkg.sub.leaf": {"pkg.top", "pkg.other"},
        "pkg.top": {"pkg.sub"},
        "pkg.other": {"pkg.sub.leaf"},
    }
    assert graph["pkg.other"]["pkg.sub.leaf"] == ImportSite("pkg/other.py", 2)
    components = strongly_connected(graph)
    assert components == [["pkg.other", "pkg.sub.leaf"]]
    assert cycle_in(components[0], graph) == ["pkg.other", "pkg.sub.leaf", "pkg.other"]


def test_the_package_imports_form_no_cycle() -> None:
    graph = import_graph(PACKAGE_DIR)
    assert len(graph) > 50 and any(graph.values())
    cycles = [describe(cycle_in(c, graph), graph) for c in strongly_connected(graph)]
    assert not cycles, "import cycles in slamfront:\n" + "\n\n".join(cycles)


def test_import_slamfront_loads_no_heavy_library() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_DIR.parent), *filter(None, [env.get("PYTHONPATH")])]
    )
    probe = (
        "import sys, slamfront; "
        f"print(slamfront.__file__); print(*[m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert Path(out[0]).resolve().parent == PACKAGE_DIR
    loaded = out[1].split() if len(out) > 1 else []
    assert loaded == [], f"import slamfront loaded {loaded}"
