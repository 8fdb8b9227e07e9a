"""An ensemble member's params: the params as written with the member's overrides applied to the typed sections,
each value checked as params.yaml's would be (`ensemble.members: [{model.name: bilstm_maxpool, seed: 1}]`)."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

from ..fields import ParamsError, build_section, choice
from .jobs import resolve
from .sections import ENSEMBLE, Params, arch_registry, check_encoder_recipes, check_recipe, loss_registry

MEMBER_KEYS = ("seed", "model.", "train.", "loss.")  # what may differ between members: never the data or the scoring


def member_params(params: Params, index: int) -> Params:
    """The params ensemble member `index` trains with, as written (resolve gives its TrainJob): params.yaml with the
    member's overrides ({model.name: bilstm_maxpool, seed: 0, train.epochs: 8}), validated."""
    where = f"ensemble.members[{index}]"
    overrides = params.ensemble.members[index]
    if not isinstance(overrides, dict) or not overrides:
        raise ParamsError(f"params: '{where}' is {overrides!r}; expected a mapping of overrides, "
                          "e.g. {{model.name: bilstm_maxpool, seed: 0}}")
    for key in overrides:
        if not isinstance(key, str) or not (key == "seed" or key.startswith(MEMBER_KEYS[1:])):
            raise ParamsError(f"params: '{where}' overrides {key!r}; a member may set only seed, model.*, train.* "
                              "and loss.* (every member trains and is scored on the same data)")
    member = dataclasses.replace(params, ensemble=dataclasses.replace(params.ensemble, members=()))
    try:
        for key, value in overrides.items():
            member = override(member, key, value, where)
        if member.model.name == ENSEMBLE:
            raise ParamsError("params: a member is one architecture: name it with model.name (e.g. "
                              "{model.name: bilstm_lasttoken}); an ensemble cannot be a member")
        if member.train.loss is not None:
            choice(*loss_registry()).check("train.loss", member.train.loss)
        resolve(member)  # a null train setting that no recipe fills fails now
    except ParamsError as e:
        raise ParamsError(f"{e} (in {where})" if where not in str(e) else str(e)) from None
    return member


def override(params: Params, key: str, value: Any, where: str) -> Params:
    """`params` with `key` ("train.epochs", "model.textcnn.filters", "loss.focal.gamma") set to `value`, checked."""
    parts = key.split(".")
    if parts[0] == "model" and len(parts) > 2 and parts[1] in params.model.archs:
        params = dataclasses.replace(params, model=_override_arch(params.model, parts[1], parts[2:], value, key,
                                                                  where))
    elif parts[0] == "model" and len(parts) > 1:
        params = dataclasses.replace(params, model=_set(params.model, parts[1:], value, key, where))
        choice(*arch_registry(), ENSEMBLE).check("model.name", params.model.name)
    elif parts[0] == "loss" and len(parts) > 2 and parts[1] in params.loss:
        configs = {**params.loss, parts[1]: _set(params.loss[parts[1]], parts[2:], value, key, where)}
        params = dataclasses.replace(params, loss=MappingProxyType(configs))
    elif parts[0] in ("seed", "train"):
        params = _set(params, parts, value, key, where)
    else:
        raise _unknown(key, where)
    return params


def _override_arch(model, name: str, rest: list[str], value: Any, key: str, where: str):
    """model.<name>.<field>, model.<name>.train[.<k>] (its recipe), model.<name>.encoders (its encoders' recipes)."""
    if rest[0] == "train":
        recipe = {**model.recipes[name], rest[1]: value} if len(rest) == 2 else value if len(rest) == 1 else None
        if recipe is None:
            raise _unknown(key, where)
        recipes = {**model.recipes, name: MappingProxyType(check_recipe(recipe, f"model.{name}.train"))}
        return dataclasses.replace(model, recipes=MappingProxyType(recipes))
    if rest == ["encoders"]:
        checked = check_encoder_recipes(value, arch_registry()[name].config, key)
        return dataclasses.replace(model, encoder_recipes=MappingProxyType({**model.encoder_recipes, name: checked}))
    archs = {**model.archs, name: _set(model.archs[name], rest, value, key, where)}
    return dataclasses.replace(model, archs=MappingProxyType(archs))


def _set(section, parts: list[str], value: Any, key: str, where: str):
    """A typed section with the field at `parts` replaced by `value`, checked by the field's own declaration."""
    fields = {f.name: f for f in dataclasses.fields(section)}
    if parts[0] not in fields or ("check" not in fields[parts[0]].metadata
                                  and "section" not in fields[parts[0]].metadata):
        raise _unknown(key, where)
    meta = fields[parts[0]].metadata
    if len(parts) > 1:
        if "section" not in meta:
            raise _unknown(key, where)
        new = _set(getattr(section, parts[0]), parts[1:], value, key, where)
    elif "section" in meta:
        new = build_section(meta["section"], value, key)
    elif value is None and meta.get("nullable"):
        new = None
    else:
        checked = meta["check"].check(key, value)
        new = tuple(checked) if isinstance(checked, list) else checked
    return dataclasses.replace(section, **{parts[0]: new})


def _unknown(key: str, where: str) -> ParamsError:
    return ParamsError(f"params: '{where}' overrides {key!r}, which is not a key of params.yaml")
