"""
The package's import graph, read with ``ast`` (every import, function-local ones too): no cycles, no
imports of the package's own modules by string, and the runtime never imports the bench harness.

``lint-imports`` (.importlinter, run by scripts/test.sh) checks the layers; this test needs nothing
beyond the standard library, so it also guards a checkout without the dev extra.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "dvs_cluster"


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    """The package modules ``module`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
    deps: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            deps.update(r for a in node.names if (r := _resolve(a.name)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for a in node.names:
                sub = f"{base}.{a.name}"
                r = sub if sub in MODULES else _resolve(base)
                if r:
                    deps.add(r)
    deps.discard(module)
    return deps


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def test_no_own_modules_imported_by_string() -> None:
    """``importlib.import_module("dvs_cluster....")`` hides an edge from the graph and the linter."""
    bad = []
    for m, p in MODULES.items():
        tree = ast.parse(p.read_text())
        consts = {  # NAME = "dvs_cluster.x" at any level: a module name kept in a variable
            t.id: n.value.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        for node in ast.walk(tree):
            func = getattr(node, "func", None)
            if not isinstance(node, ast.Call) or not node.args:
                continue
            if getattr(func, "attr", getattr(func, "id", None)) not in ("import_module", "__import__"):
                continue
            arg = node.args[0]
            name = arg.value if isinstance(arg, ast.Constant) else consts.get(getattr(arg, "id", ""))
            if isinstance(name, str) and _resolve(name):
                bad.append(f"{m}:{node.lineno} {name}")
    assert bad == []


def test_runtime_does_not_import_the_bench_harness() -> None:
    runtime = ["dvs_cluster.nodes.master", "dvs_cluster.nodes.slave", "dvs_cluster.nodes.cli"]
    runtime += ["dvs_cluster.train.realeval", "dvs_cluster.cli_common"]
    runtime += [m for m in MODULES if m.startswith("dvs_cluster.ros")]
    assert {m: "dvs_cluster.bench" for m in runtime if "dvs_cluster.bench" in GRAPH[m]} == {}


def test_validators_and_model_defaults_are_leaves() -> None:
    for leaf in ("dvs_cluster.validate", "dvs_cluster.model_defaults", "dvs_cluster.placement"):
        assert {d for d in GRAPH[leaf] if d != "dvs_cluster"} == set(), leaf
    assert GRAPH["dvs_cluster.io.frame"] == set()
