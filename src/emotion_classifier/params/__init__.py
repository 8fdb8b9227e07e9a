"""params.yaml as typed, frozen sections, validated once by `load_params`.

An unknown key, a wrong type or an out-of-range value fails here, naming the key and what is allowed, before any
work starts. Stages read their sections; what one architecture trains with, its recipe and `auto` resolved, is a
`TrainJob` (`resolve`, `member_params`), which is all the training library takes. By role: `sections` (the schema,
composed from the registries), `tree` (the file and its tree, both ways), `jobs` (resolution), `members`.
"""

from ..fields import ParamsError
from .jobs import ModelSpec, TrainJob, recipe_sources, resolve
from .members import MEMBER_KEYS, member_params
from .sections import (
    ENSEMBLE,
    MONITORS,
    TRAIN_KEYS,
    AnalyzeParams,
    CompareParams,
    DataParams,
    EnsembleParams,
    EvaluateParams,
    MaskWords,
    ModelParams,
    Params,
    PrepareParams,
    ThresholdsParams,
    TrainParams,
    TuneThresholdsParams,
)
from .tree import dump, from_tree, load_params, set_key, to_tree, with_overrides

__all__ = [
    "ENSEMBLE", "MEMBER_KEYS", "MONITORS", "TRAIN_KEYS", "AnalyzeParams", "CompareParams", "DataParams",
    "EnsembleParams", "EvaluateParams", "MaskWords", "ModelParams", "ModelSpec", "Params", "ParamsError",
    "PrepareParams", "ThresholdsParams", "TrainJob", "TrainParams", "TuneThresholdsParams", "dump", "from_tree",
    "load_params", "member_params", "recipe_sources", "resolve", "set_key", "to_tree", "with_overrides",
]
