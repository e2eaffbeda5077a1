"""Code tokens in the LM vocabulary: add them to a tokenizer and map items to token ids.

Every token of the code table (``<a_0>`` … ``<d_255>``) becomes one vocabulary entry. They are added
as ordinary (not special) tokens with ``normalized=False``, so ``decode`` shows them and text like
``"<a_3><b_7>"`` tokenizes to exactly those two ids with any backbone tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agrec.errors import AgrecError
from agrec.semantic_ids.codes import CodeTable


@dataclass
class CodeVocab:
    """Vocabulary ids of the code tokens.

    Attributes:
        level_token_ids: per level ``l``, ``LongTensor[codebook_sizes[l]]``: the id of code ``c`` at
            index ``c``.
        item_token_ids: ``LongTensor[n_items, n_levels]``: the ids of each item's code tokens.
        added: how many of the tokens were new to the tokenizer (the rest already existed).
    """

    level_token_ids: list[torch.Tensor]
    item_token_ids: torch.Tensor
    added: int = 0

    @property
    def n_levels(self) -> int:
        return len(self.level_token_ids)

    @property
    def token_ids(self) -> list[int]:
        """All code-token ids, level by level (the embedding rows trained besides LoRA)."""
        return [int(i) for ids in self.level_token_ids for i in ids]


def _vocab_from_ids(codes: CodeTable, ids: list[int], added: int) -> CodeVocab:
    level_ids, start = [], 0
    for k in codes.codebook_sizes:
        level_ids.append(torch.tensor(ids[start : start + k], dtype=torch.long))
        start += k
    item_ids = (
        torch.stack([level_ids[lvl][torch.from_numpy(codes.codes[:, lvl])] for lvl in range(codes.n_levels)], dim=1)
        if codes.n_items
        else torch.zeros((0, codes.n_levels), dtype=torch.long)
    )
    return CodeVocab(level_token_ids=level_ids, item_token_ids=item_ids.contiguous(), added=added)


def add_code_tokens(tokenizer, codes: CodeTable) -> CodeVocab:
    """Add every token of ``codes`` to ``tokenizer`` (in place) and return their ids.

    Tokens the tokenizer already has (a checkpoint extended before) keep their ids.
    """
    from tokenizers import AddedToken

    tokens = codes.all_tokens()
    added = tokenizer.add_tokens(
        [AddedToken(t, normalized=False, special=False, single_word=False, lstrip=False, rstrip=False) for t in tokens]
    )
    return code_vocab(tokenizer, codes, added=added)


def code_vocab(tokenizer, codes: CodeTable, added: int = 0) -> CodeVocab:
    """The ids of ``codes``' tokens in an already extended tokenizer; an :class:`AgrecError` names
    the first token it lacks (a tokenizer saved for another code table)."""
    tokens = codes.all_tokens()
    ids = tokenizer.convert_tokens_to_ids(tokens)
    unk = tokenizer.unk_token_id
    for tok, i in zip(tokens, ids, strict=True):
        if i is None or (unk is not None and i == unk):
            raise AgrecError(f"the tokenizer has no token {tok!r}: it was not extended with this code table")
    if len(set(ids)) != len(ids):
        raise AgrecError("two code tokens share one vocabulary id in this tokenizer")
    return _vocab_from_ids(codes, [int(i) for i in ids], added)


def resize_embeddings(model, n_tokens: int, seed: int, mean_resizing: bool = True) -> None:
    """Grow the model's embeddings (and tied/untied output layer) to ``n_tokens`` rows.

    New rows are drawn around the mean of the old ones (transformers' ``mean_resizing``) under a
    fixed seed, so a run is reproducible; they are trained afterwards either way. Without
    ``mean_resizing`` (a model whose new rows are about to be overwritten from a checkpoint) they are
    left as the default initialisation, which is much cheaper for large vocabularies.
    """
    if model.get_input_embeddings().weight.shape[0] == n_tokens:
        return
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model.resize_token_embeddings(n_tokens, mean_resizing=mean_resizing)


def item_codes_text(vocab: CodeVocab, tokenizer, item: int) -> str:
    """The item's code tokens as text, e.g. ``"<a_3><b_7><c_1>"``."""
    return "".join(tokenizer.convert_ids_to_tokens(vocab.item_token_ids[item].tolist()))
