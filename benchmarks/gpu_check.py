"""GPU check: everything CUDA-specific this project does, in one script of a few minutes on one GPU.

    python benchmarks/gpu_check.py 2>&1 | tee gpu_check.log      # on a machine with a CUDA build of torch

1. the machine: GPU, driver, torch and CUDA versions;
2. the CUDA-marked tests (`pytest -m cuda`: training and exact resume on CUDA, CUDA vs CPU scores);
3. a tiny pipeline on the GPU (300 examples a split, 1 epoch): the train, tune_thresholds and evaluate
   stages, then emotion-predict --device; with `--dvc`, the same as `dvc exp run --temp` too;
4. one full-data fine-tune epoch, timed (precision auto: bf16 on GPUs that have it);
5. the inference benchmark (benchmarks/inference.py) on the GPU;
6. with several GPUs (or `--ddp N`), one epoch as 1 and as N data-parallel processes: examples/s each.
Prints each figure as it goes and a summary at the end. `--device cpu` runs the same path on a CPU
(the test suite does, on a tiny model, so the script cannot silently break).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from emotion_classifier import hardware
from emotion_classifier.data import SPLITS, multi_hot, read_raw
from emotion_classifier.params import Params, dump, load_params, resolve, with_overrides
from emotion_classifier.predict import main as predict_main
from emotion_classifier.stages import evaluate, prepare, train, tune_thresholds
from emotion_classifier.training.loop import fit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpuload  # noqa: E402
import inference as inference_benchmark  # noqa: E402  (benchmarks/inference.py)

ROOT = Path(__file__).resolve().parents[1]


def machine(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": str(device),
            "cpu_kind": hardware.cpu_kind(), "cpu": hardware.cpu_name(), "cores": hardware.n_cores()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                 "cudnn": torch.backends.cudnn.version(), "bf16": torch.cuda.is_bf16_supported()}
        smi = shutil.which("nvidia-smi")
        if smi:
            out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                                 text=True, check=False)
            info["driver"] = out.stdout.strip()
    return info


def cuda_tests() -> str:
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"], cwd=ROOT,
                       capture_output=True, text=True, check=False)
    print(r.stdout[-3000:] + r.stderr[-2000:])
    return r.stdout.strip().splitlines()[-1] if r.stdout.strip() else f"pytest exited {r.returncode}"


def check_params(args, more: dict | None = None, **train) -> Params:
    return with_overrides(load_params(ROOT / "params.yaml"), {
        "model.name": args.model, "model.encoder": args.encoder, "train.device": args.device,
        **{f"train.{k}": v for k, v in train.items()},
        "ensemble.members": [],  # one model checks the device path
        "evaluate.device": args.device, **(more or {})})


def scratch_params(args, work: Path, max_examples: int, **train) -> Params:
    return check_params(args, {"data.raw_dir": str(Path(args.data).resolve()),
                               "data.prepared_dir": str(work / "prepared"), "data.max_examples": max_examples},
                        **train)


def tiny_pipeline(args, work: Path) -> dict:
    """The stage functions dvc runs, on the device, in a scratch directory."""
    params = scratch_params(args, work, args.tiny_examples, epochs=1)
    for stage in (prepare, train, tune_thresholds, evaluate):
        stage.run(params, work)
    predict_main(["--model-dir", str(work / "models"), "--device", args.device, "--text", "Thank you so much!",
                  "--output", str(work / "predict.jsonl")])
    out = {k: json.loads((work / f"metrics/{f}.json").read_text())[k] for f, k in
           (("train", "device"), ("train", "precision"), ("eval", "test_macro_f1"),
            ("inference", "inference_device"), ("inference", "inference_sentences_per_s"))}
    out["predicted"] = json.loads((work / "predict.jsonl").read_text())["labels"]
    return out


def dvc_exp(args) -> str:
    cmd = ["dvc", "exp", "run", "--temp", "-n", f"gpu-check-{int(time.time())}",
           "-S", f"data.max_examples={args.tiny_examples}", "-S", "train.epochs=1", "-S", f"model.name={args.model}",
           "-S", f"train.device={args.device}", "-S", f"evaluate.device={args.device}"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    print(" ".join(cmd) + "\n" + r.stdout[-2000:] + r.stderr[-2000:])
    return f"exit {r.returncode}"


def full_epoch(args) -> dict:
    splits, names = read_raw(Path(args.data))
    for s in SPLITS:
        splits[s] = splits[s].assign(labels=list(multi_hot(splits[s]["label_ids"], len(names))))
    if args.epoch_examples:
        splits = {s: df.head(args.epoch_examples) for s, df in splits.items()}
    params = check_params(args, epochs=1, precision="auto")
    with tempfile.TemporaryDirectory() as tmp:
        r = fit(resolve(params), splits, names, model_dir=Path(tmp) / "m", metrics_path=None, live_dir=None,
                checkpoint_root=Path(tmp) / "ck", feature_cache=None)
    return {k: r[k] for k in ("device", "precision", "epoch_time_s", "train_examples_per_s", "dev_tuned_macro_f1")}


def ddp_scaling(args, work: Path, processes: int) -> dict:
    """One epoch through the train stage with train.processes 1 and N (it relaunches under torchrun)."""
    params = scratch_params(args, work, args.epoch_examples, epochs=1, precision="auto")
    prepare.run(params, work)
    with contextlib.chdir(work):  # the train console script, as DVC runs it
        out = {}
        for n in (1, processes):
            Path("params.yaml").write_text(dump(with_overrides(params, {"train.processes": n})))
            r = subprocess.run([sys.executable, "-m", "emotion_classifier.cli", "train", "--params", "params.yaml"],
                               capture_output=True, text=True, check=False)
            if r.returncode != 0:
                raise SystemExit(f"train with {n} processes failed:\n{r.stderr[-3000:]}")
            m = json.loads(Path("metrics/train.json").read_text())
            out[f"{n} process(es)"] = {"world_size": m["world_size"], "train_examples_per_s": m["train_examples_per_s"]}
        return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda | cuda:N (cpu: the same path on a CPU)")
    ap.add_argument("--data", default=str(inference_benchmark.DATA), help="GoEmotions files (train/dev/test.tsv)")
    ap.add_argument("--encoder", default=load_params(ROOT / "params.yaml").model.encoder)
    ap.add_argument("--model", default="transformer_finetune")
    ap.add_argument("--tiny-examples", type=int, default=300)
    ap.add_argument("--epoch-examples", type=int, default=0, help="0 = the full train split")
    ap.add_argument("--sentences", type=int, default=2000, help="for the inference benchmark")
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--dvc", action="store_true", help="also `dvc exp run --temp` the tiny pipeline")
    ap.add_argument("--ddp", type=int, default=None,
                    help="data-parallel processes to compare with one (default: the GPUs, when more than one)")
    args = ap.parse_args(argv)
    device = hardware.resolve_device(args.device)
    summary: dict = {"machine": machine(device)}
    print("machine:", json.dumps(summary["machine"]), flush=True)
    if not args.skip_tests:
        summary["cuda_tests"] = cuda_tests()
    with tempfile.TemporaryDirectory() as work:
        t0 = time.time()
        summary["tiny_pipeline"] = tiny_pipeline(args, Path(work)) | {"seconds": round(time.time() - t0, 1)}
    print("tiny pipeline:", json.dumps(summary["tiny_pipeline"]), flush=True)
    if args.dvc:
        summary["dvc_exp_run"] = dvc_exp(args)
    with cpuload.watch() as load:  # on a GPU the host CPU still feeds it: a busy host slows the epoch
        summary["full_epoch"] = full_epoch(args)
    summary["full_epoch"]["cpu_contended"] = load["contended"]
    print("one fine-tune epoch:", json.dumps(summary["full_epoch"]), flush=True)
    bench = inference_benchmark.main(["--device", args.device, "--encoder", args.encoder, "--data", args.data,
                                      "--sentences", str(args.sentences)])
    summary["inference_sentences_per_s"] = {k: round(v, 1) for k, v in bench["speed"].items()}
    processes = args.ddp if args.ddp is not None else (torch.cuda.device_count() if device.type == "cuda" else 0)
    if processes > 1:
        with tempfile.TemporaryDirectory() as work:
            summary["ddp_epoch"] = ddp_scaling(args, Path(work), processes)
        print("data-parallel epoch:", json.dumps(summary["ddp_epoch"]), flush=True)
    print("\n== gpu check summary ==\n" + json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
