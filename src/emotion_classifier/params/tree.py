"""params.yaml's text and tree and the typed params, both ways: `load_params` reads and validates the file once
(every stage does, so a typo anywhere fails early), `from_tree`, `to_tree`, `dump` and `with_overrides`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..fields import ParamsError, as_tree, build_section, choice
from .jobs import resolve
from .members import member_params
from .sections import ENSEMBLE, Params, loss_registry


def from_tree(raw: Any) -> Params:
    """The checked params, as written: `train:` may hold nulls (resolve fills them for a run)."""
    params = build_section(Params, raw, "")
    if params.train.loss is not None:
        choice(*loss_registry()).check("train.loss", params.train.loss)
    members = params.ensemble.members
    if params.model.name == ENSEMBLE:
        if not members:
            raise ParamsError("params: model.name is ensemble but ensemble.members is empty; list its architectures, "
                              "e.g. [{model.name: transformer_finetune}, {model.name: bilstm_lasttoken}]")
    else:
        resolve(params)  # a null train setting that no recipe fills fails now
    for index in range(len(members)):
        member_params(params, index)
    return params


def to_tree(params: Params) -> dict:
    """The params as params.yaml writes them (every key): for `dvc exp run`-like overrides and child processes."""
    tree = {f.name: as_tree(getattr(params, f.name)) for f in dataclasses.fields(Params)
            if f.name not in ("model", "loss")}
    model = params.model
    tree["model"] = {"name": model.name, "encoder": model.encoder, "max_length": model.max_length,
                     "mask_words": as_tree(model.mask_words),
                     **{name: {**as_tree(config), "train": dict(model.recipes[name]),
                              **_encoders_tree(model.encoder_recipes[name])}
                        for name, config in model.archs.items()}}
    tree["loss"] = {name: as_tree(config) for name, config in params.loss.items()}
    tree["ensemble"] = {"members": [dict(m) for m in params.ensemble.members]}
    return tree


def _encoders_tree(recipes: Mapping[str, Mapping[str, Any]]) -> dict:
    """`encoders:` as params.yaml writes it: none for an architecture without, `train:` only where it sets something."""
    trees = {encoder: {**{k: v for k, v in block.items() if k != "train"},
                       **({"train": dict(block["train"])} if block["train"] else {})}
             for encoder, block in recipes.items()}
    return {"encoders": trees} if trees else {}


def dump(params: Params) -> str:
    """The params as a params.yaml file's text."""
    return yaml.safe_dump(to_tree(params), sort_keys=False)


def set_key(tree: dict, key: str, value: Any, where: str) -> None:
    """tree[a][b] = value for key "a.b", as `dvc exp run -S` writes it; only a key params.yaml has."""
    *parents, leaf = key.split(".")
    section_ = tree
    for part in parents:
        section_ = section_.get(part) if isinstance(section_, dict) else None
    if not isinstance(section_, dict) or leaf not in section_:
        raise ParamsError(f"params: '{where}' overrides {key!r}, which is not a key of params.yaml")
    section_[leaf] = value


def with_overrides(params: Params | None = None, overrides: Mapping[str, Any] | None = None,
                   where: str = "overrides") -> Params:
    """`params` (the defaults when None) with `-S`-style overrides ({"train.epochs": 1, "seed": 3}),
    validated."""
    tree = to_tree(params if params is not None else Params())
    for key, value in (overrides or {}).items():
        set_key(tree, key, value, where)
    return from_tree(tree)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate the whole params file (a typo anywhere fails every stage early)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: not found; run from the project root, where params.yaml lives")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ParamsError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ParamsError(f"{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    try:
        return from_tree(raw)
    except ParamsError as e:
        raise ParamsError(f"{path}: {e}") from None
