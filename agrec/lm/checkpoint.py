"""Checkpoints of the LM stage: standard ``save_pretrained`` folders plus what exact resume needs.

A checkpoint folder holds

- the tokenizer (with the code tokens) and either the full model (``config.json`` +
  ``model.safetensors``) or a peft adapter (``adapter_config.json`` + ``adapter_model.safetensors``:
  LoRA matrices and the trained code-token rows); a ``tiny`` backbone trained with LoRA also keeps its
  from-scratch base model in ``base/``;
- ``agrec_lm.json``: the manifest (backbone, code table fingerprint, code-token ids, the training
  config) that :func:`check_manifest` compares with the run that wants to use the checkpoint;
- ``trainer_state.json`` + ``trainer_state.safetensors``: optimizer, scheduler, RNG states of every
  process, step counters and the loss history, for exact resume.

Everything is safetensors or JSON: nothing is unpickled when a checkpoint is read.
"""

from __future__ import annotations

import hashlib
import json
from agrec.canonical import keyed
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from agrec.errors import AgrecError
from agrec.fingerprint import iter_files, sha256_file, short_hash
from agrec.io import atomic_write_json
from agrec.lm.config import LMConfig
from agrec.lm.vocab import CodeVocab
from agrec.semantic_ids.codes import CodeTable

MANIFEST = "agrec_lm.json"
STATE = "trainer_state"
FORMAT_VERSION = 1


class CheckpointMismatch(AgrecError):
    """A checkpoint was trained for another tokenizer, code table or configuration."""


def codes_fingerprint(codes: CodeTable) -> str:
    """SHA-256 (16 hex digits) of the code table's codes and codebook sizes."""
    h = hashlib.sha256()
    h.update(json.dumps(list(codes.codebook_sizes)).encode())
    h.update(np.ascontiguousarray(codes.codes, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def training_config(cfg: LMConfig) -> dict[str, Any]:
    """The lm section's keyed form (:func:`agrec.canonical.keyed`: without the runtime keys, which neither
    invalidate a trained stage nor block a resume): what a trained model depends on."""
    return keyed(cfg)


def make_manifest(
    cfg: LMConfig, codes: CodeTable, vocab: CodeVocab, tokenizer, run_key: str, backbone_path: str | None
) -> dict[str, Any]:
    ids = vocab.token_ids
    return {
        "format": FORMAT_VERSION,
        "backbone": cfg.backbone,
        "backbone_path": backbone_path,
        "finetune": cfg.finetune_mode,
        "prompt": cfg.prompt_format,
        "max_history": cfg.max_history,
        "codes_fingerprint": codes_fingerprint(codes),
        "n_items": codes.n_items,
        "codebook_sizes": list(codes.codebook_sizes),
        "code_token_ids": [ids[0], ids[-1]] if ids else [],
        "code_token_ids_sha": short_hash(ids),
        "vocab_size": len(tokenizer),
        "lm_config": training_config(cfg),
        "run_key": run_key,
    }


CHECKSUMS = "checksums.json"


def write_checksums(folder: Path) -> None:
    """List every file of a checkpoint folder with its size and sha256 (written last, inside the folder)."""

    files = {
        rel: {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for rel, p in iter_files(folder, skip_hidden=False)
        if p.name != CHECKSUMS
    }
    atomic_write_json(folder / CHECKSUMS, files)


def checksum_problems(folder: Path) -> list[str]:
    """What differs from the checkpoint's ``checksums.json`` (empty: intact; a checkpoint written before
    checksums existed is taken as it is)."""

    path = folder / CHECKSUMS
    if not path.is_file():
        return []
    try:
        files = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(files, dict)
    except (OSError, ValueError, AssertionError):
        return [f"{path} is unreadable"]
    out = []
    for rel, meta in files.items():
        p = folder / rel
        if not p.is_file():
            out.append(f"{p} is missing")
        elif p.stat().st_size != meta.get("size") or sha256_file(p) != meta.get("sha256"):
            out.append(f"{p} is damaged (size or sha256 differs)")
    return out


def read_manifest(folder: Path) -> dict[str, Any]:
    p = folder / MANIFEST
    if not p.is_file():
        raise CheckpointMismatch(f"{folder} is not an LM checkpoint of this project: no {MANIFEST}")
    try:
        found = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointMismatch(
            f"{p} is unreadable ({e}); delete the checkpoint folder or retrain with --force"
        ) from None
    if not isinstance(found, dict):
        raise CheckpointMismatch(f"{p} is not a checkpoint manifest (a JSON object)")
    return found


def check_manifest(found: dict[str, Any], expected: dict[str, Any], where: Path) -> None:
    """Raise :class:`CheckpointMismatch` saying what differs (code table, tokenizer, config)."""
    if found.get("format") != FORMAT_VERSION:
        raise CheckpointMismatch(f"{where}: checkpoint format {found.get('format')} (expected {FORMAT_VERSION})")
    if found["codes_fingerprint"] != expected["codes_fingerprint"]:
        raise CheckpointMismatch(
            f"{where}: the checkpoint was trained with another code table (fingerprint {found['codes_fingerprint']}, "
            f"{found['n_items']} items, codebooks {found['codebook_sizes']}; this run has "
            f"{expected['codes_fingerprint']}, {expected['n_items']} items, codebooks {expected['codebook_sizes']})"
        )
    if (found["code_token_ids_sha"], found["vocab_size"]) != (expected["code_token_ids_sha"], expected["vocab_size"]):
        raise CheckpointMismatch(
            f"{where}: the checkpoint's tokenizer does not match this run's (vocabulary {found['vocab_size']} vs "
            f"{expected['vocab_size']}, code tokens at ids {found['code_token_ids']} vs {expected['code_token_ids']})"
        )
    a, b = found["lm_config"], expected["lm_config"]
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        shown = ", ".join(f"lm.{k}: {a.get(k)!r} in the checkpoint, {b.get(k)!r} now" for k in diff[:4])
        raise CheckpointMismatch(
            f"{where}: the checkpoint was trained with another lm config ({shown}{', …' if len(diff) > 4 else ''})"
        )
    if found.get("run_key") != expected.get("run_key"):
        raise CheckpointMismatch(
            f"{where}: the checkpoint belongs to another run (data section or seed differ: "
            f"run key {found.get('run_key')} vs {expected.get('run_key')})"
        )


# -- state trees: tensors in safetensors, the rest in JSON ------------------------------------------
def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().clone().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {"__dict__": {k: _encode(v, tensors) for k, v in obj.items()}}
        return {"__items__": [[k, _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint state")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__dict__"].items()}
        if "__items__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    return obj


def save_tree(folder: Path, stem: str, tree: Any) -> None:
    """Write ``tree`` (dicts, lists, tuples, scalars, strings, tensors) as ``stem.json`` +
    ``stem.safetensors`` in ``folder``."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(tree, tensors)
    save_file(tensors, str(folder / f"{stem}.safetensors"))
    atomic_write_json(folder / f"{stem}.json", skeleton, indent=None)


def load_tree(folder: Path, stem: str) -> Any:
    skeleton = json.loads((folder / f"{stem}.json").read_text(encoding="utf-8"))
    tensors = load_file(str(folder / f"{stem}.safetensors"))
    return _decode(skeleton, tensors)
