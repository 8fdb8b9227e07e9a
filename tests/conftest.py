import os
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


# Under pytest-xdist (`make test` runs two workers on a 2-core machine) each worker and the processes it starts train
# on one thread: two jobs of two threads each on two cores slow both (benchmarks/contention.py). A test of the thread
# settings sets or clears these variables itself.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("EMOTION_CLASSIFIER_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _own_cache(tmp_path_factory):
    """Feature and model caches of the tests' own (subprocesses inherit it): never the user's."""
    import os

    os.environ["EMOTION_CLASSIFIER_CACHE"] = str(tmp_path_factory.mktemp("cache"))


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


# ---------------------------------------------------------------- tiny models and data for training tests

WORDS = ["happy", "glad", "joy", "great", "love", "angry", "mad", "hate", "awful", "rage", "the", "a", "is",
         "it", "so", "very", "this", "was", "ok", "fine", "meh", "day", "thing", "movie", "food"]
TINY_LABELS = ["joy", "anger", "neutral"]


def save_tiny_encoder(d: Path, specials: list[str], tokenizer_cls, model_cls, config) -> Path:
    """A tiny encoder saved like a hub model dir: its own vocabulary (`specials`, then WORDS), `config`'s sizes."""
    vocab = [*specials, *WORDS, "##s", "##ly", ".", "!", ","]
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # The vocabulary path positionally: transformers 5 names it `vocab` and silently ignores `vocab_file`,
    # which left a tokenizer of the special tokens alone that read every word as unknown.
    tok = tokenizer_cls(str(d / "vocab.txt"), do_lower_case=True)
    assert tok.tokenize("Happy movies!") == ["happy", "movie", "##s", "!"], "the tiny tokenizer lost its vocabulary"
    tok.save_pretrained(str(d))
    __import__("torch").manual_seed(0)
    config.vocab_size, config.pad_token_id = len(vocab), tok.pad_token_id
    model_cls(config).save_pretrained(str(d))
    return d


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    """A 2-layer, 32-hidden BERT with its own 40-token vocabulary, saved like a hub model dir."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=64)
    return save_tiny_encoder(tmp_path_factory.mktemp("tiny_encoder"), ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                             BertTokenizerFast, BertModel, cfg)


@pytest.fixture(scope="session")
def tiny_mpnet(tmp_path_factory):
    """A 2-layer, 32-hidden MPNet (all-mpnet-base-v2's kind) with its own vocabulary and MPNet's special tokens."""
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    cfg = MPNetConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      max_position_embeddings=66)
    return save_tiny_encoder(tmp_path_factory.mktemp("tiny_mpnet"), ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"],
                             MPNetTokenizerFast, MPNetModel, cfg)


def tiny_rows(n: int, seed: int, prefix: str) -> list[str]:
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.randrange(3)
        words = {0: WORDS[:5], 1: WORDS[5:10], 2: WORDS[17:25]}[label]
        filler = [rng.choice(WORDS[10:17]) for _ in range(rng.randrange(1, 6))]
        toks = [rng.choice(words) for _ in range(rng.randrange(1, 4))] + filler
        rng.shuffle(toks)
        if rng.random() < 0.2:
            toks.append("[NAME]")
        labels = str(label) if rng.random() > 0.15 else f"{label},{(label + 1) % 3}"
        rows.append(f"{' '.join(toks)}\t{labels}\t{prefix}{i}")
    return rows


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory):
    """GoEmotions-format files (train/dev/test.tsv, emotions.txt) of tiny made-up comments."""
    d = tmp_path_factory.mktemp("tiny_data")
    rows = {"train": tiny_rows(96, 1, "tr"), "dev": tiny_rows(32, 2, "dv"), "test": tiny_rows(32, 3, "te")}
    return write_raw(d / "raw", rows, TINY_LABELS)


@pytest.fixture(scope="session")
def tiny_prepared(tiny_raw):
    from emotion_classifier.data import prepare

    prepare(tiny_raw, tiny_raw.parent / "prepared")
    return tiny_raw.parent / "prepared"


def pytest_addoption(parser):
    parser.addoption("--reverse", action="store_true",
                     help="run the tests in reverse order (no test may depend on another's having run)")


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.cuda` tests run where a CUDA device is visible (benchmarks/gpu_check.py), skip elsewhere.
    `--reverse` reverses the order (`make test-reverse`)."""
    import torch

    if config.getoption("reverse"):
        items.reverse()
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run benchmarks/gpu_check.py on a GPU machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


# Tiny sizes for every architecture and fast, deterministic training: the defaults (params.yaml's values) with these.
TINY = {
    "model.max_length": 16,
    **{f"model.{name}.{key}": value for name in ("bilstm_lasttoken", "bilstm_maxpool")
       for key, value in (("embedding_dim", 32), ("hidden_size", 16))},
    "model.transformer_featureextract.feature_layers": 1,
    "model.transformer_featureextract.head_hidden": 16,
    "model.transformer_featureextract.feature_batch_size": 16,
    "model.transformer_finetune.encoder_lr": 1e-3,
    "model.textcnn.embedding_dim": 32,
    "model.textcnn.filters": 8,
    "train.epochs": 2, "train.batch_size": 8, "train.lr": 0.005, "train.scheduler": "none", "train.warmup_ratio": 0.0,
    "train.precision": "fp32", "train.device": "cpu", "train.patience": 5,
    "tune_thresholds.onnx_int8": False,
    "evaluate.device": "cpu",
    "ensemble.members": [],
}


def tiny_params(encoder_dir, name: str, **train):
    """The params (typed: emotion_classifier.params.Params) for architecture `name` on the tiny encoder: the
    defaults with TINY and the `train` overrides."""
    from emotion_classifier.params import with_overrides

    return with_overrides(None, {**TINY, "model.name": name, "model.encoder": str(encoder_dir),
                                 **{f"train.{k}": v for k, v in train.items()}})


def tiny_tree(encoder_dir, name: str, **train) -> dict:
    """tiny_params as a params.yaml mapping (for a project copy's params.yaml)."""
    from emotion_classifier.params import to_tree

    return to_tree(tiny_params(encoder_dir, name, **train))


def train_and_tune(d: Path, params: dict) -> Path:
    """The train and tune_thresholds stages with their outputs in folder `d`, as DVC runs them; returns d/models."""
    from emotion_classifier.stages import train, tune_thresholds

    train.run(params, d)
    tune_thresholds.run(params, d)
    return d / "models"


@pytest.fixture(scope="session")
def tuned_model(tmp_path_factory, tiny_encoder, tiny_prepared) -> Path:
    """A tiny fine-tuned model (pooler head: it exports to Hugging Face) with thresholds tuned on dev, those for
    its onnxruntime int8 graph too. Trained once for every test that only reads it: copy it before changing it."""
    from emotion_classifier.params import with_overrides

    p = with_overrides(tiny_params(tiny_encoder, "transformer_finetune", epochs=2), {
        "data.prepared_dir": str(tiny_prepared), "model.transformer_finetune.pooling": "pooler",
        "tune_thresholds.onnx_int8": True})
    return train_and_tune(tmp_path_factory.mktemp("tuned_model"), p)


def run_stage(stage: str, params, root: Path) -> None:
    """A stage's body as `dvc repro` runs it (emotion_classifier.stages.<stage>.run), its outputs in `root`."""
    import importlib

    importlib.import_module(f"emotion_classifier.stages.{stage}").run(params, root)
