import copy
import dataclasses

import pytest
import yaml

from emotion_classifier.architectures import REGISTRY
from emotion_classifier.params import (
    Params,
    ParamsError,
    from_tree,
    load_params,
    member_params,
    recipe_sources,
    resolve,
    to_tree,
    with_overrides,
)

from .conftest import ROOT


@pytest.fixture
def params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_project_params_are_valid_and_spell_out_every_default(params):
    """params.yaml writes every key (DVC tracks each one; no default acts unseen) and its values are the typed
    sections' defaults, so the code's defaults and main's settings cannot drift apart; only which architectures
    main's ensemble combines is params.yaml's alone."""
    p = load_params(ROOT / "params.yaml")
    assert p.model.name in p.model.archs or p.model.name == "ensemble"
    assert all(p.model.recipes[name] for name in REGISTRY)  # every architecture declares its recipe
    assert to_tree(p) == params
    assert p.ensemble.members and Params().ensemble.members == ()
    assert dataclasses.replace(p, ensemble=Params().ensemble) == Params()


def test_sections_are_frozen_and_typed(params):
    p = from_tree(params)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.train.lr = 0.1
    assert isinstance(p.train.lr, float) and isinstance(p.evaluate.bootstrap_resamples, int)
    assert isinstance(p.ensemble.members, tuple)
    assert with_overrides(p, {"train.lr": 0.5}).train.lr == 0.5 and p.train.lr == params["train"]["lr"]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_architecture_trains_with_its_recipe_unless_told_otherwise(params, name):
    """The resolved train settings are the architecture's declared recipe; an explicit train.K always wins."""
    params["model"]["name"] = name
    recipe = params["model"][name]["train"]
    assert recipe and all(params["train"][k] is None for k in recipe)  # params.yaml leaves them to the recipe
    resolved = dataclasses.asdict(resolve(from_tree(params)).train)
    assert {k: resolved[k] for k in recipe} == pytest.approx(recipe)
    assert all(v is not None for v in resolved.values())
    params["train"]["epochs"] = 1  # as `dvc exp run -S train.epochs=1` writes it
    resolved = dataclasses.asdict(resolve(from_tree(params)).train)
    assert resolved["epochs"] == 1 and all(resolved[k] == v for k, v in recipe.items() if k != "epochs")


def test_ensemble_members_train_with_their_own_recipes(params):
    params["model"]["name"] = "ensemble"
    params["ensemble"]["members"] = [{"model.name": "bilstm_maxpool"}, {"model.name": "textcnn", "seed": 4},
                                     {"model.name": "textcnn", "train.epochs": 2}]
    p = from_tree(params)
    members = [resolve(member_params(p, i)) for i in range(3)]
    assert [m.train.epochs for m in members] == [params["model"]["bilstm_maxpool"]["train"]["epochs"],
                                                 params["model"]["textcnn"]["train"]["epochs"], 2]
    assert [m.seed for m in members] == [params["seed"], 4, params["seed"]]
    p = with_overrides(p, {"train.loss": "focal"})  # an explicit setting of the ensemble's reaches every member
    assert {resolve(member_params(p, i)).train.loss for i in range(3)} == {"focal"}


def FINE(p: dict) -> dict:
    return p["model"]["transformer_finetune"]


