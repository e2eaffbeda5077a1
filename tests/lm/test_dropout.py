"""lm.tiny.dropout: GPT-2-style embedding and residual dropout on the tiny Llama, in training only."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from agrec.canonical import keyed
from agrec.errors import ConfigError
from agrec.lm.build import build_fresh
from agrec.lm.config import TinyLlamaConfig
from agrec.lm.dropout import add_hidden_dropout

from lm_helpers import TOY_CODES, tiny_cfg


def _hooked(model: torch.nn.Module) -> list[str]:
    return sorted(name for name, m in model.named_modules() if m._forward_hooks)


def test_fresh_tiny_model_gets_one_hook_per_embedding_and_block_output():
    model = build_fresh(tiny_cfg(tiny=dataclasses.replace(tiny_cfg().tiny, dropout=0.1)), TOY_CODES, seed=0).model
    assert _hooked(model) == [
        "model.embed_tokens",
        "model.layers.0.mlp.down_proj",
        "model.layers.0.self_attn.o_proj",
        "model.layers.1.mlp.down_proj",
        "model.layers.1.self_attn.o_proj",
    ]
    assert _hooked(build_fresh(tiny_cfg(), TOY_CODES, seed=0).model) == []  # default 0: no hooks at all


def test_lora_model_gets_its_hooks_on_the_wrappers_so_the_adapter_output_is_dropped_too():
    cfg = tiny_cfg(finetune="lora", tiny=dataclasses.replace(tiny_cfg().tiny, dropout=0.1))
    hooked = _hooked(build_fresh(cfg, TOY_CODES, seed=0).model)
    # one hook per site, on the module whose output includes the LoRA branch (not its base_layer or lora_A)
    assert len(hooked) == 5
    assert all(h.endswith(("model.embed_tokens", "self_attn.o_proj", "mlp.down_proj")) for h in hooked)


def test_dropout_acts_in_training_only():
    cfg = tiny_cfg()
    plain = build_fresh(cfg, TOY_CODES, seed=0).model
    dropped = build_fresh(tiny_cfg(tiny=dataclasses.replace(cfg.tiny, dropout=0.5)), TOY_CODES, seed=0).model
    ids = torch.tensor([[1, 4, 9, 5, 10, 7]])
    plain.eval(), dropped.eval()
    # eval: the very same function as the model without dropout
    assert torch.equal(plain(ids).logits, dropped(ids).logits)
    dropped.train()
    torch.manual_seed(0)
    emb = dropped.model.embed_tokens(ids)
    clean = plain.model.embed_tokens(ids)
    kept = emb != 0
    # inverted dropout: every kept entry is the clean one scaled by 1 / (1 - p) = 2, the others are zero
    assert torch.equal(emb[kept], clean[kept] * 2.0)
    assert 0 < int(kept.sum()) < kept.numel()
    assert not torch.equal(plain(ids).logits, dropped(ids).logits)


def test_bad_probability_is_refused_with_its_key():
    with pytest.raises(ConfigError, match=r"lm\.tiny\.dropout must be in \[0, 1\), got 1\.0"):
        TinyLlamaConfig(dropout=1.0)
    with pytest.raises(ValueError, match="not a Llama"):
        add_hidden_dropout(torch.nn.Linear(2, 2), 0.1)


def test_zero_dropout_leaves_the_lm_key_unchanged():
    # neutral: runs trained before the option existed stay current; setting it is a new configuration
    assert "dropout" not in keyed(tiny_cfg())["tiny"]
    assert keyed(tiny_cfg(tiny=dataclasses.replace(tiny_cfg().tiny, dropout=0.1)))["tiny"]["dropout"] == 0.1
