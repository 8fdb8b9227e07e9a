"""Which of the package's source files a module runs: its relative imports (at any depth of its code, inside
functions too) followed to the end. One definition serves two checks that must agree: a DVC stage's code deps in
dvc.yaml (tests/test_dvc_deps.py) and a training run's code version (training.identity), so a cached output
depends on exactly the code that DVC reruns its stage for.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent
# Imported by every stage to validate params, report errors, name, write and cache files: a change there does not
# change a result (a params change shows up as one), so no stage depends on them and no run id hashes them.
EXEMPT = ("", "params", "fields", "files", "errors", "cli", "paths", "cache")
# Exempt modules a stage's results do depend on: train's settings are what params.resolve and member_params make of
# params.yaml (recipes, `auto`, members' overrides), so an edit of the resolution reruns train (a DVC dep). Not in the
# run id's code version: the run id holds what the resolution made (the TrainJob) by value, so an edit that changes
# no run's settings (a new section, a message) keeps every trained model reusable.
RUNS_ALSO = {"stages.train": ("params",)}


def module_file(name: str) -> Path | None:
    """'training.batches' -> training/batches.py, 'training' -> training/__init__.py; None when not ours."""
    path = PKG.joinpath(*name.split(".")) if name else PKG
    if path.is_dir():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").exists() else None


def _imports(name: str) -> set[str]:
    file = module_file(name)
    source = file.read_text(encoding="utf-8")
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    parts = package.split(".") if package else []
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            prefix = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found.add(prefix)
            found |= {f"{prefix}.{alias.name}".strip(".") for alias in node.names}  # a module, or a name in prefix
    if file.name == "__init__.py" and "pkgutil.iter_modules" in source:  # a registry: it imports every module in it
        found |= {f"{name}.{f.stem}" for f in file.parent.glob("*.py") if f.stem != "__init__"}
    return {m for m in found if module_file(m) is not None}


def _with_parents(name: str) -> set[str]:
    """Importing a.b.c runs a and a.b's __init__ first ("" is the package itself: exempt)."""
    parts = name.split(".") if name else []
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def exempt(name: str) -> bool:
    return name.split(".")[0] in EXEMPT


def modules(start: str, runs_also: bool = True) -> set[str]:
    """`start` and every module of ours it imports, directly or not; an exempt module is neither listed nor followed
    (params, say, imports the registries only to validate), unless RUNS_ALSO names it (a package: all of it) for
    `start` (and `runs_also`)."""
    also = set(RUNS_ALSO.get(start, ()) if runs_also else ())
    seen, todo = set(), sorted(_with_parents(start) | also)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [m for imported in _imports(name) for m in _with_parents(imported)
                 if (not exempt(m) or m.split(".")[0] in also) and m not in seen]
    return seen


def files(start: str, runs_also: bool = True) -> list[Path]:
    return sorted(module_file(m) for m in modules(start, runs_also))


def dvc_deps(start: str) -> list[str]:
    """files(start) as dvc.yaml lists them (relative to the project root): a folder whose every source file is in
    it as the folder, the rest file by file."""
    chosen = set(files(start))

    def whole(folder: Path) -> bool:
        return all(f in chosen for f in folder.rglob("*.py") if "__pycache__" not in f.parts)

    out = set()
    for f in chosen:
        top = f
        for parent in f.parents:
            if parent == PKG or not whole(parent):
                break
            top = parent
        out.add(top.relative_to(PKG.parents[1]).as_posix())
    return sorted(out)
