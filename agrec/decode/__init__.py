"""Decoding: the item trie, the GNN's rankable FSM and the GNN-steered, trie-constrained beam search.

The names below are loaded on first use (PEP 562): ``agrec.decode.config`` is read whenever a profile is loaded,
and importing this package must not import torch for that (``tests/test_config.py`` checks it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agrec.decode.beam import DecodeResult, DecodeTrace, generate_items, generate_items_multi, mixed_log_probs
    from agrec.decode.config import PAPER_ALPHA, DecodeConfig
    from agrec.decode.fsm import OFF, RankableFSM
    from agrec.decode.rank import rank_by_scores, top_n_items
    from agrec.decode.trie import ItemTrie

_WHERE = {
    "DecodeResult": "beam",
    "DecodeTrace": "beam",
    "generate_items": "beam",
    "generate_items_multi": "beam",
    "mixed_log_probs": "beam",
    "PAPER_ALPHA": "config",
    "DecodeConfig": "config",
    "OFF": "fsm",
    "RankableFSM": "fsm",
    "rank_by_scores": "rank",
    "top_n_items": "rank",
    "ItemTrie": "trie",
}

__all__ = [
    "OFF",
    "PAPER_ALPHA",
    "DecodeConfig",
    "DecodeResult",
    "DecodeTrace",
    "ItemTrie",
    "RankableFSM",
    "generate_items",
    "generate_items_multi",
    "mixed_log_probs",
    "rank_by_scores",
    "top_n_items",
]
assert sorted(__all__) == sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"agrec.decode.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'agrec.decode' has no attribute {name!r}")
