"""The four architectures, one registry, and save/load of a trained model directory.

Every model maps (input_ids, attention_mask) -> logits over the labels, so training, threshold
tuning, evaluation and prediction treat them alike.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .errors import UserError
from .io import atomic_dir, atomic_path
from .params import ARCHITECTURES

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER = "tokenizer"


class BiLSTM(nn.Module):
    """Embedding -> (Bi)LSTM over real tokens only (packed) -> last-token or max-pool -> linear."""

    def __init__(self, vocab_size: int, pad_id: int, n_labels: int, pooling: str, embedding_dim: int,
                 hidden_size: int, num_layers: int, dropout: float, bidirectional: bool, **_):
        super().__init__()
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size * (2 if bidirectional else 1), n_labels)

    def forward(self, input_ids, attention_mask):
        lengths = attention_mask.sum(1).clamp(min=1).cpu()
        x = self.dropout(self.embedding(input_ids))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, (h, _) = self.lstm(packed)
        if self.pooling == "last":
            # Packed: the forward final state is at each sequence's last real token, the
            # backward one at its first token; padding is never read.
            feats = torch.cat([h[-2], h[-1]], dim=1) if self.lstm.bidirectional else h[-1]
        else:
            out, _ = pad_packed_sequence(out, batch_first=True, padding_value=float("-inf"))
            feats = out.max(dim=1).values
        return self.classifier(self.dropout(feats))


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    if how == "cls":
        return hidden[:, 0]
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def mlp(d_in: int, n_out: int, layers: int, hidden: int, dropout: float) -> nn.Sequential:
    mods: list[nn.Module] = [nn.Dropout(dropout)]
    for _ in range(layers):
        mods += [nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout)]
        d_in = hidden
    return nn.Sequential(*mods, nn.Linear(d_in, n_out))


class FeatureExtract(nn.Module):
    """Frozen encoder -> pooled features -> MLP head. Training only ever sees cached features.

    `feature_layers` > 1 concatenates the pooled outputs of that many top layers: lower layers keep
    lexical and syntactic cues that the last layer of a sentence-similarity model has averaged away.
    """

    def __init__(self, encoder: nn.Module, n_labels: int, pooling: str, head_layers: int, head_hidden: int,
                 dropout: float, feature_layers: int = 1, **_):
        super().__init__()
        n_hidden = encoder.config.num_hidden_layers + 1  # the embeddings' output counts as one
        if feature_layers > n_hidden:
            raise UserError(f"model.transformer_featureextract.feature_layers is {feature_layers} but the encoder "
                             f"has {n_hidden} hidden states (embeddings + {n_hidden - 1} layers)")
        self.pooling = pooling
        self.feature_layers = feature_layers
        self.encoder = encoder.requires_grad_(False).eval()
        self.head = mlp(encoder.config.hidden_size * feature_layers, n_labels, head_layers, head_hidden, dropout)

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()  # frozen: no dropout in the features
        return self

    @torch.no_grad()
    def features(self, input_ids, attention_mask):
        if self.feature_layers == 1:
            return pool(self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state,
                        attention_mask, self.pooling)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return torch.cat([pool(h, attention_mask, self.pooling) for h in hidden.hidden_states[-self.feature_layers:]],
                         dim=1)

    def forward(self, input_ids, attention_mask):
        return self.head(self.features(input_ids, attention_mask).float())


class FineTune(nn.Module):
    """Encoder (all weights trained) -> pooled -> dropout -> linear.

    pooling `pooler` is BERT's own head (dense + tanh on [CLS]), exactly what
    BertForSequenceClassification computes, so the model exports to it (`emotion-export`).
    """

    def __init__(self, encoder: nn.Module, n_labels: int, pooling: str, dropout: float, **_):
        super().__init__()
        self.pooling = pooling
        self.encoder = encoder
        if pooling != "pooler" and getattr(encoder, "pooler", None) is not None:
            encoder.pooler.requires_grad_(False)  # unused; DDP wants a gradient for every trainable weight
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, n_labels)

    def forward(self, input_ids, attention_mask):
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        if self.pooling == "pooler":
            pooled = out.pooler_output
        else:
            pooled = pool(out.last_hidden_state, attention_mask, self.pooling)
        return self.classifier(self.dropout(pooled))


def encoder_layers(encoder: nn.Module) -> list[nn.Module]:
    """The transformer blocks, bottom first (BERT-like and DistilBERT-like encoders)."""
    for path in ("encoder.layer", "transformer.layer", "layers"):
        obj = encoder
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
            return list(obj)
        except AttributeError:
            continue
    raise UserError(f"cannot find the transformer layers of {type(encoder).__name__}; "
                     "layer_lr_decay and unfreeze_layers_per_epoch support BERT- and DistilBERT-like encoders")


# The registry: name -> (builder, whether it needs the encoder's weights)
def _bilstm(pooling):
    def build(cfg, encoder):
        return BiLSTM(cfg["vocab_size"], cfg["pad_id"], cfg["n_labels"], pooling, **cfg["arch"])
    return build


REGISTRY = {
    "bilstm_lasttoken": _bilstm("last"),
    "bilstm_maxpool": _bilstm("max"),
    "transformer_featureextract": lambda cfg, enc: FeatureExtract(enc, cfg["n_labels"], **cfg["arch"]),
    "transformer_finetune": lambda cfg, enc: FineTune(enc, cfg["n_labels"], **cfg["arch"]),
}
assert tuple(REGISTRY) == ARCHITECTURES


def uses_encoder(name: str) -> bool:
    return name.startswith("transformer_")


def check_name(name: str) -> None:
    if name not in REGISTRY:
        raise UserError(f"unknown model.name {name!r}; choose one of: {', '.join(REGISTRY)}")


def build(name: str, model_params: dict, tokenizer, labels: list[str], device_type: str = "cpu"
          ) -> tuple[nn.Module, dict]:
    """A new model for training (pretrained encoder weights where the architecture uses them),
    and the config that rebuilds it offline (see `load`)."""
    from .text import load_encoder

    check_name(name)
    arch = dict(model_params[name])
    cfg = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "arch": arch,
        "encoder": model_params["encoder"],
        "max_length": model_params["max_length"],
        "vocab_size": len(tokenizer),
        "pad_id": tokenizer.pad_token_id,
        "n_labels": len(labels),
        "labels": list(labels),
    }
    encoder = None
    if uses_encoder(name) or arch.get("init_embeddings") == "encoder":
        encoder = load_encoder(model_params["encoder"], len(tokenizer), device_type, arch.get("encoder_dropout"))
        cfg["encoder_config"] = encoder.config.to_dict()
    if arch.get("pooling") == "pooler" and getattr(encoder, "pooler", None) is None:
        raise UserError(f"model.{name}.pooling: pooler needs an encoder with a pooler layer (BERT-like); "
                         f"{model_params['encoder']} has none: use cls or mean")
    if not uses_encoder(name):
        model = REGISTRY[name](cfg, None)
        if arch["init_embeddings"] == "encoder":
            emb = encoder.get_input_embeddings().weight
            if emb.shape[1] != arch["embedding_dim"]:
                raise UserError(
                    f"model.{name}.init_embeddings: encoder needs embedding_dim = {emb.shape[1]} (the encoder's "
                    f"hidden size), got {arch['embedding_dim']}; set embedding_dim: {emb.shape[1]} or "
                    "init_embeddings: random")
            with torch.no_grad():
                model.embedding.weight.copy_(emb)
        return model, cfg
    return REGISTRY[name](cfg, encoder), cfg


def n_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def save(model: nn.Module, cfg: dict, tokenizer, out_dir: str | Path, extra: dict | None = None) -> None:
    """Write weights (safetensors), config and tokenizer: all that `load` needs, offline.

    Each is replaced atomically on its own: `out_dir` also holds thresholds.json, another stage's output.
    """
    from safetensors.torch import save_model

    out_dir = Path(out_dir)
    with atomic_path(out_dir / WEIGHTS) as tmp:
        save_model(model, str(tmp))
    with atomic_dir(out_dir / TOKENIZER) as tmp:
        tokenizer.save_pretrained(str(tmp))
    with atomic_path(out_dir / CONFIG) as tmp:  # last: a config means the rest is complete
        tmp.write_text(json.dumps({**cfg, **(extra or {})}, indent=2) + "\n")


def weights_hash(model_dir: str | Path) -> str:
    """sha256 of the weights file: ties thresholds (and anything else derived) to these exact weights."""
    h = hashlib.sha256()
    with open(Path(model_dir) / WEIGHTS, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ModelDirError(UserError):
    pass


def read_config(model_dir: str | Path) -> dict:
    model_dir = Path(model_dir)
    path = model_dir / CONFIG
    if not path.exists() or not (model_dir / WEIGHTS).exists():
        raise ModelDirError(f"{model_dir}: no trained model (missing {CONFIG} or {WEIGHTS}); "
                            "run `dvc repro train` (or `emotion-train`) first")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelDirError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}); `dvc checkout models` "
                            "or retrain (`dvc repro train`)") from None
    except UnicodeDecodeError as e:
        raise ModelDirError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    version = cfg.get("format_version") if isinstance(cfg, dict) else None
    if version != FORMAT_VERSION:
        raise ModelDirError(f"{model_dir}: written by an incompatible version (format {version}, "
                            f"this code reads {FORMAT_VERSION}); retrain with `dvc repro train`")
    missing = [k for k in ("name", "arch", "labels", "max_length", "vocab_size", "pad_id", "n_labels") if k not in cfg]
    if missing or cfg["name"] not in REGISTRY or (uses_encoder(cfg["name"]) and "encoder_config" not in cfg):
        raise ModelDirError(f"{path}: not a model config this code can build (name {cfg.get('name')!r}, missing keys "
                            f"{missing or ['encoder_config']}); `dvc checkout models` or retrain (`dvc repro train`)")
    return cfg


def load(model_dir: str | Path, device_type: str = "cpu") -> tuple[nn.Module, dict, object]:
    """Rebuild a saved model from its directory alone (no hub, no bundled encoder needed)."""
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from .text import attention_for

    model_dir = Path(model_dir)
    cfg = read_config(model_dir)
    encoder = None
    if uses_encoder(cfg["name"]):
        ec = {k: v for k, v in cfg["encoder_config"].items() if not k.startswith("_")}
        encoder = AutoModel.from_config(AutoConfig.for_model(ec.pop("model_type"), **ec),
                                        attn_implementation=attention_for(device_type))
    model = REGISTRY[cfg["name"]](cfg, encoder)
    try:
        load_model(model, str(model_dir / WEIGHTS))
    except Exception as e:  # safetensors raises its own error types for a truncated or foreign file
        raise ModelDirError(f"{model_dir / WEIGHTS}: cannot load the weights ({str(e).strip()[:200]}); the file "
                            "is damaged or not this model's: `dvc checkout models` or retrain (`dvc repro train`)"
                            ) from None
    if not (model_dir / TOKENIZER / "tokenizer_config.json").exists():
        raise ModelDirError(f"{model_dir / TOKENIZER}: missing (the tokenizer is saved with the weights); "
                            "`dvc checkout models` or retrain (`dvc repro train`)")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir / TOKENIZER))
    return model.eval(), cfg, tokenizer
