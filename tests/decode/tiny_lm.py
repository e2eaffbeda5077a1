"""Tiny randomly initialised Llama models and synthetic code tables for the decoder tests (a helper module,
not a conftest: tests/conftest.py is imported by name elsewhere)."""

from dataclasses import dataclass

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from agrec.decode import ItemTrie

PAD, EOS, BOS, N_SPECIAL = 0, 1, 2, 3


@dataclass
class Tiny:
    model: LlamaForCausalLM
    tokens: np.ndarray          # [n_items, L] vocabulary ids of the item codes
    trie: ItemTrie
    prompts: list[list[int]]


def random_code_table(rng: np.random.Generator, sizes: tuple[int, ...], n_items: int) -> np.ndarray:
    """``n_items`` distinct code sequences (level l from ``sizes[l]`` codes) as vocabulary ids: level l's codes
    occupy their own id range after the specials, like ``<a_*>``, ``<b_*>``, … added to a tokenizer."""
    assert n_items <= int(np.prod(sizes))
    seen: set[tuple[int, ...]] = set()
    rows = []
    while len(rows) < n_items:
        c = tuple(int(rng.integers(0, s)) for s in sizes)
        if c not in seen:
            seen.add(c)
            rows.append(c)
    offsets = N_SPECIAL + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return np.asarray(rows, dtype=np.int64) + offsets


def tiny_llama(vocab_size: int, seed: int, init: float = 0.5, layers: int = 2, hidden: int = 32) -> LlamaForCausalLM:
    """A random Llama; a large ``init`` makes its next-token distributions peaked, so beam scores are far
    apart compared with float rounding (a near-uniform model makes rankings hinge on the last bit)."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS,
                      initializer_range=init, attn_implementation="sdpa")
    return LlamaForCausalLM(cfg).eval()


def make_tiny(seed: int = 0, sizes: tuple[int, ...] = (8, 6, 6), n_items: int = 120, n_users: int = 6,
              min_items: int = 2, max_items: int = 6, **model_kw) -> Tiny:
    rng = np.random.default_rng(seed)
    tokens = random_code_table(rng, sizes, n_items)
    model = tiny_llama(N_SPECIAL + sum(sizes), seed, **model_kw)
    prompts = []
    for _ in range(n_users):
        hist = rng.choice(n_items, size=int(rng.integers(min_items, max_items + 1)), replace=False)
        prompts.append([BOS] + tokens[hist].reshape(-1).tolist())
    return Tiny(model=model, tokens=tokens, trie=ItemTrie.build(tokens), prompts=prompts)
