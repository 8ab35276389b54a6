"""The package's shape: imports point one way, no import circles, short functions.

Layers, low to high (a module may import its own unit and lower layers only):

    0  babelrank.errors
    1  babelrank.config, babelrank.schema
    2  babelrank.store, babelrank.models
    3  babelrank.ingest, babelrank.query
    4  babelrank.index (the facade)
    5  babelrank.evaluation
    6  babelrank.tune (reads the evaluation's data sets: Tatoeba, XQuAD)
    7  babelrank.apps.cli, babelrank.apps.server

Units of one layer do not import each other (store and models, ingest and query, the two
apps), and nothing imports an app or the package's ``__init__``. Every import counts: inside
functions and under ``TYPE_CHECKING`` too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "babelrank"

UNITS = {
    "babelrank.errors": 0,
    "babelrank.config": 1, "babelrank.schema": 1,
    "babelrank.store": 2, "babelrank.models": 2,
    "babelrank.ingest": 3, "babelrank.query": 3,
    "babelrank.index": 4,
    "babelrank.evaluation": 5,
    "babelrank.tune": 6,
    "babelrank.apps.cli": 7, "babelrank.apps.server": 7,
}
MAX_LINES = 60
LONG_REASON = re.compile(r"#\s*longer than \d+ lines:\s*\S")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _unit(module: str) -> str | None:
    """The unit a module belongs to (longest matching prefix), None for the package itself."""
    best = None
    for unit in UNITS:
        if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best)):
            best = unit
    return best


def _imports(module: str, path: Path) -> set[str]:
    """Every babelrank module `module` imports (relative imports resolved, `from x import y` as x.y when y is a module)."""
    known = _modules()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "babelrank")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "babelrank":
                continue
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
            found.update(subs or {base})
    return found


def test_every_module_belongs_to_a_unit() -> None:
    orphans = [m for m in _modules() if _unit(m) is None and m not in ("babelrank", "babelrank.apps")]
    assert not orphans, f"modules outside the layer map (add them to a subpackage or to UNITS): {orphans}"


def test_imports_point_down_the_layers() -> None:
    wrong = []
    for module, path in _modules().items():
        mine = _unit(module)
        for target in _imports(module, path):
            theirs = _unit(target)
            if target in ("babelrank", "babelrank.apps"):
                wrong.append(f"{module} imports the package {target} (import the defining module)")
            elif mine is None or theirs is None or theirs == mine:
                continue
            elif UNITS[theirs] >= UNITS[mine]:
                wrong.append(f"{module} (layer {UNITS[mine]}) imports {target} (layer {UNITS[theirs]})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circles() -> None:
    modules = _modules()
    graph = {m: {t for t in _imports(m, p) if t in modules and t != m} for m, p in modules.items()}
    # a module imports its package's __init__ implicitly; count only explicit edges
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _long_functions() -> list[str]:
    out = []
    for module, path in _modules().items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                length = node.end_lineno - start + 1
                around = " ".join(lines[max(0, start - 2): node.body[0].lineno])
                if length > MAX_LINES and not LONG_REASON.search(around):
                    out.append(f"{module}.{node.name}: {length} lines")
    return out


def test_functions_are_short_or_say_why() -> None:
    long = _long_functions()
    assert not long, (f"functions over {MAX_LINES} lines without a '# longer than {MAX_LINES} lines: <reason>' "
                      "comment beside the def:\n" + "\n".join(long))


def test_the_version_is_written_once() -> None:
    from importlib.metadata import version

    import babelrank
    from babelrank.config import VERSION

    pyproject = (SRC.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert 'version = {attr = "babelrank.config.VERSION"}' in pyproject
    assert not re.search(r"^version = \"", pyproject, re.M)
    assert babelrank.__version__ == VERSION == version("babelrank")
