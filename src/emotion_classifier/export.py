"""`emotion-export`: a fine-tuned model as a standard Hugging Face model directory.

    emotion-export --model-dir models --out export/
    python -c "from transformers import pipeline as p; print(p('text-classification', 'export', top_k=None)('Hi'))"

The directory holds an AutoModelForSequenceClassification (problem_type multi_label_classification,
id2label), the tokenizer with the two mask tokens, and the tuned thresholds in config.json
(`thresholds`, `thresholds_strategy`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UserError
from .io import atomic_dir


def export(model_dir: str | Path, out_dir: str | Path, strategy: str = "per_label") -> Path:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from . import architectures, models
    from .inference import ThresholdsError, read_thresholds

    model, cfg, tok = models.load(model_dir)
    blocker = architectures.get(cfg["name"]).export_blocker(cfg["arch"])
    if blocker:
        raise UserError(f"{model_dir} ({cfg['name']}): cannot export: {blocker}")
    ours = ("num_labels", "problem_type", "id2label", "label2id", "architectures")
    ec = {k: v for k, v in cfg["encoder_config"].items() if not k.startswith("_") and k not in ours}
    labels = cfg["labels"]
    try:
        thresholds = [float(t) for t in read_thresholds(model_dir, strategy)]
    except ThresholdsError as e:
        print(f"warning: {e}; exporting threshold 0.5 for every label", file=sys.stderr)
        thresholds = [0.5] * len(labels)
    conf = AutoConfig.for_model(
        ec.pop("model_type"), **ec, num_labels=len(labels), problem_type="multi_label_classification",
        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
        architectures=None)
    conf.thresholds = thresholds
    conf.thresholds_strategy = strategy
    hf = AutoModelForSequenceClassification.from_config(conf)
    base = hf.base_model_prefix  # "bert", "distilbert", ...
    state = {f"{base}.{k}": v for k, v in model.encoder.state_dict().items()}
    state |= {f"classifier.{k}": v for k, v in model.classifier.state_dict().items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"export: weights do not map onto {type(hf).__name__}: missing {missing}, "
                           f"unexpected {unexpected}")
    with atomic_dir(out_dir) as tmp:
        hf.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
    return Path(out_dir)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="emotion-export", description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", default="models")
    ap.add_argument("--out", required=True, help="the Hugging Face model directory to write")
    ap.add_argument("--thresholds", default="per_label", choices=["per_label", "global", "fixed"])
    args = ap.parse_args(argv)
    try:
        out = export(args.model_dir, args.out, args.thresholds)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"exported -> {out} (transformers.pipeline('text-classification', model='{out}', top_k=None))")
