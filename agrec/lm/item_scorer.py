"""The LM's own item head as a top-n scorer (evaluation scorer ``lm``).

With ``lm.tiny.item_loss`` the LM is trained to score every item from its final hidden state at the position
right before an item's first code, by a dot product with its item vectors (agrec/lm/loss.py). Read at the end
of a user's prompt (the last code of the last history item: exactly such a position), that is a full-softmax
next-item model, SASRec's kind, inside the generative LM. As a :class:`agrec.scorers.TopNScorer` it gives the
decode stage a row that ranks by it alone ("LM items only") and an AGRec row in which it steers the LM's own
code beam through the rankable FSM ("AGRec (lm)"): one model both generates and guides, with no auxiliary
network. The scores for ``"valid"`` read the training prefix, for ``"test"`` the prefix plus the validation item
(:meth:`agrec.data.split.LeaveOneOutSplit.history`), through the same prompts the decoder uses.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from agrec.errors import AgrecError
from agrec.lm.item_embedding import item_embedding
from agrec.lm.prompts import left_pad


class LMItemScorer:
    """Scores ``[U, n_items]``: the final hidden state at each user's prompt end, dotted with the item vectors.

    Args:
        model: the trained causal LM (a plain-head ``*ForCausalLM`` with ``.model``, e.g. the tiny Llama) with an
            item embedding (:func:`agrec.lm.item_embedding.add_item_embedding`); it is used in eval mode.
        split: the leave-one-out split (``history(user, target)``).
        prompt_fn: a history (item ids) -> the decoder's prompt token ids (``LMBundle.prompt_ids``).
        pad_token_id: the id that left-pads a batch (masked out; it never reaches a real position).
        batch_size: prompts per forward pass.
    """

    def __init__(
        self,
        model: Any,
        split: Any,
        prompt_fn: Callable[[Any], list[int]],
        pad_token_id: int,
        batch_size: int = 64,
    ):
        if item_embedding(model) is None or not hasattr(model, "model"):
            raise AgrecError(
                "evaluation scorer 'lm' needs the LM's item head: a tiny LM trained with lm.tiny.item_embedding "
                f"and lm.tiny.item_loss > 0 (got a {type(model).__name__} without item vectors)"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.split, self.prompt_fn = model, split, prompt_fn
        self.pad_token_id, self.batch_size = pad_token_id, batch_size

    def score_users(self, users: np.ndarray, target: str) -> torch.Tensor:
        """Scores ``[U, n_items]`` (float32, CPU) of ``users [U]`` for ``target`` (``"valid"`` or ``"test"``)."""
        from agrec.scorers import check_target

        check_target(target)
        weight = item_embedding(self.model)
        assert weight is not None  # checked in __init__
        prompts = [self.prompt_fn(self.split.history(int(u), target)) for u in np.asarray(users)]
        device = weight.device
        out = [torch.zeros(0, int(weight.shape[0]))]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for s in range(0, len(prompts), self.batch_size):
                    chunk = prompts[s : s + self.batch_size]
                    if min(len(p) for p in chunk) < 1:
                        raise AgrecError("evaluation scorer 'lm': an empty prompt (a user without a history)")
                    ids, mask = left_pad(chunk, self.pad_token_id)  # every prompt ends in the last column
                    positions = (mask.cumsum(1) - 1).clamp_min(0)  # each prompt's own 0, 1, ... as unpadded
                    hidden = self.model.model(
                        input_ids=ids.to(device),
                        attention_mask=mask.to(device),
                        position_ids=positions.to(device),
                        use_cache=False,
                    ).last_hidden_state
                    out.append((hidden[:, -1] @ weight.T).float().cpu())  # [b, n_items]
        finally:
            self.model.train(was_training)
        return torch.cat(out)
