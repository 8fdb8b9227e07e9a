"""Past one machine, exercised on localhost: two torchrun nodes meeting through a real c10d rendezvous, and two
clones sharing one comparison through a bare git origin and a local DVC remote, as two machines would; a third
pulls their experiments, one experiment's outputs, and reports them."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from emotion_classifier.data import load_prepared
from emotion_classifier.experiments.compare_all import plan, report_paths
from emotion_classifier.params import dump, resolve, with_overrides
from emotion_classifier.training.loop import fit

from .conftest import SHARED, copy_repo, tiny_params, tiny_tree
from .test_pipeline_e2e import dvc, dvc_env

pytestmark = pytest.mark.slow  # DVC, torchrun or benchmark runs: `make test-fast` skips them


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(node_rank: int, port: int, cwd, params_file, **env) -> subprocess.Popen:
    """One machine's torchrun agent: one training process, meeting the other node at the rendezvous."""
    cwd.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
           "--node-rank", str(node_rank), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
           "--rdzv-id", "two-nodes", "--rdzv-conf", "join_timeout=60", "--max-restarts", "0",
           "-m", "emotion_classifier.cli", "train", "--params", str(params_file)]
    env = dict(dvc_env(), EMOTION_CLASSIFIER_THREADS="1", EMOTION_DDP_TIMEOUT_S="60", **env)
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish(node: subprocess.Popen, timeout: float) -> str:
    try:
        out, _ = node.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, signal.SIGKILL)
        out, _ = node.communicate()
        pytest.fail(f"a node did not finish in {timeout:.0f} s:\n{out[-3000:]}")
    return out


@pytest.fixture
def two_node_params(tmp_path, tiny_encoder, tiny_prepared):
    def make(**train):
        p = with_overrides(tiny_params(tiny_encoder, "transformer_finetune", batch_size=8, **train), {
            "data.prepared_dir": str(tiny_prepared), "model.transformer_finetune.dropout": 0.0,
            "model.transformer_finetune.encoder_dropout": 0.0})  # each rank draws its own dropout masks
        path = tmp_path / f"params-{len(list(tmp_path.glob('params-*')))}.yaml"
        path.write_text(dump(p))
        return p, path
    return make


def test_two_nodes_through_a_c10d_rendezvous_train_the_one_process_model(tmp_path, two_node_params):
    from safetensors.numpy import load_file

    p, path = two_node_params(epochs=2)
    port = free_port()
    nodes = [start_node(rank, port, tmp_path / f"node{rank}", path) for rank in (0, 1)]
    logs = [finish(node, 300) for node in nodes]
    assert [n.returncode for n in nodes] == [0, 0], "\n".join(log[-3000:] for log in logs)
    wrote = [d for d in (tmp_path / "node0", tmp_path / "node1") if (d / "models/model.safetensors").exists()]
    assert len(wrote) == 1, "exactly one node (global rank 0) writes the outputs"
    other = ({tmp_path / "node0", tmp_path / "node1"} - set(wrote)).pop()
    assert not any(f.is_file() for f in other.rglob("*")), sorted(other.rglob("*"))  # no model, metrics, DVCLive
    assert (wrote[0] / "dvclive/metrics.json").exists() and (wrote[0] / "metrics/train.json").exists()
    assert json.loads((wrote[0] / "metrics/train.json").read_text())["world_size"] == 2

    splits, names = load_prepared(p.data.prepared_dir)
    fit(resolve(p), splits, names, model_dir=tmp_path / "one", metrics_path=None, live_dir=None,
        checkpoint_root=tmp_path / "ckpt", feature_cache=None)
    one, two = load_file(str(tmp_path / "one/model.safetensors")), load_file(str(wrote[0] / "models/model.safetensors"))
    diff = max(float(np.abs(one[k] - two[k]).max()) for k in one)
    assert diff < 2e-5, f"max |weight difference| 1 process vs 2 nodes: {diff:.2e}"  # tests/test_distributed.py


