"""Assemble a trainable LM: backbone + code tokens + (full | LoRA) — fresh, or from a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from agrec.lm.backbones import (
    BackboneError,
    build_tiny_model,
    build_tiny_tokenizer,
    check_local_checkpoint,
    load_pretrained,
    resolve_backbone_path,
)
from agrec.lm.checkpoint import read_manifest
from agrec.lm.config import LMConfig
from agrec.lm.dropout import add_hidden_dropout
from agrec.lm.finetune import prepare_for_training
from agrec.lm.item_embedding import add_item_embedding, load_item_embedding
from agrec.lm.vocab import CodeVocab, add_code_tokens, code_vocab, resize_embeddings
from agrec.semantic_ids.codes import CodeTable

TINY_BASE = "base"  # sub-folder of a checkpoint holding a tiny backbone's from-scratch weights (LoRA only)


@dataclass
class BuiltLM:
    """A model ready for training or inference and what describes it."""

    model: torch.nn.Module  # transformers model, or a peft model wrapping one
    tokenizer: Any  # a transformers tokenizer
    vocab: CodeVocab
    backbone_path: Path | None  # the pretrained checkpoint it starts from (None for tiny)
    base_model: torch.nn.Module | None = None  # tiny + LoRA: the from-scratch base, saved with checkpoints


def build_fresh(
    cfg: LMConfig, codes: CodeTable, seed: int, base_dir: Path | None = None, log: Callable[[str], None] = print
) -> BuiltLM:
    """Backbone of ``cfg.backbone`` with ``codes``' tokens added and the trainable parts set up."""
    path = resolve_backbone_path(cfg, base_dir, log=log)
    if path is None:
        tokenizer = build_tiny_tokenizer()
        vocab = add_code_tokens(tokenizer, codes)
        model = build_tiny_model(cfg.tiny, tokenizer, seed)
    else:
        model, tokenizer = load_pretrained(path, cfg.dtype)
        vocab = add_code_tokens(tokenizer, codes)
        resize_embeddings(model, len(tokenizer), seed)
    base = model if (path is None and cfg.finetune_mode == "lora") else None
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    model = prepare_for_training(model, cfg.finetune_mode, cfg.lora, vocab.token_ids)
    if path is None:
        if cfg.tiny.item_embedding:  # before the dropout hook, which then drops from the sum
            add_item_embedding(model, vocab.item_token_ids, cfg.tiny.item_dropout)
        add_hidden_dropout(model, cfg.tiny.dropout)
    return BuiltLM(model=model, tokenizer=tokenizer, vocab=vocab, backbone_path=path, base_model=base)


def load_checkpoint_model(
    folder: Path,
    cfg: LMConfig,
    codes: CodeTable,
    base_dir: Path | None = None,
    trainable: bool = False,
    log: Callable[[str], None] = print,
) -> BuiltLM:
    """The model and tokenizer saved in checkpoint ``folder``, through ``from_pretrained``.

    A full model loads with ``AutoModelForCausalLM.from_pretrained(folder)``; an adapter with
    ``PeftModel.from_pretrained(base, folder)`` on the backbone (resized to the checkpoint's
    vocabulary). ``trainable`` keeps the adapter trainable (resume); otherwise the model is in eval
    mode. Call :func:`agrec.lm.checkpoint.check_manifest` first to refuse a mismatched checkpoint.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = read_manifest(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    vocab = code_vocab(tokenizer, codes)
    path = None
    if manifest["finetune"] == "full":
        check_local_checkpoint(folder)
        dtype = (
            torch.float32
            if cfg.is_tiny
            else {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.dtype]
        )
        model: Any = AutoModelForCausalLM.from_pretrained(
            folder, dtype=dtype, use_safetensors=True, local_files_only=True, trust_remote_code=False
        )
        if manifest["backbone"] != "tiny":
            path = resolve_backbone_path(cfg, base_dir, log=log)
        elif cfg.tiny.item_embedding:
            load_item_embedding(model, folder, vocab.item_token_ids, cfg.tiny.item_dropout)
    else:
        from peft import PeftModel

        if (folder / TINY_BASE).is_dir():
            base, _ = load_pretrained(folder / TINY_BASE, "float32")
        else:
            path = resolve_backbone_path(cfg, base_dir, log=log)
            if path is None:
                raise BackboneError(f"{folder}: a LoRA checkpoint of 'tiny' must keep its base model in {TINY_BASE}/")
            base, _ = load_pretrained(path, cfg.dtype)
            # every added row is a code token, whose trained values the adapter holds
            resize_embeddings(base, len(tokenizer), seed=0, mean_resizing=False)
        if trainable and cfg.gradient_checkpointing:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.config.use_cache = False
        model = PeftModel.from_pretrained(base, folder, is_trainable=trainable)
    if trainable:
        if manifest["finetune"] == "full":
            if cfg.gradient_checkpointing:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.config.use_cache = False
            for p in model.parameters():
                p.requires_grad_(True)
        if manifest["backbone"] == "tiny":
            add_hidden_dropout(model, cfg.tiny.dropout)  # hooks are not saved: a resumed run gets them again
        model.train()
    else:
        model.eval()
    return BuiltLM(model=model, tokenizer=tokenizer, vocab=vocab, backbone_path=path)
