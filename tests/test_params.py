import copy

import pytest
import yaml

from emotion_classifier.params import ParamsError, load_params, validate

from .conftest import ROOT


@pytest.fixture
def params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_project_params_are_valid():
    p = load_params(ROOT / "params.yaml")
    assert p["model"]["name"] in p["model"]


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
        validate(p)
    assert expected in str(e.value)


def test_unknown_key_lists_allowed(params):
    params["train"]["learning_rate"] = 0.1
    with pytest.raises(ParamsError, match=r"unknown key 'train.learning_rate'; allowed keys here: .*lr"):
        validate(params)


def test_missing_key(params):
    del params["train"]["patience"]
    with pytest.raises(ParamsError, match="'train' lacks key"):
        validate(params)


def test_scientific_notation_string_accepted(params):
    params["train"]["lr"] = "1e-3"  # PyYAML reads 1e-3 (no dot) as a string
    assert validate(params)["train"]["lr"] == pytest.approx(1e-3)


def test_load_names_file(tmp_path, params):
    params["seed"] = -1
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=rf"{f}: params: 'seed' is -1"):
        load_params(f)
