"""`emotion-export`: a trained model as a directory standard tools load.

    emotion-export --model-dir models --out export/                 # Hugging Face (fine-tune, pooler)
    python -c "from transformers import pipeline as p; print(p('text-classification', 'export', top_k=None)('Hi'))"
    emotion-export --model-dir models --out export-onnx/ --format onnx   # ONNX: every architecture

`--format hf`: an AutoModelForSequenceClassification (problem_type multi_label_classification, id2label),
the tokenizer with the two mask tokens, and the tuned thresholds in config.json (`thresholds`,
`thresholds_strategy`). `--format onnx`: `model.onnx` (inputs input_ids and attention_mask, output
logits, dynamic batch and sequence axes, pooling inside the graph; `model.int8.onnx` too with
--quantize, with its own thresholds `thresholds_int8` tuned on its dev scores), the tokenizer, and config.json with
id2label, label2id, problem_type and the thresholds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UserError, one_line_errors
from .files import atomic_dir


def _tuned(model_dir, labels: list[str]) -> dict | None:
    """thresholds.json, read once (it hashes every member's weights); None, with a warning, when not tuned."""
    from .model_dir import ThresholdsError, read_tuned

    try:
        return read_tuned(model_dir, labels)
    except ThresholdsError as e:
        print(f"warning: {e}; exporting threshold 0.5 for every label", file=sys.stderr)
        return None


def _thresholds(tuned: dict | None, model_dir, strategy: str, n_labels: int) -> tuple[list[float], str]:
    """(the tuned thresholds, `strategy`), or (0.5 each, "fixed"): an export never claims a tuning it lacks."""
    from .model_dir import ThresholdsError, strategy_thresholds

    if tuned is None:
        return [0.5] * n_labels, "fixed"
    try:
        return [float(t) for t in strategy_thresholds(tuned, strategy, model_dir)], strategy
    except ThresholdsError as e:
        print(f"warning: {e}; exporting threshold 0.5 for every label", file=sys.stderr)
        return [0.5] * n_labels, "fixed"


def _int8_thresholds(tuned: dict | None, model_dir, strategy: str) -> list[float] | None:
    """The thresholds tuned on the int8 model's own dev scores, or None (with a warning) where there are none:
    the fp32 ones are never written as int8's."""
    from .model_dir import ONNX_INT8, strategy_thresholds

    section = (tuned or {}).get(ONNX_INT8)
    if strategy == "fixed" or not isinstance(section, dict) or strategy not in section.get("strategies", {}):
        print(f"warning: {Path(model_dir) / 'thresholds.json'}: no {strategy} thresholds tuned for the int8 model "
              "(tune_thresholds.onnx_int8: true); config.json has no thresholds_int8, and the fp32 thresholds cost "
              "~.02 dev macro F1 with model.int8.onnx", file=sys.stderr)
        return None
    return [float(t) for t in strategy_thresholds(tuned, strategy, model_dir, onnx_int8=True)]


def export_onnx(model_dir: str | Path, out_dir: str | Path, strategy: str = "per_label",
                quantize: bool = False) -> Path:
    """model.onnx (+ model.int8.onnx), tokenizer, config.json. An ensemble: each further model in
    members/<i>/ alike, and config.json's `ensemble` gives the weights of the probability average."""
    import json

    from . import onnx_backend
    from .model_dir import MEMBERS, member_dirs
    from .model_dir.model import load, read_config

    model, cfg, tok = load(model_dir)
    labels = cfg["labels"]
    tuned = _tuned(model_dir, labels)
    thresholds, used = _thresholds(tuned, model_dir, strategy, len(labels))
    config = {"id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)},
              "num_labels": len(labels), "problem_type": "multi_label_classification",
              "thresholds": thresholds, "thresholds_strategy": used,
              "max_length": cfg["max_length"], "emotion_classifier": {"name": cfg["name"], "arch": cfg["arch"]},
              "onnx": {"inputs": list(onnx_backend.INPUTS), "output": "logits", "opset": onnx_backend.OPSET}}
    int8 = _int8_thresholds(tuned, model_dir, used) if quantize else None
    if int8 is not None:  # int8 shifts scores: model.int8.onnx has thresholds of its own (~.02 dev macro F1 better)
        config["thresholds_int8"] = int8
        # where they were tuned (onnxruntime, policy, CPU kind): a runtime elsewhere can tell they may not fit
        config["thresholds_int8_tuned_with"] = tuned["onnx_int8"].get("tuned_with")
    members = member_dirs(model_dir)
    if members:
        weights = (tuned or {}).get("member_weights")
        if weights is None:
            raise UserError(f"{model_dir}: an ensemble without weights tuned for these models; run "
                            "`dvc repro tune_thresholds` first") from None
        member_cfgs = [read_config(d) for d in members]
        config["ensemble"] = {
            "weights": [float(w) for w in weights],  # of model.onnx, then each member's
            "members": [{"dir": f"{MEMBERS}/{d.name}", "max_length": c["max_length"], "name": c["name"]}
                        for d, c in zip(members, member_cfgs)],
            "combine": "probabilities = sum of weight x sigmoid(logits) over the models; then the thresholds"}
    with atomic_dir(out_dir) as tmp:
        for source, dest in [(model_dir, tmp), *((d, tmp / MEMBERS / d.name) for d in members)]:
            if source != model_dir:
                model, _, tok = load(source)
            dest.mkdir(parents=True, exist_ok=True)
            onnx_backend.inference_graph(model, tok, dest / "model.onnx")  # fused where it is a transformer
            if quantize:
                onnx_backend.inference_graph(model, tok, dest / "model.int8.onnx", int8=True)
            tok.save_pretrained(str(dest))
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return Path(out_dir)


def export(model_dir: str | Path, out_dir: str | Path, strategy: str = "per_label") -> Path:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from . import architectures
    from .model_dir import member_dirs
    from .model_dir.model import arch_config, load

    if member_dirs(model_dir):
        raise UserError(f"{model_dir}: an ensemble of {1 + len(member_dirs(model_dir))} models; a Hugging "
                        "Face directory holds one: use --format onnx (it exports every member)")
    model, cfg, tok = load(model_dir)
    blocker = architectures.get(cfg["name"]).export_blocker(arch_config(cfg))
    if blocker:
        raise UserError(f"{model_dir} ({cfg['name']}): cannot export: {blocker} (--format onnx exports any model)")
    ours = ("num_labels", "problem_type", "id2label", "label2id", "architectures")
    ec = {k: v for k, v in cfg["encoder_config"].items() if not k.startswith("_") and k not in ours}
    labels = cfg["labels"]
    thresholds, used = _thresholds(_tuned(model_dir, labels), model_dir, strategy, len(labels))
    conf = AutoConfig.for_model(
        ec.pop("model_type"), **ec, num_labels=len(labels), problem_type="multi_label_classification",
        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
        architectures=None)
    conf.thresholds = thresholds
    conf.thresholds_strategy = used
    hf = AutoModelForSequenceClassification.from_config(conf)
    base = hf.base_model_prefix  # "bert", "distilbert", ...
    state = {f"{base}.{k}": v for k, v in model.encoder.state_dict().items()}
    state |= {f"classifier.{k}": v for k, v in model.classifier.state_dict().items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:  # e.g. MPNet's own head is dense + tanh + linear on <s>, not BERT's pooler + linear
        raise UserError(f"{model_dir}: a {conf.model_type} encoder's {type(hf).__name__} has another head than "
                        f"this model's (missing {missing[:3]}, unexpected {unexpected[:3]}): use --format onnx")
    with atomic_dir(out_dir) as tmp:
        hf.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
    return Path(out_dir)


@one_line_errors
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="emotion-export", description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", default="models")
    ap.add_argument("--out", required=True, help="the directory to write")
    ap.add_argument("--format", default="hf", choices=["hf", "onnx"],
                    help="hf: a Hugging Face model directory (fine-tune with pooling pooler); onnx: any model")
    ap.add_argument("--quantize", action="store_true", help="onnx: also write model.int8.onnx (int8 weights)")
    ap.add_argument("--thresholds", default="per_label", choices=["per_label", "global", "fixed"])
    args = ap.parse_args(argv)
    if args.format == "onnx":
        out = export_onnx(args.model_dir, args.out, args.thresholds, args.quantize)
    else:
        out = export(args.model_dir, args.out, args.thresholds)
    hint = (f"onnxruntime.InferenceSession('{out}/model.onnx')" if args.format == "onnx" else
            f"transformers.pipeline('text-classification', model='{out}', top_k=None)")
    print(f"exported -> {out} ({hint})")
