"""The real pipeline in a copy of the repository: dvc pull from the shared remote, dvc repro."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from .conftest import SHARED, copy_repo


def dvc(args, cwd, **kw):
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, check=False,
                          capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    if not (SHARED / "dvc-storage").exists():
        pytest.skip("../shared/dvc-storage is not beside the project")
    d = copy_repo(tmp_path_factory.mktemp("e2e") / "repo")
    subprocess.run(["git", "init", "-q"], cwd=d, check=True)
    # ../shared is not beside the temp copy: point the remote at it by absolute path.
    assert dvc(["remote", "modify", "--local", "storage", "url", str(SHARED / "dvc-storage")], d).returncode == 0
    r = dvc(["pull", "data/raw/goemotions.dvc"], d)
    assert r.returncode == 0, r.stderr
    p = yaml.safe_load((d / "params.yaml").read_text())
    p["data"]["max_examples"] = 150
    (d / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return d


def test_prepare_and_analyze(repo):
    r = dvc(["repro", "analyze_dataset"], repo)
    assert r.returncode == 0, r.stdout + r.stderr
    for s in ("train", "dev", "test"):
        assert len(pd.read_parquet(repo / "data/prepared" / f"{s}.parquet")) == 150
    m = json.loads((repo / "metrics/dataset.json").read_text())
    assert m["train.examples"] == 150 and m["test.examples"] == 150
    assert sum(m[f"train.labels_per_example_{k}"] for k in ("1", "2", "3", "4", "5plus")) == 150
    for kind in ("counts", "conditional", "jaccard"):
        assert (repo / f"plots/dataset/cooccurrence_{kind}.png").stat().st_size > 10_000

    r = dvc(["status"], repo)
    assert "up to date" in r.stdout, r.stdout

    shown = json.loads(dvc(["plots", "show", "--json"], repo).stdout)["data"]
    assert any("Label distribution" in k for k in shown)
    assert sum(k.endswith(".png") for k in shown) >= 3


def test_bad_row_fails_and_keeps_previous_output(repo):
    before = (repo / "data/prepared/train.parquet").read_bytes()
    raw = repo / "data/raw/goemotions/train.tsv"
    raw.chmod(0o644)
    lines = raw.read_text().splitlines()
    lines[9] = "bad label\t28\tzzz1"
    lines[19] = "\t3\tzzz2"
    raw.write_text("\n".join(lines) + "\n")
    r = dvc(["repro", "prepare"], repo)
    assert r.returncode != 0
    assert "train.tsv:10: label id 28 is outside 0..27" in r.stdout + r.stderr
    assert (repo / "data/prepared/train.parquet").read_bytes() == before
