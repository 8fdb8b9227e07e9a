import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

LABELS = ["joy", "anger", "neutral"]

GOOD = {
    "train": ['hello there\t0\ta1', '"she said ""hi"" to [NAME]"\t0,2\ta2', "so angry\t1\ta3", "ok then\t2\ta4"],
    "dev": ["fine\t2\tb1", "great news\t0\tb2"],
    "test": ["meh\t2\tc1", "awful\t1\tc2"],
}


def write_raw(d: Path, rows=None, labels=None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "emotions.txt").write_text("\n".join(labels or LABELS) + "\n")
    for split, lines in (rows or GOOD).items():
        (d / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return d


@pytest.fixture
def raw_dir(tmp_path):
    return write_raw(tmp_path / "raw")


@pytest.fixture
def shared_goemotions():
    d = SHARED / "goemotions"
    if not d.exists():
        pytest.skip("../shared/goemotions is not beside the project")
    return d


def copy_repo(dst: Path) -> Path:
    """The project's tracked layout, without venv, caches and outputs."""
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", ".pytest_cache",
                                    "prepared", "goemotions", "cache", "tmp", ".checkpoints", "models",
                                    "dvclive", ".ruff_cache")
    shutil.copytree(ROOT, dst, ignore=ignore)
    return dst
