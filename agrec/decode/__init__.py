"""Decoding: the item trie, the GNN's rankable FSM and the GNN-steered, trie-constrained beam search."""

from agrec.decode.beam import DecodeResult, DecodeTrace, generate_items, generate_items_multi, mixed_log_probs
from agrec.decode.config import PAPER_ALPHA, DecodeConfig
from agrec.decode.fsm import OFF, RankableFSM
from agrec.decode.rank import rank_by_scores, top_n_items
from agrec.decode.trie import ItemTrie

__all__ = [
    "DecodeConfig",
    "DecodeResult",
    "DecodeTrace",
    "ItemTrie",
    "OFF",
    "PAPER_ALPHA",
    "RankableFSM",
    "generate_items",
    "generate_items_multi",
    "mixed_log_probs",
    "rank_by_scores",
    "top_n_items",
]
