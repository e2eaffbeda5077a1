"""The training objective: summed token NLL over the supervised positions (paper Eq. 8).

Only supervised positions need logits. For a pretrained backbone with an instruction prompt that
is a few tokens out of ~150, and the LM head (vocabulary x hidden) is a large share of the compute,
so for the standard decoder-only architectures the head is applied to the gathered hidden states of
those positions only. Other architectures (whose head may scale or soft-cap logits) go through the
model's own forward.

Packed micro-batches (``lm.batching: pack``) pass ``position_ids`` and ``segment_ids``; the block-diagonal
causal mask is built here, in the form the model's attention takes (:mod:`agrec.lm.batching`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agrec.lm.batching import attn_implementation, block_causal_mask
from agrec.lm.finetune import unwrap
from agrec.lm.prompts import IGNORE

# *ForCausalLM classes whose logits are exactly lm_head(final hidden state).
PLAIN_HEAD_ARCHS = frozenset(
    {
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "Phi3ForCausalLM",
        "OlmoForCausalLM",
        "Olmo2ForCausalLM",
        "GraniteForCausalLM",
    }
)


class SupervisedNLL(nn.Module):
    """Wraps a causal LM so that one ``forward`` gives the summed NLL of the supervised tokens.

    A module of its own so that DDP can wrap it: DDP synchronises gradients only for computations
    that go through the wrapped module's ``forward``.
    """

    def __init__(self, model: nn.Module, label_smoothing: float = 0.0):
        super().__init__()
        self.model = model
        # lm.label_smoothing: the training loss spreads this much of each target's mass uniformly over the
        # vocabulary (F.cross_entropy's label_smoothing); 0 is the paper's NLL. Validation stays plain NLL.
        self.label_smoothing = label_smoothing
        base = unwrap(model)
        self.fast = type(base).__name__ in PLAIN_HEAD_ARCHS and hasattr(base, "model")

    def supervised_logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        labels: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits that predict the supervised tokens and those tokens.

        Args:
            input_ids: ``[B, T]`` token ids.
            attention_mask: ``[B, T]``, 1 on real tokens (None for a packed batch).
            labels: ``[B, T]``, :data:`IGNORE` where unsupervised.
            position_ids: ``[B, T]`` positions within each segment of a packed batch.
            segment_ids: ``[B, T]`` segment of each token of a packed batch (``attention_mask`` None): each
                token attends only to earlier tokens of its own segment.
        Returns:
            ``(logits [N, V], targets [N])`` in row-major order of the positions, where ``N`` is the
            number of supervised positions (position ``t`` predicts ``labels[:, t + 1]``).
        """
        targets = labels[:, 1:]
        keep = targets != IGNORE
        extra = {}
        if segment_ids is not None:
            attention_mask = block_causal_mask(segment_ids, attn_implementation(self.model))
            extra["position_ids"] = position_ids
        if self.fast:
            base = unwrap(self.model)
            hidden = base.model(
                input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **extra
            ).last_hidden_state
            logits = base.get_output_embeddings()(hidden[:, :-1][keep])
        else:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **extra).logits
            logits = logits[:, :-1][keep]
        return logits, targets[keep]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        labels: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Summed NLL (a scalar, fp32) of the supervised tokens of the batch (padded or packed); with
        ``label_smoothing`` ε, the summed ``(1 - ε)·NLL + ε·mean over the vocabulary of -log p``."""
        logits, targets = self.supervised_logits(input_ids, attention_mask, labels, position_ids, segment_ids)
        return F.cross_entropy(logits.float(), targets, reduction="sum", label_smoothing=self.label_smoothing)
