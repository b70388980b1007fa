"""The package's own imports form no cycle, sit at the top of their modules, and
``import slamfront`` stays cheap.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import`` of a
``slamfront`` module, wherever it sits (module level, ``if TYPE_CHECKING:`` blocks, inside
functions), absolute or relative. ``from slamfront.x import y`` is an edge to ``slamfront.x.y``
when that is a module, else to ``slamfront.x``. The implicit import of parent packages is
not an edge.

An import of the package's own modules inside a function is the exception (a module that
imports torch at its top, a CLI subcommand's implementation): there are few, and each says
why in a comment on its line or the line above.
"""

from __future__ import annotations

import ast
import io
import itertools
import os
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import slamfront

PACKAGE_DIR = Path(slamfront.__file__).resolve().parent
HEAVY = ("torch", "onnxruntime", "gtsam", "rerun", "tensorrt", "pyrealsense2", "ray")
# imports of the package's own modules inside functions, at most (see the module docstring)
MAX_IMPORTS_IN_FUNCTIONS = 20


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


@dataclass(frozen=True)
class ImportOf:
    """One import statement of a package module: the module it imports, where, and whether
    it sits inside a function (a method, a nested function)."""

    target: str
    node: ast.Import | ast.ImportFrom
    in_function: bool


def package_imports(name: str, path: Path, modules: dict[str, Path]) -> Iterator[ImportOf]:
    """The imports of package modules made by module ``name`` (source ``path``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def visit(node: ast.AST, in_function: bool) -> Iterator[ImportOf]:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(parts + ([child.module] if child.module else []))
                else:
                    base = child.module or ""
                for alias in child.names:
                    submodule = f"{base}.{alias.name}"
                    targets.append(submodule if submodule in modules else base)
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in targets:
                    known = _known(target, modules)
                    if known is not None:
                        yield ImportOf(known, child, in_function)
            yield from visit(child, inside)

    yield from visit(tree, False)


def import_graph(package_dir: Path) -> dict[str, dict[str, ImportSite]]:
    """module -> {imported module: first place it is imported}, package modules only."""
    modules = package_modules(package_dir)
    root = package_dir.parent
    graph: dict[str, dict[str, ImportSite]] = {name: {} for name in modules}
    for name, path in modules.items():
        for imp in package_imports(name, path, modules):
            if imp.target != name:
                site = ImportSite(str(path.relative_to(root)), imp.node.lineno)
                graph[name].setdefault(imp.target, site)
    return graph


@dataclass(frozen=True)
class ImportInFunction:
    """An import of a package module inside a function."""

    site: ImportSite
    target: str
    explained: bool  # a comment on one of its lines or on its own line just above
    repeated: bool  # the module also imports ``target`` at its top level


def _comment_lines(text: str) -> tuple[set[int], set[int]]:
    """(lines holding a comment, lines holding nothing but a comment)."""
    anywhere: set[int] = set()
    alone: set[int] = set()
    lines = text.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            row = token.start[0]
            anywhere.add(row)
            if not lines[row - 1][: token.start[1]].strip():
                alone.add(row)
    return anywhere, alone


def imports_in_functions(package_dir: Path) -> list[ImportInFunction]:
    """Every import statement of a package module inside a function, in file order."""
    modules = package_modules(package_dir)
    root = package_dir.parent
    found: list[ImportInFunction] = []
    for name, path in modules.items():
        imports = list(package_imports(name, path, modules))
        top = {imp.target for imp in imports if imp.node.col_offset == 0}  # module level
        anywhere, alone = _comment_lines(path.read_text(encoding="utf-8"))
        seen: set[int] = set()
        for imp in imports:
            node = imp.node
            if not imp.in_function or id(node) in seen:
                continue
            seen.add(id(node))
            end = node.end_lineno or node.lineno
            explained = node.lineno - 1 in alone or any(
                row in anywhere for row in range(node.lineno, end + 1)
            )
            targets = {i.target for i in imports if i.node is node}
            found.append(
                ImportInFunction(
                    ImportSite(str(path.relative_to(root)), node.lineno),
                    min(targets),
                    explained,
                    bool(targets & top),
                )
            )
    return found


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


def test_the_reader_finds_imports_inside_functions_and_their_comments(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    files = {
        "__init__.py": "",
        "heavy.py": "",
        "other.py": "",
        "light.py": (
            "import os\n"
            "from pkg import heavy\n"
            "def f():\n"
            "    import json\n"  # not a package module: not counted
            "    from pkg.heavy import x  # imports torch\n"
            "    # loads the runtimes\n"
            "    from . import other\n"
            "    from .other import (\n        y,\n    )\n"
            "class C:\n"
            "    def m(self):\n"
            "        def inner():\n"
            "            import pkg.other  # loads the runtimes\n"
            "        s = '# not a comment'\n"
            "        from pkg import other\n"
        ),
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    found = imports_in_functions(pkg)
    assert [(i.site.line, i.target, i.explained, i.repeated) for i in found] == [
        (5, "pkg.heavy", True, True),
        (7, "pkg.other", True, False),
        (8, "pkg.other", False, False),
        (14, "pkg.other", True, False),
        (16, "pkg.other", False, False),
    ]
    assert {i.site.path for i in found} == {os.path.join("pkg", "light.py")}


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


def test_few_package_imports_inside_functions_each_with_its_reason() -> None:
    found = imports_in_functions(PACKAGE_DIR)
    assert found, "the reader found no import inside a function (the CLI has some)"

    def where(imports: list[ImportInFunction]) -> str:
        return "\n".join(f"  {i.site.path}:{i.site.line}  {i.target}" for i in imports)

    repeated = [i for i in found if i.repeated]
    assert not repeated, (
        "imported inside a function although the module imports it at the top:\n" + where(repeated)
    )
    unexplained = [i for i in found if not i.explained]
    assert not unexplained, (
        "an import of slamfront inside a function needs a comment saying why (e.g. "
        "'# imports torch') on its line or the line above; or move it to the top:\n"
        + where(unexplained)
    )
    assert len(found) <= MAX_IMPORTS_IN_FUNCTIONS, (
        f"{len(found)} imports of slamfront inside functions (at most "
        f"{MAX_IMPORTS_IN_FUNCTIONS}); move project imports to the top of the module:\n"
        + where(found)
    )
