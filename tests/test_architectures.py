"""The registry: an architecture is one registered entry; the pipeline asks it, never its name."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from emotion_classifier import architectures
from emotion_classifier.architectures import Architecture
from emotion_classifier.fields import integer, param
from emotion_classifier.params import ParamsError, resolve, with_overrides

from .conftest import run_stage, tiny_params


class BagOfWords(nn.Module):
    """The mean of the text's token embeddings, then a linear layer: a toy defined in this test alone."""

    def __init__(self, vocab_size: int, pad_id: int, n_labels: int, dim: int):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=pad_id)
        self.out = nn.Linear(dim, n_labels)

    def forward(self, input_ids, attention_mask):
        return self.out(self.embedding(input_ids, per_sample_weights=None))


@dataclass(frozen=True)
class ToyConfig:
    dim: int = param(integer(1), 8)


TOY = Architecture(
    name="toy_bag",
    config=ToyConfig,
    build=lambda arch, sizes, encoder: BagOfWords(sizes["vocab_size"], sizes["pad_id"], sizes["n_labels"], arch.dim),
    needs_encoder=lambda arch: False,
    output_layer=lambda model: model.out,  # main's weighted BCE shifts this Linear's bias
)


def test_a_toy_architecture_runs_train_tune_evaluate_and_predict(tmp_path, tiny_encoder, tiny_prepared, monkeypatch):
    monkeypatch.setitem(architectures.REGISTRY, TOY.name, TOY)
    p = tiny_params(tiny_encoder, "bilstm_maxpool", epochs=2)
    toy = {"model.name": TOY.name, "data.prepared_dir": str(tiny_prepared), "model.toy_bag.dim": 8}
    with pytest.raises(ParamsError, match="'train.loss' is null .* 'model.toy_bag.train' sets no loss"):
        with_overrides(p, toy)  # no recipe: what params.yaml leaves to it must be set
    p = with_overrides(p, {**toy, "model.toy_bag.train": {"loss": "weighted_bce"}})  # its recipe
    run_stage("train", p, tmp_path)
    run_stage("tune_thresholds", p, tmp_path)
    run_stage("evaluate", p, tmp_path)
    ev = json.loads((tmp_path / "metrics/eval.json").read_text())
    assert 0 <= ev["test_macro_f1_lo"] <= ev["test_macro_f1"] <= ev["test_macro_f1_hi"] <= 1
    from emotion_classifier.inference import EmotionClassifier
    from emotion_classifier.predict import main as predict_main

    clf = EmotionClassifier.load(tmp_path / "models")
    assert isinstance(clf.model, BagOfWords) and clf.predict_proba(["so happy", "awful"]).shape == (2, 3)
    predict_main(["--model-dir", str(tmp_path / "models"), "--text", "so happy",
                  "--output", str(tmp_path / "out.jsonl")])
    assert "labels" in json.loads((tmp_path / "out.jsonl").read_text())
    with pytest.raises(ValueError, match=r"toy_bag\): cannot export: only fine-tuned transformers export"):
        from emotion_classifier.export import export

        export(tmp_path / "models", tmp_path / "hf")


def test_params_of_an_architecture_come_from_its_entry(tiny_encoder, monkeypatch):
    monkeypatch.setitem(architectures.REGISTRY, TOY.name, TOY)
    p = tiny_params(tiny_encoder, "bilstm_maxpool")
    assert p.model.archs[TOY.name] == ToyConfig(dim=8)  # a registered one has its section, its defaults
    with pytest.raises(ValueError, match="'model.toy_bag.dim' is 0; expected an integer >= 1"):
        with_overrides(p, {"model.toy_bag.dim": 0})
    from emotion_classifier.params import from_tree, to_tree

    tree = to_tree(p)
    tree["model"][TOY.name]["depth"] = 2
    with pytest.raises(ValueError, match="unknown key 'model.toy_bag.depth'"):
        from_tree(tree)


def test_textcnn_max_pools_over_real_tokens_only():
    """Every window that holds a real token counts, none that holds only padding: a short text gives the same
    logits alone and in a long batch, and a one-token text (shorter than every window) still has features."""
    torch.manual_seed(0)
    entry = architectures.get("textcnn")
    arch = entry.config(embedding_dim=6, init_embeddings="random", filters=4, kernel_sizes="3,4,5", dropout=0.0)
    model = entry.build(arch, {"vocab_size": 20, "pad_id": 0, "n_labels": 2}, None).eval()
    with torch.no_grad():
        model.embedding.weight[0] = 5.0  # a padding embedding that would show if it were read
        alone = model(torch.tensor([[7]]), torch.tensor([[1]]))
        ids = torch.tensor([[7, 0, 0, 0, 0, 0, 0], [3, 4, 5, 6, 7, 8, 9]])
        batched = model(ids, (ids != 0).long())
    torch.testing.assert_close(alone[0], batched[0])
    assert np.isfinite(alone.numpy()).all()


