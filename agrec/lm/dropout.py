"""Hidden dropout for a Llama, which has none of its own: GPT-2's embedding and residual dropout as hooks.

``lm.tiny.dropout`` zeroes, while the model is training, a share of the token embeddings and of each
attention and MLP block's output before that output is added to the residual stream (``self_attn.o_proj``
and ``mlp.down_proj``). Hooks instead of a model subclass keep the checkpoints plain ``LlamaForCausalLM``
folders that ``from_pretrained`` loads; in eval mode the hooks do nothing, so decoding is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.hooks import RemovableHandle

# module-name endings of the outputs that get dropout (a peft model's LoRA layers end the same way)
DROPOUT_SITES = ("embed_tokens", "self_attn.o_proj", "mlp.down_proj")


def add_hidden_dropout(model: torch.nn.Module, p: float) -> list[RemovableHandle]:
    """Register dropout with probability ``p`` on the outputs of every :data:`DROPOUT_SITES` module of
    ``model`` (active only while ``module.training``). Returns the hook handles (none when ``p`` is 0).

    Raises ValueError if ``p`` is outside [0, 1) or the model has none of the sites (not a Llama)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if p == 0.0:
        return []

    def hook(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return F.dropout(output, p, module.training)

    sites = [m for name, m in model.named_modules() if name.endswith(DROPOUT_SITES)]
    if not sites:
        raise ValueError(f"no {', '.join(DROPOUT_SITES)} modules in {type(model).__name__}: not a Llama")
    return [m.register_forward_hook(hook) for m in sites]
