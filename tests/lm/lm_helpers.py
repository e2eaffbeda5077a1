"""Shared fixtures of the LM tests: a toy code table, tiny profiles, stand-in pretrained checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from agrec.lm.config import LMConfig, TinyLlamaConfig
from agrec.lm.prompts import LCREC_FRAME, LCREC_HISTORY_SEP, LCREC_SEQREC_INSTRUCTIONS
from agrec.semantic_ids.codes import CodeTable

# 3 items, 2 levels of sizes (4, 3). With the tiny tokenizer (4 specials) the tokens are
# <a_0..a_3> = ids 4..7 and <b_0..b_2> = ids 8..10, so item 0 = [4, 9], item 1 = [5, 10], item 2 = [7, 8].
TOY_CODES = CodeTable(codes=[[0, 1], [1, 2], [3, 0]], codebook_sizes=(4, 3))


def toy_table(n_items: int = 12, seed: int = 0) -> CodeTable:
    """A collision-free 2-level table for ``n_items`` items (codebooks 4 x 4)."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(16)[:n_items]
    return CodeTable(codes=np.stack([rows // 4, rows % 4], 1), codebook_sizes=(4, 4))


def toy_sequences(n_users: int = 24, n_items: int = 12, seed: int = 0) -> list[np.ndarray]:
    """Users walking through items in a cycle with a random start: a learnable next-item rule."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_users):
        start, n = int(rng.integers(n_items)), int(rng.integers(5, 12))
        out.append(np.array([(start + k) % n_items for k in range(n)], dtype=np.int64))
    return out


def tiny_cfg(**kw) -> LMConfig:
    """A very small tiny-backbone config for fast tests."""
    base = dict(backbone="tiny", epochs=2, batch_size=8, lr=3.0e-3, warmup_ratio=0.0, max_history=5,
                precision="fp32", progress=False, num_threads=1, tiny=TinyLlamaConfig(hidden_size=32, num_layers=2, num_heads=2,
                                                                       num_kv_heads=2, intermediate_size=64))
    base.update(kw)
    return LMConfig(**base)


CODES = toy_table()
SEQS = toy_sequences()


def job(tmp_path: Path, name: str, cfg: LMConfig, codes: CodeTable = CODES, key: str = "k", teacher=None,
        teacher_items=None):
    """A training job of ``cfg`` on the toy sequences (last item held out for validation) in ``tmp_path/name``."""
    from agrec.lm.stage import make_training_job

    return make_training_job(cfg, codes, [s[:-1] for s in SEQS], [s[:-1] for s in SEQS], [int(s[-1]) for s in SEQS],
                             tmp_path / name, seed=7, run_key=key, base_dir=tmp_path, log=lambda s: None,
                             teacher=teacher, teacher_items=teacher_items)


def losses(result) -> list[dict]:
    """The per-step rows without their wall-clock column."""
    return [{k: v for k, v in r.items() if k != "train_time_s"} for r in result.state.steps]


def standin_tokenizer():
    """A small byte-level BPE tokenizer trained on the LC-Rec prompt text (a stand-in for a real
    pretrained tokenizer: words, BOS/EOS/PAD, no code tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    texts = [LCREC_FRAME.format(instruction=i) for i in LCREC_SEQREC_INSTRUCTIONS] + [LCREC_HISTORY_SEP,
                                                                                     "What is the capital of France?"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>")


def make_standin_checkpoint(folder: Path, tied: bool = True, seed: int = 0) -> Path:
    """A tiny *pretrained-looking* Llama checkpoint (safetensors + tokenizer) standing in for
    SmolLM2 / Llama-3.2-1B in tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = standin_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=tied, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