def test_rank_0_decides_reuse_for_every_node(tmp_path, two_node_params):
    """Issue 49 (16): each machine has its own disk and cache. Rank 0 decides whether the model is kept, copied or
    trained and tells the others, so a node whose cache differs neither trains alone nor waits out the timeout."""
    p, path = two_node_params(epochs=1)
    caches = [tmp_path / "cache-a", tmp_path / "cache-b"]
    port = free_port()
    first = [start_node(r, port, tmp_path / f"first{r}", path, EMOTION_CLASSIFIER_CACHE=str(caches[0])) for r in (0, 1)]
    logs = [finish(node, 300) for node in first]
    assert [n.returncode for n in first] == [0, 0], "\n".join(log[-3000:] for log in logs)
    assert any((caches[0] / "models").iterdir()) and not caches[1].exists()  # one machine's cache has the model
    port = free_port()
    again = [start_node(r, port, tmp_path / f"again{r}", path, EMOTION_CLASSIFIER_CACHE=str(caches[r])) for r in (0, 1)]
    logs = [finish(node, 200) for node in again]  # EMOTION_DDP_TIMEOUT_S=60: a node left waiting fails
    assert [n.returncode for n in again] == [0, 0], "\n".join(log[-3000:] for log in logs)
    writer = "\n".join(logs)
    assert ("copied from" in writer) != ("epoch 1:" in writer), writer  # every rank took rank 0's decision


def descendants(pid: int) -> list[int]:
    """pid and every process below it (torchrun's workers run in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo += children.get(out[-1], [])
    return out


def test_a_node_killed_mid_run_stops_the_other_with_one_line(tmp_path, two_node_params):
    p, path = two_node_params(epochs=300, patience=1000)  # long enough to be killed while training
    port = free_port()
    survivor = start_node(0, port, tmp_path / "node0", path)  # first: it hosts the rendezvous store
    time.sleep(3)
    victim = start_node(1, port, tmp_path / "node1", path)
    deadline, curves = time.time() + 120, []
    while time.time() < deadline:  # the writer's DVCLive curve: a line per finished epoch
        curves = list(tmp_path.glob("node*/dvclive/plots/metrics/dev_loss.tsv"))
        if curves and len(curves[0].read_text().splitlines()) > 2:
            break
        time.sleep(0.2)
    assert curves and len(curves[0].read_text().splitlines()) > 2, "the two nodes never finished 2 epochs"
    t0 = time.time()
    for pid in descendants(victim.pid):  # the whole machine: its agent and its training process
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    victim.communicate()
    log = finish(survivor, 150)
    assert survivor.returncode != 0 and time.time() - t0 < 150
    lines = [line for line in log.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "a peer of this data-parallel run is gone" in lines[0], log[-3000:]
    assert not list(tmp_path.glob("node*/models/model.safetensors"))  # nothing half-written
    assert list(tmp_path.glob("node*/.checkpoints/*/last.pt"))  # the same command resumes from here


# ---------------------------------------------------------------- two machines share a comparison


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True, text=True)


def machine(origin, remote, d):
    """A clone of the origin that pulls the data from the shared storage and pushes to the team's DVC remote."""
    subprocess.run(["git", "clone", "-q", str(origin), str(d)], check=True)
    assert dvc(["remote", "modify", "--local", "storage", "url", str(SHARED / "dvc-storage")], d).returncode == 0
    assert dvc(["remote", "add", "--local", "-d", "team", str(remote)], d).returncode == 0
    assert dvc(["pull", "-r", "storage", "data/raw/goemotions.dvc"], d).returncode == 0
    return d


