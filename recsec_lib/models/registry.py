"""Build any of the study's recommenders by name, from its frozen config dataclass.

    build_model("sasrec", num_items=3416, max_len=200, dropout=0.2)

Keyword overrides must be fields of the model's config (a typo is an error,
not silently ignored). Checkpoints store ``(name, dataclasses.asdict(config))``
and come back through ``build_model(name, ..., **config_dict)``.
"""

from __future__ import annotations

import dataclasses

from recsec_lib.models.base import SequentialRecommender
from recsec_lib.models.bert4rec import BERT4Rec, BERT4RecConfig
from recsec_lib.models.mean_embedding import MeanEmbedding, MeanEmbeddingConfig
from recsec_lib.models.narm import NARM, NARMConfig
from recsec_lib.models.sasrec import SASRec, SASRecConfig

MODEL_NAMES = ("meanemb", "sasrec", "narm", "bert4rec")

_MODELS: dict[str, tuple[type[SequentialRecommender], type]] = {
    "meanemb": (MeanEmbedding, MeanEmbeddingConfig),
    "sasrec": (SASRec, SASRecConfig),
    "narm": (NARM, NARMConfig),
    "bert4rec": (BERT4Rec, BERT4RecConfig),
}


# The config field that sets each model's embedding size (the CLI's --embedding-dim).
EMBEDDING_FIELDS = {"meanemb": "embedding_dim", "sasrec": "hidden", "narm": "embedding_dim", "bert4rec": "hidden"}


def _check_name(name: str) -> None:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")


def config_class(name: str) -> type:
    """The frozen config dataclass of model ``name``."""
    _check_name(name)
    return _MODELS[name][1]


def make_config(name: str, **overrides):
    """The model's default config with ``overrides`` applied; unknown fields raise ValueError."""
    cls = config_class(name)
    fields = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for model {name!r}; its settings are {sorted(fields)}")
    return cls(**overrides)


def build_model(name: str, num_items: int, max_len: int, **overrides) -> SequentialRecommender:
    """A freshly initialised model ``name`` for items 1..num_items and histories of up to max_len."""
    if num_items <= 0:
        raise ValueError(f"num_items must be positive, got {num_items}")
    if max_len <= 0:
        raise ValueError(f"max_len must be positive, got {max_len}")
    model_cls, _ = _MODELS[name] if name in _MODELS else (None, None)
    config = make_config(name, **overrides)
    return model_cls(num_items, max_len, config)


def model_name_of(model: SequentialRecommender) -> str:
    """The registry name of a model instance (for checkpoints)."""
    for name, (model_cls, _) in _MODELS.items():
        if type(model) is model_cls:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered model; expected one of {MODEL_NAMES}")
