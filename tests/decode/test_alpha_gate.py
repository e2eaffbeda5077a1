"""decode.alpha_gate="entropy": α scaled per beam by the LM's normalised entropy over its candidates."""

import math

import pytest
import torch
from tiny_lm import make_tiny

from agrec.decode import DecodeConfig, generate_items, mixed_log_probs
from agrec.decode.beam import entropy_gate
from agrec.errors import ConfigError


def test_entropy_gate_hand_computed():
    # beam 0: uniform over 2 valid of 3 -> 1; beam 1: (0.5, 0.25, 0.25) -> 1.5 ln2 / ln3; beam 2: one candidate -> 0
    lp = torch.log(torch.tensor([[0.3, 0.3, 0.4], [0.4, 0.2, 0.2], [0.9, 0.05, 0.05]]))
    valid = torch.tensor([[True, True, False], [True, True, True], [True, False, False]])
    g = entropy_gate(lp, valid)
    assert g.tolist() == pytest.approx([1.0, 1.5 * math.log(2) / math.log(3), 0.0], rel=1e-6)


def test_tensor_alpha_is_eq4_per_beam():
    lp = torch.log(torch.tensor([[0.5, 0.2], [0.5, 0.2], [0.5, 0.2]]))
    pg = torch.tensor([[0.7, 0.3]] * 3)
    valid = torch.ones(3, 2, dtype=torch.bool)
    on = torch.tensor([True, True, True])
    a = torch.tensor([0.4, 0.0, 1.0])
    lhat, lpl = mixed_log_probs(lp, pg, on, valid, alpha=a)
    assert lhat[0].exp().tolist() == pytest.approx([0.6 * 0.5 + 0.4 * 0.7, 0.6 * 0.2 + 0.4 * 0.3], rel=1e-6)
    assert torch.equal(lhat[1], lpl[1])                  # α = 0: p_LLM bit for bit
    assert lhat[2].exp().tolist() == pytest.approx([0.7, 0.3], rel=1e-6)
    same, _ = mixed_log_probs(lp, pg, on, valid, alpha=0.4)
    both, _ = mixed_log_probs(lp, pg, on, valid, alpha=torch.full((3,), 0.4))
    assert torch.allclose(same, both, atol=0, rtol=1e-6)


def test_gate_needs_prob_mixing():
    with pytest.raises(ConfigError, match="alpha_gate='entropy'.*needs mix='prob'"):
        DecodeConfig(alpha=0.4, mix="logit", alpha_gate="entropy")
    with pytest.raises(ConfigError, match="decode.alpha_gate must be one of"):
        DecodeConfig(alpha_gate="confidence")


def test_gated_decode_lies_between_lm_and_plain_mixing():
    """The gate only ever lowers α: with every gate value in [0, 1], the traced p̂ of each step is Eq. 4 at
    α·gate with gate = the LM's normalised entropy at that state, recomputed from the trace."""
    tiny = make_tiny()
    g = torch.Generator().manual_seed(1)
    U = len(tiny.prompts)
    items = torch.stack([torch.randperm(tiny.trie.n_items, generator=g)[:5] for _ in range(U)])
    scores = torch.sort(torch.randn(U, 5, generator=g), dim=1, descending=True).values
    cfg = DecodeConfig(alpha=0.8, beam_size=6, top_n=5, alpha_gate="entropy")
    out = generate_items(tiny.model, tiny.prompts, tiny.trie, fsm_inputs=(items, scores), cfg=cfg, trace=True)
    plain = generate_items(tiny.model, tiny.prompts, tiny.trie, fsm_inputs=(items, scores),
                           cfg=DecodeConfig(alpha=0.8, beam_size=6, top_n=5), trace=True)
    tr = out.trace
    ok = out.items >= 0
    on = tr.on & ok.unsqueeze(-1)
    # p̂ = (1 - a) p_LLM + a p_G with 0 <= a <= 0.8 wherever the beam is on the FSM
    a = (tr.p_hat - tr.p_llm) / (tr.p_g - tr.p_llm)
    a = a[on & ((tr.p_g - tr.p_llm).abs() > 1e-3)]
    assert a.numel() > 0 and float(a.min()) >= -1e-4 and float(a.max()) <= 0.8 + 1e-4
    assert float(a.max()) < 0.8 - 1e-3                      # the gate did lower α somewhere
    assert not torch.equal(out.items, plain.items) or not torch.equal(out.scores, plain.scores)
