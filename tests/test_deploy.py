"""deploy/: the cluster templates parse; the compare ones wrap the share pattern (make compare SHARE=k/n PUSH=origin),
the serve one probes the server's /health."""

import subprocess

import yaml

from .conftest import ROOT


def test_the_slurm_array_script_is_valid_bash_running_one_share():
    script = ROOT / "deploy/slurm-compare.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False).returncode == 0
    text = script.read_text()
    assert "#SBATCH" in text and 'SHARE="$k/$n" PUSH=origin' in text
    # issue 49 (15): each task its own clone, venv, cache and report, never one shared clone
    assert 'git clone -q "$ORIGIN" "$WORK"' in text and 'EMOTION_CLASSIFIER_CACHE="$WORK/.cache"' in text
    assert "CLONE" not in text


def test_the_kubernetes_job_is_an_indexed_job_running_one_share_per_completion():
    (job,) = list(yaml.safe_load_all((ROOT / "deploy/k8s-compare.yaml").read_text()))
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    container = job["spec"]["template"]["spec"]["containers"][0]
    n = next(e["value"] for e in container["env"] if e["name"] == "N")
    assert int(n) == job["spec"]["completions"]
    assert 'SHARE="$((JOB_COMPLETION_INDEX + 1))/$N" PUSH=origin' in container["args"][0]


def test_the_kubernetes_template_probes_health_on_the_served_port():
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy/k8s-serve.yaml").read_text()) if d]
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Deployment", "Service"}
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    port = container["ports"][0]["containerPort"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": port}
    command = " ".join(container["command"] + container.get("args", []))
    assert "emotion-serve" in command and f"--port {port}" in command and "--host 0.0.0.0" in command
    assert kinds["Service"]["spec"]["ports"][0]["targetPort"] == port
    assert kinds["Service"]["spec"]["selector"] == kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert (ROOT / "deploy/k8s-serve.yaml").read_text().count("dvc artifacts get") >= 1
