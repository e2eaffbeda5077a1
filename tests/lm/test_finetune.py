import pytest
import torch

from agrec.errors import ConfigError
from agrec.lm.backbones import load_pretrained
from agrec.lm.config import LoRASettings
from agrec.lm.finetune import apply_lora, embeddings_tied, merged_for_inference, parameter_counts, unwrap
from agrec.lm.loss import SupervisedNLL
from agrec.lm.vocab import add_code_tokens, resize_embeddings

from lm_helpers import TOY_CODES, make_standin_checkpoint


def extended(tmp_path, tied):
    model, tok = load_pretrained(make_standin_checkpoint(tmp_path / f"ck{tied}", tied=tied))
    n_old = len(tok)
    vocab = add_code_tokens(tok, TOY_CODES)
    resize_embeddings(model, len(tok), seed=0)
    return model, tok, vocab, n_old


@pytest.mark.parametrize("tied", [True, False])
def test_lora_trains_adapters_and_exactly_the_code_token_rows(tmp_path, tied):
    model, tok, vocab, n_old = extended(tmp_path, tied)
    assert embeddings_tied(model) is tied
    before = {k: v.clone() for k, v in model.state_dict().items()}
    peft_model = apply_lora(model, LoRASettings(r=4, alpha=8, dropout=0.0), vocab.token_ids)
    names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or "trainable_tokens" in n for n in names)
    assert sum("trainable_tokens" in n for n in names) == (1 if tied else 2)
    n_rows = sum(p.numel() for n, p in peft_model.named_parameters() if "trainable_tokens" in n and p.requires_grad)
    assert n_rows == (1 if tied else 2) * len(vocab.token_ids) * model.config.hidden_size
    # one optimizer step on a sequence that uses the code tokens
    opt = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=1.0)
    ids = torch.tensor([[1, *vocab.item_token_ids[0].tolist(), *vocab.item_token_ids[2].tolist()]])
    loss = SupervisedNLL(peft_model)(ids, torch.ones_like(ids), ids)
    loss.backward()
    opt.step()
    merged = merged_for_inference(peft_model)
    emb = merged.get_input_embeddings().weight
    old_emb = before["model.embed_tokens.weight"]
    assert torch.equal(emb[:n_old], old_emb[:n_old])          # pretrained rows untouched
    assert not torch.equal(emb[n_old:], old_emb[n_old:])      # code rows trained
    head = merged.get_output_embeddings().weight
    if not tied:
        old_head = before["lm_head.weight"]
        assert torch.equal(head[:n_old], old_head[:n_old]) and not torch.equal(head[n_old:], old_head[n_old:])
    else:
        assert head is emb


def test_merged_model_computes_what_the_adapter_model_computes(tmp_path):
    model, tok, vocab, _ = extended(tmp_path, True)
    peft_model = apply_lora(model, LoRASettings(r=4, alpha=8, dropout=0.0), vocab.token_ids)
    with torch.no_grad():  # make the adapters non-trivial
        for n, p in peft_model.named_parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    peft_model.eval()
    ids = torch.tensor([[1, 5, 9, *vocab.item_token_ids[1].tolist()]])
    with torch.no_grad():
        want = peft_model(input_ids=ids).logits
        got = merged_for_inference(peft_model)(input_ids=ids).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_parameter_counts_count_tied_weights_once(tmp_path):
    model, tok, vocab, _ = extended(tmp_path, True)
    n = sum(p.numel() for p in model.parameters())  # torch also yields a tied weight once
    assert parameter_counts(model) == {"total": n, "trainable": n}
    e = model.get_input_embeddings().weight.numel()
    assert n == sum(p.numel() for name, p in model.named_parameters(remove_duplicate=False)) - e
    peft_model = apply_lora(model, LoRASettings(r=2, alpha=4), vocab.token_ids)
    counts = parameter_counts(peft_model)
    assert 0 < counts["trainable"] < counts["total"] and unwrap(peft_model) is model


def test_unknown_lora_target_is_named(tmp_path):
    model, tok, vocab, _ = extended(tmp_path, True)
    with pytest.raises(ConfigError, match=r"no module\(s\) \['c_attn'\]"):
        apply_lora(model, LoRASettings(target_modules=["q_proj", "c_attn"]), vocab.token_ids)