@pytest.mark.parametrize("name, change, says", [
    ("textcnn", lambda p: p["model"]["textcnn"]["train"].update(epoch=3),
     "'model.textcnn.train.epoch' is not a train setting"),
    ("textcnn", lambda p: p["model"]["textcnn"]["train"].update(loss="hinge"), "'model.textcnn.train.loss' is 'hinge'"),
    ("textcnn", lambda p: p["model"]["textcnn"]["train"].pop("epochs"),
     "'train.epochs' is null (the architecture's recipe decides) and 'model.textcnn.train' sets no epochs"),
    ("ensemble", lambda p: p["ensemble"].update(members=[{"model.name": "gru"}]),
     "'model.name' is 'gru'; expected one of"),
    ("ensemble", lambda p: p["ensemble"].update(members=[{"seed": 3}]), "a member is one architecture"),
    ("ensemble", lambda p: p["ensemble"].update(members=[{"model.name": "textcnn", "train.epoch": 3}]),
     "overrides 'train.epoch', which is not a key of params.yaml"),
    ("ensemble", lambda p: p["ensemble"].update(members=[]), "ensemble.members is empty"),
    ("transformer_finetune", lambda p: (p["model"].update(encoder="/some/encoder"), FINE(p).update(encoders={})),
     "'model.transformer_finetune.encoder_lr' is null (the encoder's recipe decides) and "
     "'model.transformer_finetune.encoders' has no entry for /some/encoder (nor for all-MiniLM-L6-v2) setting "
     "encoder_lr: set one of them"),
    ("transformer_finetune", lambda p: FINE(p)["encoders"]["all-mpnet-base-v2"].update(dropout=0.2),
     "'model.transformer_finetune.encoders.all-mpnet-base-v2.dropout' is not a key an encoder's recipe sets; "
     "allowed keys: encoder_lr, train"),
    ("transformer_finetune", lambda p: FINE(p)["encoders"]["all-mpnet-base-v2"].update(train={"epoch": 4}),
     "'model.transformer_finetune.encoders.all-mpnet-base-v2.train.epoch' is not a train setting"),
    ("transformer_finetune", lambda p: FINE(p)["encoders"]["all-mpnet-base-v2"].update(encoder_lr=None),
     "'model.transformer_finetune.encoders.all-mpnet-base-v2.encoder_lr' is null"),
    ("transformer_finetune", lambda p: FINE(p)["encoders"].update({"all-mpnet-base-v2": 5e-5}),
     "'model.transformer_finetune.encoders.all-mpnet-base-v2' is 5e-05; expected a mapping"),
])
def test_bad_recipes_and_members_get_one_line(params, name, change, says):
    params["model"]["name"] = name
    change(params)
    with pytest.raises(ParamsError) as e:
        from_tree(params)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_each_encoder_brings_its_recipe_and_an_explicit_value_wins(params):
    """model.transformer_finetune.encoders: the encoder's entry fills the section's empty encoder_lr (the base-size
    encoder a lower one, reports/recipes.md) and its train: beats the architecture's; an explicit value beats both."""
    params["model"]["name"] = "transformer_finetune"
    encoders = FINE(params)["encoders"]
    assert FINE(params)["encoder_lr"] is None  # params.yaml leaves it to each encoder's recipe
    minilm, mpnet = encoders["all-MiniLM-L6-v2"]["encoder_lr"], encoders["all-mpnet-base-v2"]["encoder_lr"]
    assert mpnet < minilm

    def job(**overrides):
        return resolve(with_overrides(from_tree(params), overrides))

    assert job().model.arch.encoder_lr == minilm
    assert job(**{"model.encoder": "all-mpnet-base-v2"}).model.arch.encoder_lr == mpnet
    encoders["all-mpnet-base-v2"]["train"] = {"epochs": 7}
    assert job(**{"model.encoder": "all-mpnet-base-v2"}).train.epochs == 7
    assert job().train.epochs == FINE(params)["train"]["epochs"]  # MiniLM's entry sets none: the architecture's
    assert job(**{"model.encoder": "all-mpnet-base-v2", "train.epochs": 2}).train.epochs == 2
    explicit = {"model.encoder": "all-mpnet-base-v2", "model.transformer_finetune.encoder_lr": 3e-4}
    assert job(**explicit).model.arch.encoder_lr == 3e-4
    folder = with_overrides(from_tree(params), {"model.encoder": "/some/encoder"})  # no entry: the bundled one's
    assert resolve(folder).model.arch.encoder_lr == minilm
    assert recipe_sources(folder)["encoder_lr"] == "all-MiniLM-L6-v2 recipe"


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (("train", "lr"), -0.1, "'train.lr' is -0.1; expected a number in (0, 10]"),
        (("train", "epochs"), "ten", "'train.epochs' is 'ten' (str); expected an integer"),
        (("train", "epochs"), 0, "'train.epochs' is 0; expected an integer >= 1"),
        (("model", "name"), "gpt5", "'model.name' is 'gpt5'; expected one of bilstm_lasttoken, bilstm_maxpool,"),
        (("data", "max_examples"), True, "'data.max_examples' is True (bool); expected an integer"),
        (("model", "bilstm_maxpool", "dropout"), 1.5, "'model.bilstm_maxpool.dropout' is 1.5"),
    ],
)
def test_bad_values_name_key_and_allowed(params, path, value, expected):
    p = copy.deepcopy(params)
    node = p
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(ParamsError) as e:
        from_tree(p)
    assert expected in str(e.value)


def test_unknown_key_lists_allowed(params):
    params["train"]["learning_rate"] = 0.1
    with pytest.raises(ParamsError, match=r"unknown key 'train.learning_rate'; allowed keys here: .*lr"):
        from_tree(params)


def test_a_key_left_out_takes_its_default(params):
    del params["train"]["patience"], params["model"]["textcnn"]
    p = from_tree(params)
    assert p.train.patience == Params().train.patience and p.model.archs["textcnn"] == Params().model.archs["textcnn"]
    assert p.model.recipes["textcnn"] == REGISTRY["textcnn"].recipe


def test_scientific_notation_string_accepted(params):
    params["train"]["lr"] = "1e-3"  # PyYAML reads 1e-3 (no dot) as a string
    assert from_tree(params).train.lr == pytest.approx(1e-3)


def test_load_names_file(tmp_path, params):
    params["seed"] = -1
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=rf"{f}: params: 'seed' is -1"):
        load_params(f)


def test_dvc_set_param_changes_only_its_lines(tmp_path):
    """`dvc exp run -S` rewrites params.yaml with DVC's own YAML writer: a one-value change stays a one-line diff,
    and setting a list param to [] twice in a row (DVC 3.67 broke a list whose key carried a trailing comment)
    leaves a file that loads. `-S` on every list param of the file, twice, then back."""
    from dvc.utils.hydra import apply_overrides

    from emotion_classifier.experiments.collect import flatten

    original = (ROOT / "params.yaml").read_text()
    f = tmp_path / "params.yaml"
    f.write_text(original)
    apply_overrides(str(f), ["train.epochs=1"])
    changed = [(a, b) for a, b in zip(original.splitlines(), f.read_text().splitlines()) if a != b]
    assert len(changed) == 1 and changed[0][1].startswith("  epochs: 1"), changed
    f.write_text(original)
    lists = {k: v for k, v in flatten(yaml.safe_load(original)).items() if isinstance(v, list)}
    assert "ensemble.members" in lists
    for key, value in lists.items():
        apply_overrides(str(f), [f"{key}=[]"])
        apply_overrides(str(f), [f"{key}=[]"])
        assert flatten(yaml.safe_load(f.read_text()))[key] == []
        items = ",".join("{" + ",".join(f"{k}:{v}" for k, v in item.items()) + "}" for item in value)
        apply_overrides(str(f), [f"{key}=[{items}]"])
    assert f.read_text() == original
