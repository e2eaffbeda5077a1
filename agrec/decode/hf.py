"""The Hugging Face baseline: ``model.generate`` with beam search and a ``prefix_allowed_tokens_fn`` built from
the same trie (the LC-Rec / TIGER way). It is the reference that ``alpha = 0`` must reproduce, and the speed
baseline of ``benchmarks/decode_vs_hf.py``; the project decodes with :func:`agrec.decode.generate_items`.

Settings that make ``generate`` plain beam search, comparable item for item:

- ``max_new_tokens = n_levels`` and an EOS the trie never allows: every hypothesis is one item, all of the same
  length, finished together at the last step (no early-stopping heuristics come into play);
- ``length_penalty = 0``: ``sequences_scores`` is the plain sum of token log-probabilities (Eq. 5 with α = 0);
  any other value divides every hypothesis by the same ``L ** length_penalty``, so the order would not change;
- ``do_sample = False``, ``num_return_sequences = num_beams``.

Hugging Face keeps ``num_beams`` hypotheses even when fewer valid ones exist (it then returns duplicates or
-inf-scored junk); here those are dropped, as :func:`generate_items` never produces them.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from agrec.decode.beam import DecodeResult
from agrec.decode.trie import ItemTrie
from agrec.lm.prompts import left_pad


def prefix_allowed_tokens_fn(
    trie: ItemTrie, prompt_len: int, fallback_token_id: int
) -> Callable[[int, torch.Tensor], list[int]]:
    """A ``prefix_allowed_tokens_fn`` for ``generate``: the trie children of the generated prefix.

    The table ``{prefix tuple: allowed token ids}`` is precomputed once, so each call is one dict lookup (a
    faster variant of LC-Rec's ``get_prefix_allowed_tokens_fn``, which is level-wise and allows non-items).
    ``fallback_token_id`` (EOS) is returned for complete or impossible prefixes.
    """
    table: dict[tuple[int, ...], list[int]] = {}
    toks = trie.item_tokens.cpu().tolist()
    for row in toks:
        for t in range(len(row)):
            table.setdefault(tuple(row[:t]), [])
    for prefix in list(table):
        table[prefix] = trie.allowed_tokens(list(prefix))
    fallback = [int(fallback_token_id)]

    def fn(batch_id: int, input_ids: torch.Tensor) -> list[int]:
        return table.get(tuple(input_ids[prompt_len:].tolist()), fallback)

    return fn


@torch.no_grad()
def hf_generate_items(
    model,
    prompts: Sequence[Sequence[int]],
    trie: ItemTrie,
    num_beams: int,
    k: int | None = None,
    pad_token_id: int = 0,
    eos_token_id: int = 1,
    batch_size: int = 16,
) -> DecodeResult:
    """Top-``k`` items per user with ``model.generate(num_beams=..., prefix_allowed_tokens_fn=...)``.

    Prompts are left-padded per batch of ``batch_size`` users in the given order. Hypotheses that are not a
    complete, real item or that repeat one (Hugging Face pads the beam with them when too few exist) are
    dropped. Returns items ``[U, k]`` (-1 padded) and ``sequences_scores`` (sum of log-probabilities).
    """
    k = num_beams if k is None else k
    L = trie.n_levels
    device = next(model.parameters()).device
    items = torch.full((len(prompts), k), -1, dtype=torch.int64)
    scores = torch.full((len(prompts), k), float("-inf"))
    leaf = {tuple(r): i for i, r in enumerate(trie.item_tokens.cpu().tolist())}
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        ids, attn = left_pad(batch, pad_token_id)
        P = ids.shape[1]
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=attn.to(device),
            num_beams=num_beams,
            num_return_sequences=num_beams,
            do_sample=False,
            max_new_tokens=L,
            length_penalty=0.0,
            early_stopping=True,
            prefix_allowed_tokens_fn=prefix_allowed_tokens_fn(trie, P, eos_token_id),
            pad_token_id=pad_token_id,
            eos_token_id=eos_token_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
        seqs = out.sequences[:, P:].view(len(batch), num_beams, -1).cpu()
        sc = out.sequences_scores.view(len(batch), num_beams).cpu()
        for u in range(len(batch)):
            seen, j = set(), 0
            for b in range(num_beams):
                item = leaf.get(tuple(seqs[u, b, :L].tolist()))
                if item is None or item in seen or not torch.isfinite(sc[u, b]) or sc[u, b] < -1e8 or j >= k:
                    continue
                seen.add(item)
                items[start + u, j], scores[start + u, j] = item, sc[u, b]
                j += 1
    return DecodeResult(items=items, scores=scores)
