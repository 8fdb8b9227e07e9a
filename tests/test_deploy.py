"""deploy/: the cluster templates parse, and each wraps the share pattern (make compare SHARE=k/n PUSH=origin)."""

import subprocess

import yaml

from .conftest import ROOT


def test_the_slurm_array_script_is_valid_bash_running_one_share():
    script = ROOT / "deploy/slurm-compare.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False).returncode == 0
    text = script.read_text()
    assert "#SBATCH" in text and 'SHARE="$k/$n" PUSH=origin' in text


def test_the_kubernetes_job_is_an_indexed_job_running_one_share_per_completion():
    (job,) = list(yaml.safe_load_all((ROOT / "deploy/k8s-compare.yaml").read_text()))
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    container = job["spec"]["template"]["spec"]["containers"][0]
    n = next(e["value"] for e in container["env"] if e["name"] == "N")
    assert int(n) == job["spec"]["completions"]
    assert 'SHARE="$((JOB_COMPLETION_INDEX + 1))/$N" PUSH=origin' in container["args"][0]
