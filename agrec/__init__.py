"""AGRec workbench: generative sequential recommendation with GNN-steered, trie-constrained decoding."""

__version__ = "0.1.0"
