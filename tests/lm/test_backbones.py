import json

import pytest
import torch

from agrec.lm.backbones import (BackboneError, build_tiny_model, build_tiny_tokenizer, check_local_checkpoint,
                                load_pretrained, resolve_backbone_path)
from agrec.lm.config import LMConfig, TinyLlamaConfig
from agrec.lm.vocab import add_code_tokens

from lm_helpers import TOY_CODES, make_standin_checkpoint


def test_tiny_is_a_seeded_llama_over_the_code_vocabulary():
    tok = build_tiny_tokenizer()
    add_code_tokens(tok, TOY_CODES)
    cfg = TinyLlamaConfig(hidden_size=16, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=32)
    a, b = build_tiny_model(cfg, tok, seed=1), build_tiny_model(cfg, tok, seed=1)
    assert type(a).__name__ == "LlamaForCausalLM"
    assert a.config.vocab_size == len(tok) == 11 and a.config.num_hidden_layers == 2
    assert a.get_output_embeddings().weight is a.get_input_embeddings().weight  # tied
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = build_tiny_model(cfg, tok, seed=2)
    assert not torch.equal(a.model.layers[0].mlp.up_proj.weight, c.model.layers[0].mlp.up_proj.weight)


def test_path_backbone_is_relative_to_the_profile_and_loads_offline(tmp_path):
    make_standin_checkpoint(tmp_path / "models" / "standin")
    cfg = LMConfig(backbone="path:models/standin")
    path = resolve_backbone_path(cfg, tmp_path)
    assert path == (tmp_path / "models" / "standin").resolve()
    model, tok = load_pretrained(path)
    assert model.config.vocab_size == len(tok) and tok.pad_token == "<|im_end|>"


def test_unsafe_or_incomplete_checkpoints_are_refused(tmp_path):
    with pytest.raises(BackboneError, match="does not exist"):
        check_local_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackboneError, match="no config.json"):
        check_local_checkpoint(tmp_path / "empty")
    ck = make_standin_checkpoint(tmp_path / "ck")
    check_local_checkpoint(ck)  # fine
    cfg = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**cfg, "auto_map": {"AutoModelForCausalLM": "m.Model"}}))
    with pytest.raises(BackboneError, match="custom code .* never enables trust_remote_code"):
        check_local_checkpoint(ck)
    (ck / "config.json").write_text(json.dumps(cfg))
    (ck / "model.safetensors").rename(ck / "pytorch_model.bin")
    with pytest.raises(BackboneError, match=r"no safetensors weights \(found pytorch_model.bin\)"):
        check_local_checkpoint(ck)


def test_backbone_spec_is_validated():
    from agrec.errors import ConfigError

    with pytest.raises(ConfigError, match="lm.backbone must be"):
        LMConfig(backbone="llama")
    with pytest.raises(ConfigError, match="needs a pretrained backbone"):
        LMConfig(backbone="tiny", prompt="lcrec")
    assert LMConfig().finetune_mode == "full" and LMConfig(backbone="smollm2-135m").finetune_mode == "lora"
    assert LMConfig().prompt_format == "compact" and LMConfig(backbone="path:x").prompt_format == "lcrec"