def compare_all(d, cache, *args, wait=True):
    """emotion-compare-all in clone `d`, with that machine's own model cache and one thread (two machines share this
    one's 2 cores); `wait=False` returns the running process."""
    env = dict(dvc_env(), EMOTION_CLASSIFIER_CACHE=str(cache), EMOTION_CLASSIFIER_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "emotion_classifier.experiments.compare_all", *args], cwd=d,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=1200)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def test_two_machines_share_a_comparison_and_a_third_reports_it(tmp_path, tiny_encoder):
    if not (SHARED / "dvc-storage").exists():
        pytest.skip("../shared/dvc-storage is not beside the project")
    seed = copy_repo(tmp_path / "seed")
    p = yaml.safe_load((seed / "params.yaml").read_text())
    tiny = tiny_tree(tiny_encoder, "bilstm_maxpool")
    p.update(model={**tiny["model"], "name": p["model"]["name"]}, train=tiny["train"], evaluate=tiny["evaluate"])
    p["train"]["epochs"] = None
    p["ensemble"]["members"] = [{"model.name": "textcnn"}, {"model.name": "bilstm_maxpool"}]
    p["data"]["max_examples"] = 60
    p["compare"]["tfidf_max_features"] = 500
    (seed / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "tiny"],
                 ["remote", "add", "origin", str(origin)], ["push", "-q", "origin", "main"]):
        git(*args, cwd=seed)
    remote = tmp_path / "dvc-remote"
    archs = ["textcnn", "ensemble"]  # one each: b's ensemble trains both its members, bilstm_maxpool among them
    common = ["--seeds", "0", "--architectures", ",".join(archs), "--set", "train.epochs=1"]
    names = [n for n, _ in plan(archs, [0], "cmp", ["train.epochs=1"])]

    clones = {who: machine(origin, remote, tmp_path / who) for who in ("a", "b")}
    running = {who: compare_all(clones[who], tmp_path / f"cache-{who}", *common, "--share", f"{k}/2", "--push",
                                "origin", wait=False) for k, who in ((1, "a"), (2, "b"))}  # at once, a core each
    logs = {who: proc.communicate(timeout=1200)[0] for who, proc in running.items()}
    for who, proc in running.items():
        assert proc.returncode == 0, logs[who][-4000:]
    ran = {who: re.findall(r"^=== \[\d+/\d+\] (\S+):", log, flags=re.M) for who, log in logs.items()}
    assert ran == {"a": [names[0]], "b": [names[1]]}  # every 2nd from the 1st, the rest on b
    ensemble = logs["b"].split(f"=== [1/1] {names[1]}")[1]  # its members: in no cache of b's, so trained there
    assert "ensemble member 1/2: textcnn (seed 0): trained;" in ensemble, ensemble
    assert "ensemble member 2/2: bilstm_maxpool (seed 0): trained;" in ensemble, ensemble

    c = machine(origin, remote, tmp_path / "c")
    r = dvc(["exp", "pull", "origin", *names], c)
    assert r.returncode == 0, r.stdout + r.stderr
    r = compare_all(c, tmp_path / "cache-c", *common, "--report-only")
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "not (yet) here" not in r.stdout and "finished with other settings" not in r.stdout
    report = (c / report_paths(None, None, ["train.epochs=1"])[0]).read_text()  # a quick look's own report
    rows = [line.split(" | ")[0][2:] for line in report.split("## Every experiment")[1].splitlines()
            if line.startswith("| cmp-")]
    assert sorted(rows) == sorted(names)  # each experiment once, from both machines
    assert "CPU kind" in report and "Base commit" in report

    # c takes one experiment's outputs from the team's DVC remote, and reports two with the command a user runs
    assert dvc(["exp", "apply", names[0]], c).returncode == 0
    r = dvc(["pull", "models/model.safetensors", "models/config.json", "models/tokenizer"], c)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (c / "models/model.safetensors").stat().st_size > 0
    assert json.loads((c / "metrics/train.json").read_text())["model"] == "textcnn"
    report_cmd = os.path.join(os.path.dirname(sys.executable), "emotion-report")
    r = subprocess.run([report_cmd, *names, "--out", "shared.md", "--chart", "shared.png"], cwd=c, env=dvc_env(),
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert all(n in (c / "shared.md").read_text() for n in names)
