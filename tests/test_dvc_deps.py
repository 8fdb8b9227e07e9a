"""dvc.yaml's code deps cannot drift: each stage depends on every package module its code imports."""

import ast
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT

PKG = ROOT / "src/emotion_classifier"
# Imported by every stage to validate params, report errors, name and write files atomically: a change there
# does not change a stage's results (params changes show up as params changes; paths are checked against
# dvc.yaml below), so they are left out on purpose.
EXEMPT = {"params", "io", "errors", "cli", "paths", "__init__"}


def _module_file(name: str) -> Path | None:
    """'architectures' -> the package folder, 'train' -> train.py; None when not a module of ours."""
    path = PKG / name.replace(".", "/")
    return path if path.is_dir() else path.with_suffix(".py") if path.with_suffix(".py").exists() else None


def _imports(tree: ast.AST, package: str) -> set[str]:
    """Modules of ours that the code under `tree` imports (relative imports, at any depth of the code)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if package else []
            prefix = ".".join([*base[1:], *([node.module] if node.module else [])])
            for alias in node.names:
                for name in (f"{prefix}.{alias.name}".strip("."), prefix):
                    if name and _module_file(name) is not None:
                        found.add(name)
                        break
    return found


def _closure(start: set[str]) -> set[str]:
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        files = sorted(path.glob("*.py")) if path.is_dir() else [path]
        package = "emotion_classifier." + name if path.is_dir() else "emotion_classifier." + name.rsplit(".", 1)[0] \
            if "." in name else "emotion_classifier"
        for f in files:
            todo += _imports(ast.parse(f.read_text()), package) - seen
    return {n.split(".")[0] for n in seen}


def stage_modules(stage: str) -> set[str]:
    """What the stage runs: pipeline's module-level imports plus those of its function, and all they import."""
    tree = ast.parse((PKG / "pipeline.py").read_text())
    body = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == stage)
    helpers = {c.func.id for c in ast.walk(body) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
    funcs = [body] + [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in helpers]
    top = ast.Module(body=[n for n in tree.body if isinstance(n, ast.ImportFrom)], type_ignores=[])
    start = _imports(top, "emotion_classifier") | set().union(*(_imports(f, "emotion_classifier") for f in funcs))
    return ({"pipeline"} | _closure(start - {"pipeline"})) - EXEMPT


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", [s for s in STAGES if s != "check_params"])
def test_stage_deps_cover_the_modules_it_imports(stage):
    deps = [str(d) for d in STAGES[stage]["deps"]]
    missing = []
    for name in sorted(stage_modules(stage)):
        rel = str(_module_file(name).relative_to(ROOT))
        if not any(rel == d.rstrip("/") or rel.startswith(d.rstrip("/") + "/") for d in deps):
            missing.append(rel)
    assert not missing, f"dvc.yaml stage {stage} imports {missing} but does not depend on them"


def test_the_import_walk_sees_function_level_and_package_imports():
    modules = stage_modules("train")  # train's body imports distributed and train inside the function
    assert {"distributed", "train", "models", "architectures", "hardware"} <= modules


def test_every_path_the_code_writes_is_declared_in_dvc_yaml():
    from emotion_classifier import paths

    text = (ROOT / "dvc.yaml").read_text()
    declared = {k: v for k, v in vars(paths).items() if k.isupper() and isinstance(v, str)}
    missing = {k: v for k, v in declared.items() if v not in text and k != "CHECKPOINTS"}  # checkpoints: not an out
    assert not missing, f"paths.py names {missing}, which dvc.yaml does not declare"
