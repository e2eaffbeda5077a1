"""What the LM stage hands to the decoder: model, tokenizer, item -> token ids, and the prompt."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from agrec.lm.prompts import PromptFormat
from agrec.semantic_ids.codes import CodeTable


@dataclass
class LMBundle:
    """A fine-tuned LM ready for decoding.

    Attributes:
        model: a transformers causal LM in eval mode (LoRA and the trained code-token rows merged
            into its weights); call it like any HF causal LM (``input_ids``, ``attention_mask``,
            ``past_key_values``, ``use_cache=True``).
        tokenizer: its tokenizer, code tokens included.
        item_token_ids: ``LongTensor[n_items, n_levels]``: the vocabulary id of each item's codes.
        codes: the code table the model was trained with.
        prompt: the prompt format (see :mod:`agrec.lm.prompts`).
        checkpoint: the checkpoint folder the model was loaded from.
        manifest: the checkpoint's manifest (backbone, config, code-table fingerprint).
    """

    model: Any
    tokenizer: Any
    item_token_ids: torch.Tensor
    codes: CodeTable
    prompt: PromptFormat
    checkpoint: Path
    manifest: dict = field(default_factory=dict)

    def prompt_ids(self, history: Sequence[int]) -> list[int]:
        """Token ids of the prompt asking for the item after ``history`` (item indices, oldest
        first; only the last ``max_history`` are used). It ends exactly where the first code token
        of the answer is generated."""
        return self.prompt.prompt_ids(history)

    @property
    def n_items(self) -> int:
        return int(self.item_token_ids.shape[0])

    @property
    def n_levels(self) -> int:
        return int(self.item_token_ids.shape[1])

    @property
    def level_token_ids(self) -> list[torch.Tensor]:
        """Per level ``l``, ``LongTensor[codebook_sizes[l]]``: the id of code ``c`` at index ``c``."""
        return [ids.clone() for ids in self.prompt.vocab.level_token_ids]

    @property
    def eos_token_id(self) -> int | None:
        return self.tokenizer.eos_token_id

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    @property
    def max_history(self) -> int:
        return self.prompt.max_history
