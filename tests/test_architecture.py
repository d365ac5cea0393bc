"""The house rules that keep the layout easy to see, checked on the source itself (AST, no imports run).

Data flows one way: readers (``data/``) -> ``tasks/`` -> checkpoints (``models/``) -> the engine (``raster/``) ->
outputs -> ``carbon/`` -> ``report/``. Every import counts, including the ones inside functions: a lazy import is
still a dependency, and a circle of them is still a circle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "terracarbon"

# what a reader of real formats may use: nothing of the domains that consume it
DATA_MAY_IMPORT = {"data", "errors", "utils", "raster.io"}
# packages that hold modules of different layers, so each module is its own node: raster/ has the low-level raster
# I/O that readers use (io.py) beside the engine that runs models (predict.py) and the zonal statistics (zonal.py)
SPLIT_BY_MODULE = {"raster"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    mod = _module_name(path)
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)  # `from pkg import module`
    return {t for t in out if t == "terracarbon" or t.startswith("terracarbon.")}


def _package(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in SPLIT_BY_MODULE:
        return f"{parts[1]}.{parts[2]}"
    return parts[1] if len(parts) > 1 else "terracarbon"


def package_graph() -> dict[str, dict[str, set[str]]]:
    """package -> {imported package -> the modules that import it (evidence)}."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    top = {p.stem if p.is_file() else p.name for p in SRC.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    top |= {f"{pkg}.{m.stem}" for pkg in SPLIT_BY_MODULE for m in (SRC / pkg).glob("*.py")}
    for path in SRC.rglob("*.py"):
        mod = _module_name(path)
        src = _package(mod)
        for target in _imports(path):
            dst = _package(target)
            if dst != src and dst in top and dst != "terracarbon":
                graph[src][dst].add(mod)
    return graph


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
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
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_between_packages():
    graph = package_graph()
    assert "raster.predict" in graph and "biomass" in graph  # the scan found the packages
    problems = []
    for comp in _cycles(graph):
        edges = [f"  {a} -> {b} (in {', '.join(sorted(graph[a][b]))})" for a in comp for b in comp if b in graph[a]]
        problems.append(" <-> ".join(comp) + "\n" + "\n".join(edges))
    assert not problems, "import circles between packages:\n" + "\n".join(problems)


def test_readers_import_no_domain_package():
    graph = package_graph()
    bad = {dst: sorted(mods) for dst, mods in graph.get("data", {}).items() if dst not in DATA_MAY_IMPORT}
    assert not bad, f"data/ (the readers) imports domain packages: {bad}"


def test_the_checker_sees_a_circle():
    assert _cycles({"a": {"b": {"x"}}, "b": {"a": {"y"}}, "c": {"a": {"z"}}}) == [["a", "b"]]
    assert _cycles({"a": {"b": {"x"}}, "b": {}}) == []
