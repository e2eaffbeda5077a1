"""Auxiliary GNNs (LightGCN, SGL, XSimGCL) trained on the training split; full-sort top-n for the decoder.

The configs import without torch (profiles load them); the models are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from agrec.gnn.config import GNN_MODELS, GNNConfig, GNNTrainConfig, LightGCNConfig, SGLConfig, XSimGCLConfig

_LAZY = {
    "GraphRecommender": "agrec.gnn.base",
    "InteractionGraph": "agrec.gnn.graph",
    "propagate": "agrec.gnn.graph",
    "LightGCN": "agrec.gnn.lightgcn",
    "SGL": "agrec.gnn.sgl",
    "XSimGCL": "agrec.gnn.xsimgcl",
    "build_model": "agrec.gnn.registry",
    "evaluate_gnn": "agrec.gnn.evaluate",
    "history_exclusion": "agrec.gnn.evaluate",
    "train_gnn": "agrec.gnn.stage",
    "run_gnn_stage": "agrec.gnn.stage",
}

__all__ = ["GNN_MODELS", "GNNConfig", "GNNTrainConfig", "LightGCNConfig", "SGLConfig", "XSimGCLConfig", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agrec.gnn' has no attribute {name!r}")
