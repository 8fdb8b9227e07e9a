"""`dvc queue start -j 2` runs two experiments at once in a clone, sharing the feature cache. (Sharing experiments
between clones through git and DVC remotes: tests/test_multi_machine.py.)"""

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from .conftest import SHARED, copy_repo, tiny_tree
from .test_pipeline_e2e import dvc, dvc_env

pytestmark = pytest.mark.slow  # DVC, torchrun or benchmark runs: `make test-fast` skips them


def git(args, cwd):
    r = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, capture_output=True,
                       text=True, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def ok(r):
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


@pytest.fixture(scope="module")
def team(tmp_path_factory, tiny_encoder):
    """origin.git (git remote), exps/ (DVC remote), and a way to make a clone set up as a teammate would."""
    if not (SHARED / "dvc-storage").exists():
        pytest.skip("../shared/dvc-storage is not beside the project")
    root = tmp_path_factory.mktemp("team")
    git(["init", "-q", "--bare", "-b", "main", str(root / "origin.git")], root)
    seed = copy_repo(root / "seed")
    p = yaml.safe_load((seed / "params.yaml").read_text())
    tiny = tiny_tree(tiny_encoder, "bilstm_maxpool", epochs=1)
    p.update(model=tiny["model"], train=tiny["train"], evaluate=tiny["evaluate"], ensemble={"members": []})
    p["data"]["max_examples"] = 60
    p["compare"]["tfidf_max_features"] = 500
    (seed / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    git(["init", "-q", "-b", "main"], seed)
    git(["add", "-A"], seed)
    git(["commit", "-qm", "seed"], seed)
    git(["remote", "add", "origin", str(root / "origin.git")], seed)
    git(["push", "-q", "origin", "main"], seed)

    def clone(name):
        d = root / name
        git(["clone", "-q", str(root / "origin.git"), str(d)], root)
        ok(dvc(["remote", "modify", "--local", "storage", "url", str(SHARED / "dvc-storage")], d))
        ok(dvc(["remote", "add", "--local", "exps", str(root / "exps")], d))
        return d
    return clone


def test_two_queue_workers(team, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTION_CLASSIFIER_CACHE", str(tmp_path / "cache"))  # the workers' shared feature cache
    d = team("dave")
    ok(dvc(["pull", "-q", "data/raw/goemotions.dvc"], d))
    for seed in (3, 4):  # feature-extract: both workers share the feature cache and write to it at once
        ok(dvc(["exp", "run", "--queue", "-n", f"q{seed}", "-S", f"seed={seed}",
                "-S", "model.name=transformer_featureextract", "train"], d))  # up to train: what could collide
    # Started in a session of its own and killed at the end: `dvc queue start` can wait on a worker that missed
    # celery's shutdown (seen once: "shutting down due to empty queue" while its task ran), which held the test.
    starter = subprocess.Popen([sys.executable, "-m", "dvc", "queue", "start", "-j", "2"], cwd=d, env=dvc_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            status = ok(dvc(["queue", "status"], d))
            if "Running" not in status and "Queued" not in status:
                break
            time.sleep(3)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(starter.pid, signal.SIGKILL)
        starter.wait()
    assert "Failed" not in status and status.count("Success") == 2, status
    shown = ok(dvc(["exp", "show", "--json"], d))
    assert "q3" in shown and "q4" in shown
    assert len(list((tmp_path / "cache/features").iterdir())) == 2  # train and dev features, once each
