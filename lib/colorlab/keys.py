"""Cache keys: a hash of what produced an artefact, config and code alike.

Every trained run and every cached score or intermediate array in colorlab
is keyed by `key(payload, producers)`:

- `payload`: the JSON-able description of the inputs (configs, data specs,
  keys of upstream artefacts), hashed as canonical JSON;
- `producers`: the colorlab modules whose code makes the artefact (say the
  network module and the training loop). Their *import closure* is hashed:
  every colorlab module they import, at module or function level, directly
  or not. Each module's source is normalised first (parsed, docstrings
  dropped, dumped from the syntax tree), so editing a comment or a docstring
  keeps every key, while any code edit in the closure changes it.

No version number is bumped by hand anywhere: the code is the version.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PACKAGE = "colorlab"
ROOT = Path(__file__).resolve().parent  # the colorlab package folder


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks: the one file hash (data, weights, classifiers, folders)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def canonical(obj: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, tuples as lists, anything else by `str`."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON types (what `canonical` hashes and config.json stores)."""
    return json.loads(canonical(obj))


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for f in root.rglob("*.py"):
        parts = (PACKAGE, *f.relative_to(root).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def normalized(source: str) -> str:
    """The code of `source` without comments, docstrings or layout (a dump of its syntax tree)."""
    return ast.dump(_strip_docstrings(ast.parse(source)), annotate_fields=False, include_attributes=False)


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """colorlab modules that module `name` imports anywhere in its file (module or function level)."""
    out = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            cands = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_pkg else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            cands = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        else:
            continue
        for c in cands:
            while c and c not in mods:  # `import colorlab.models.x as y`: the deepest module that exists
                c = c.rpartition(".")[0]
            if c.startswith(PACKAGE):
                out.add(c)
                parent = c.rpartition(".")[0]
                while parent:  # importing a submodule runs its packages' __init__ too
                    if parent in mods:
                        out.add(parent)
                    parent = parent.rpartition(".")[0]
    out.discard(name)
    return out


@functools.lru_cache(maxsize=None)
def _graph(root: Path) -> tuple[dict[str, Path], dict[str, frozenset[str]]]:
    mods = _modules(root)
    return mods, {n: frozenset(_imports(n, p, mods)) for n, p in mods.items()}


def _outside(name: str, mods: dict[str, Path]) -> tuple[Path, frozenset[str]]:
    """A producer outside colorlab (a user's or a test's model module): its file and its colorlab imports."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise KeyError(f"{name} is neither a module of {PACKAGE} nor an importable Python file")
    return Path(spec.origin), frozenset(_imports(name, Path(spec.origin), mods))


def _sources(producers: Iterable[str], root: Path | None) -> dict[str, Path]:
    mods, graph = _graph(Path(root or ROOT))
    todo, seen = list(producers), {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name in mods:
            seen[name], deps = mods[name], graph[name]
        else:
            seen[name], deps = _outside(name, mods)
        todo.extend(d for d in deps if d not in seen)
    return seen


def closure(producers: Iterable[str], root: Path | None = None) -> list[str]:
    """The producers and every colorlab module they import, directly or not, sorted."""
    return sorted(_sources(producers, root))


@functools.lru_cache(maxsize=None)
def _module_digest(path: Path, mtime_ns: int) -> str:
    return hashlib.sha256(normalized(path.read_text()).encode()).hexdigest()


def code_digest(producers: Iterable[str], root: Path | None = None) -> str:
    """SHA-256 of the normalised source of every module in the producers' import closure."""
    h = hashlib.sha256()
    for name, path in sorted(_sources(producers, root).items()):
        h.update(f"{name}\0{_module_digest(path, path.stat().st_mtime_ns)}\0".encode())
    return h.hexdigest()


def key(payload: Any, producers: Iterable[str] = (), root: Path | None = None) -> str:
    """The key of an artefact: SHA-256 of the canonical payload and the producers' code digest."""
    producers = sorted(set(producers))
    code = code_digest(producers, root) if producers else ""
    return hashlib.sha256(canonical({"payload": payload, "producers": producers, "code": code}).encode()).hexdigest()


def clear_cache() -> None:
    """Forget the import graph (for a process that edits colorlab's files, such as a test)."""
    _graph.cache_clear()
