"""Name -> model class, and building a model with seeded initial weights."""

from __future__ import annotations

from typing import Any, cast

import torch

from agrec.errors import ConfigError
from agrec.gnn.base import GraphRecommender
from agrec.gnn.graph import InteractionGraph
from agrec.gnn.config import LightGCNConfig, SGLConfig, XSimGCLConfig
from agrec.gnn.lightgcn import LightGCN
from agrec.gnn.sgl import SGL
from agrec.gnn.xsimgcl import XSimGCL

MODEL_CLASSES: dict[str, type[GraphRecommender]] = {"lightgcn": LightGCN, "sgl": SGL, "xsimgcl": XSimGCL}
CONFIG_CLASSES: dict[str, type] = {"lightgcn": LightGCNConfig, "sgl": SGLConfig, "xsimgcl": XSimGCLConfig}


def build_model(
    name: str,
    config: LightGCNConfig | SGLConfig | XSimGCLConfig,
    graph: InteractionGraph,
    seed: int,
    device: torch.device | str = "cpu",
) -> GraphRecommender:
    """A fresh ``name`` model on ``graph`` whose initial weights depend only on ``seed``."""
    if name not in MODEL_CLASSES:
        raise ConfigError(f"unknown GNN {name!r}; known: {list(MODEL_CLASSES)}")
    if not isinstance(config, CONFIG_CLASSES[name]):
        raise ConfigError(f"{name} needs a {CONFIG_CLASSES[name].__name__}, got {type(config).__name__}")
    model = cast(Any, MODEL_CLASSES[name])(config, graph)  # each model class takes (its config, graph)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model.to(device)