def test_no_architecture_name_outside_the_registry():
    """Code outside architectures/ asks the entry, never the name (tests and params.yaml may name them): every
    module of the package, subpackages included."""
    from pathlib import Path

    pkg = Path(architectures.__file__).parents[1]
    names = list(architectures.REGISTRY)
    files = [f for f in sorted(pkg.rglob("*.py")) if "architectures" not in f.relative_to(pkg).parts]
    assert len(files) > 40 and any(f.parent.name == "stages" for f in files)  # the whole package is read
    for f in files:
        code = f.read_text(encoding="utf-8")
        assert not [n for n in names if f'"{n}"' in code or f"'{n}'" in code], f


def test_readme_is_a_guide_with_the_add_an_architecture_section():
    import re

    from .conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Add an architecture" in (ROOT / "docs/extending.md").read_text(encoding="utf-8")
    assert "(docs/extending.md)" in readme and len(readme) <= 12_000  # the first hour; depth in docs/
    contents = readme.split("**Contents:**", 1)[1].split("\n\n", 1)[0]
    for heading in re.findall(r"^## (.+)$", readme, flags=re.M):  # every section reachable from the top
        anchor = re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        assert f"(#{anchor})" in contents, heading


def test_mask_words_start_the_mask_tokens_as_those_words(tiny_encoder):
    """A frozen encoder never learns its masks: mapped, [NAME] embeds as the word; unmapped, as the mean."""
    from emotion_classifier.encoder import load_tokenizer
    from emotion_classifier.errors import UserError
    from emotion_classifier.model_dir.model import build

    p = tiny_params(tiny_encoder, "transformer_featureextract")
    tok = load_tokenizer(str(tiny_encoder))
    name_id, religion_id, word_id = tok.convert_tokens_to_ids(["[NAME]", "[RELIGION]", "love"])

    def embeddings(mask_words):
        torch.manual_seed(0)  # resizing draws the new rows near the mean embedding
        spec = resolve(with_overrides(p, {"model.mask_words": mask_words})).model
        model, _ = build(spec, tok, ["a"])
        return model.encoder.get_input_embeddings().weight.detach()

    emb = embeddings({"NAME": "love", "RELIGION": ""})
    assert torch.equal(emb[name_id], emb[word_id])
    default = embeddings({"NAME": "", "RELIGION": ""})
    assert torch.equal(emb[religion_id], default[religion_id]) and not torch.equal(default[name_id], emb[name_id])
    with pytest.raises(UserError, match=r"model.mask_words.NAME is 'zebra': not one token"):
        embeddings({"NAME": "zebra", "RELIGION": ""})


def test_cached_features_belong_to_the_mask_words(tiny_encoder, tiny_prepared, tmp_path):
    """Mapped masks change the frozen encoder's features: they must not come from another mapping's cache."""
    from emotion_classifier import data
    from emotion_classifier.training.loop import fit

    splits, names = data.load_prepared(tiny_prepared)
    p = tiny_params(tiny_encoder, "transformer_featureextract", epochs=1)
    cache = tmp_path / "features"
    for n, word in enumerate(("", "love"), start=1):
        job = resolve(with_overrides(p, {"model.mask_words.NAME": word}))
        fit(job, splits, names, model_dir=tmp_path / f"m{n}", metrics_path=None, live_dir=None,
            checkpoint_root=tmp_path / "ckpt", feature_cache=cache)
        assert len(list(cache.glob("*.safetensors"))) == 2 * n  # train and dev, for each mapping


def test_the_readme_map_names_every_module():
    """docs/layout.md covers every module of src/emotion_classifier/ (by file or package name)."""
    import re
    from pathlib import Path

    from .conftest import ROOT

    section = (ROOT / "docs/layout.md").read_text(encoding="utf-8")
    parts = [part.removesuffix(".py") for token in re.findall(r"`([^`]+)`", section) for part in token.split("/")]
    named = {part for part in parts if re.fullmatch(r"[A-Za-z_]+", part)}  # `name`, `name.py`, `.../name.py`
    pkg = Path(architectures.__file__).parents[1]
    missing = [f.relative_to(pkg).as_posix() for f in sorted(pkg.rglob("*.py"))
               if f.stem not in named and not (f.stem == "__init__" and f.parent.name in named)]
    assert missing == []
