"""What is trained: every weight (``full``) or LoRA adapters plus the code-token rows (``lora``).

The authors' released code adds the code tokens, resizes the embeddings and then trains LoRA only,
so the new rows keep their random initialisation (docs/design.md §3). Here the rows are trained with peft's
``trainable_token_indices`` (a ``TrainableTokensLayer`` that holds just those rows): the adapter
checkpoint stays small, and with tied input/output embeddings peft ties the LM head's rows to them.
An untied LM head gets its own trainable rows.
"""

from __future__ import annotations

from typing import Any

import torch

from agrec.errors import ConfigError
from agrec.lm.config import LoRASettings


def _module_name(model, module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise ValueError("module not found in model")


def embeddings_tied(model) -> bool:
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def apply_lora(model, lora: LoRASettings, token_ids: list[int]):
    """Wrap ``model`` in a peft LoRA model whose trainable parameters are the LoRA matrices and the
    rows ``token_ids`` of the input (and output) embeddings. Returns the ``PeftModel``."""
    from peft import LoraConfig, TaskType, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in lora.target_modules if t not in names]
    if missing:
        raise ConfigError(f"lm.lora.target_modules: the backbone ({type(model).__name__}) has no module(s) {missing}")
    emb_name = _module_name(model, model.get_input_embeddings()).rsplit(".", 1)[-1]
    rows: dict[str, list[int]] = {emb_name: list(token_ids)}
    if not embeddings_tied(model) and model.get_output_embeddings() is not None:
        rows[_module_name(model, model.get_output_embeddings()).rsplit(".", 1)[-1]] = list(token_ids)
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
        task_type=TaskType.CAUSAL_LM,
        trainable_token_indices=rows,
    )
    return get_peft_model(model, config)


def prepare_for_training(model, mode: str, lora: LoRASettings, token_ids: list[int]):
    """``full``: every parameter trainable (returned as is); ``lora``: :func:`apply_lora`."""
    if mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if mode == "lora":
        return apply_lora(model, lora, token_ids)
    raise ConfigError(f"lm.finetune must be 'full' or 'lora', got {mode!r}")


def parameter_counts(model) -> dict[str, int]:
    """Distinct parameters (tied weights counted once): ``total`` and ``trainable``."""
    seen: set[int] = set()
    total = trainable = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return {"total": total, "trainable": trainable}


def merged_for_inference(model):
    """A plain transformers model for decoding: LoRA and the trained rows merged into the weights,
    in eval mode. A model without adapters is returned as is (in eval mode)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def unwrap(model: Any) -> Any:
    """The transformers ``*ForCausalLM`` inside a DDP and/or peft wrapper (peft's layers stay in it)."""
    from peft import PeftModel

    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    if isinstance(model, PeftModel):
        model = model.get_base_model()
    return model
