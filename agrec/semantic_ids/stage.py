"""The semantic-ID stage: item text -> embeddings -> RQ-VAE codes -> collision-free code table.

Artefacts under ``<run>/semantic_ids/``:

- ``codes.json`` — the final, collision-free :class:`CodeTable` (what later stages load);
- ``codes_raw.json`` — the quantiser's codes before de-duplication;
- ``<dataset>.index.json`` — the final codes in LC-Rec's format (``{item_id: ["<a_1>", …]}``);
- ``embeddings.npy`` + ``embeddings.json`` — the quantiser's item embeddings (text, or collaborative for
  ``encoder: collaborative``) and their cache key; ``texts.json``;
- ``rqvae.safetensors`` + ``rqvae.json`` — the selected RQ-VAE checkpoint and its config;
- ``train_log.csv`` — loss curves and evaluation columns per epoch;
- ``stage.json`` — the record (config hash, collision and de-duplication numbers, timings).

When the dataset ships codes (an LC-Rec ``X.index.json``, ``SeqDataset.item_codes``) they are used
instead of training (``semantic_ids.use_given_codes``), made collision-free the same way.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agrec.data.dataset import SeqDataset
from agrec.data.split import LeaveOneOutSplit
from agrec.data.stage import prepare_data
from agrec.devices import resolve_device
from agrec.errors import DataError
from agrec.io import atomic_path, atomic_write_json
from agrec.run.lineage import config_key
from agrec.semantic_ids.codes import CodeTable
from agrec.semantic_ids.collaborative import collaborative_embeddings
from agrec.semantic_ids.config import RQVAEConfig, SemanticIdConfig
from agrec.semantic_ids.dedup import make_collision_free
from agrec.semantic_ids.diagnostics import collision_stats
from agrec.semantic_ids.embed import EmbeddingSpec, embed_texts, save_npy
from agrec.semantic_ids.rqvae import RQVAE
from agrec.semantic_ids.text import item_texts
from agrec.semantic_ids.train import QuantizeResult, residual_kmeans, train_rqvae
from agrec.run.session import Session
from agrec.threads import torch_threads

STAGE = "semantic_ids"
CODES = "codes.json"
RAW_CODES = "codes_raw.json"
TRAIN_LOG = "train_log.csv"
CHECKPOINT = "rqvae.safetensors"
CHECKPOINT_META = "rqvae.json"
TEXTS = "texts.json"


@dataclass
class SemanticIds:
    """Everything the stage produced; ``codes`` is the contract later stages use.

    Attributes:
        codes: the collision-free table (a bijection item <-> code sequence).
        raw_codes: the codes before de-duplication (same items, possibly fewer levels).
        embeddings: the quantiser's input ``[n_items, D]``: text embeddings, or collaborative ones for
            ``encoder: collaborative`` (None when codes were given and none was asked for).
        texts: the text of each item that was embedded (None likewise).
        train_log: per-epoch losses and evaluation columns (empty when not trained).
        record: the stage record's summary (source, collisions, de-duplication, timings).
    """

    codes: CodeTable
    raw_codes: CodeTable
    embeddings: np.ndarray | None = None
    texts: list[str] | None = None
    train_log: pd.DataFrame = field(default_factory=pd.DataFrame)
    record: dict[str, Any] = field(default_factory=dict)


def prepare_codes(session: Session, force: bool = False) -> CodeTable:
    """The collision-free code table of the session's dataset, from the run directory when up to date."""
    return prepare_semantic_ids(session, force).codes


def prepare_semantic_ids(session: Session, force: bool = False, progress: bool = True) -> SemanticIds:
    """Run (or reuse) the stage and return all its outputs.

    The stage depends on the ``data`` and ``semantic_ids`` sections and the seed. Embeddings are reused
    on their own key (encoder + texts), so changing only the quantiser does not re-embed; ``force``
    recomputes them too.
    """
    profile, run = session.profile, session.run
    cfg: SemanticIdConfig = profile.semantic_ids
    key = config_key(profile, STAGE)
    folder = run.stage_dir(STAGE)
    ds, split = prepare_data(session)
    if not force and run.is_current(STAGE, key, profile):
        return load_semantic_ids(folder, run.read_record(STAGE) or {})
    run.invalidate(STAGE)

    with torch_threads(cfg.cpu_threads):
        return _compute(session, ds, split, folder, key, progress, refresh=force)


def _compute(
    session: Session, ds: SeqDataset, split: LeaveOneOutSplit, folder: Path, key: str, progress: bool, refresh: bool
) -> SemanticIds:
    profile, run = session.profile, session.run
    cfg: SemanticIdConfig = profile.semantic_ids
    texts = _texts_or_none(ds, cfg)
    given = ds.item_codes is not None and cfg.use_given_codes
    emb, emb_info, t_embed = None, None, 0.0
    # With given codes only diagnostics would read the embeddings: computed when the profile asks for them.
    wanted = not given or bool(cfg.text_diagnostics)
    if cfg.encoder == "collaborative" and wanted:
        t0 = time.perf_counter()
        emb = collaborative_embeddings(split, ds.n_items, cfg.collaborative_dim, profile.seed, cfg.normalize)
        sha = save_npy(folder / "embeddings.npy", emb)
        emb_info = {
            "encoder": "collaborative",
            "dim": cfg.collaborative_dim,
            "normalize": cfg.normalize,
            "shape": list(emb.shape),
            "sha256": sha,
            "source": "computed",
        }
        atomic_write_json(folder / "embeddings.json", emb_info)
        t_embed = time.perf_counter() - t0
    elif texts is not None and wanted:  # a text encoder (the collaborative one was wanted above or is not wanted)
        t0 = time.perf_counter()
        shared = Path(profile._resolve(cfg.embedding_cache)) if cfg.embedding_cache else None
        spec = EmbeddingSpec(
            cfg.encoder, cfg.lm_model if cfg.encoder == "lm" else None, cfg.max_length, cfg.normalize, cfg.embed_dtype
        )
        emb, emb_info = embed_texts(
            texts,
            spec,
            folder,
            cfg.embed_batch_size,
            shared,
            progress,
            device=str(resolve_device(cfg.device, "semantic_ids.device")),
            refresh=refresh,
        )
        t_embed = time.perf_counter() - t0
    else:  # a recomputation without them leaves no embeddings of an earlier configuration behind
        for stale in ("embeddings.npy", "embeddings.json"):
            (folder / stale).unlink(missing_ok=True)
    if texts is not None:
        atomic_write_json(folder / TEXTS, texts, indent=None)

    fit: QuantizeResult | None = None
    if given and ds.item_codes is not None:  # (given implies it; said again for the type checker)
        raw = CodeTable.from_tokens(ds.item_codes, ds.item_ids, source=f"{ds.name}.index.json")
        last_dist = None
        source = "index.json"
    else:
        if emb is None:
            raise DataError(
                f"{ds.name}: no item text and no given codes; the semantic-ID stage needs one of them "
                f"(or semantic_ids.encoder: collaborative, codes from the interactions)"
            )
        fit = (
            residual_kmeans(emb, cfg.rqvae, profile.seed)
            if cfg.method == "rkmeans"
            else train_rqvae(emb, cfg.rqvae, profile.seed, progress, device=cfg.device)
        )
        raw = CodeTable(
            codes=fit.codes, codebook_sizes=(cfg.rqvae.codebook_size,) * cfg.rqvae.n_levels, item_ids=list(ds.item_ids)
        )
        last_dist = fit.last_dist
        source = cfg.method

    codes, dedup = make_collision_free(raw, cfg.dedup, last_dist)

    # Artefacts first, the record last (a crash leaves no record and the stage reruns).
    raw.save(folder / RAW_CODES)
    codes.to_index_json(folder / f"{ds.name}.index.json")
    log = fit.log if fit is not None else pd.DataFrame()
    with atomic_path(folder / TRAIN_LOG) as tmp:
        log.to_csv(tmp, index=False)
    if fit is not None and fit.model is not None:
        save_rqvae(folder, fit.model)
    codes.save(folder / CODES)
    record = {
        "source": source,
        "n_items": codes.n_items,
        "raw_codebook_sizes": list(raw.codebook_sizes),
        "codebook_sizes": list(codes.codebook_sizes),
        "before": collision_stats(raw.codes),
        "after": collision_stats(codes.codes),
        "dedup": dedup.to_dict(),
        "embedding": emb_info,
        "fit": (fit.summary | {"seconds": fit.seconds}) if fit is not None else None,
        "seconds": {"embedding": t_embed, "fit": fit.seconds if fit is not None else 0.0},
    }
    run.mark_done(STAGE, key, profile, summary=record)
    return SemanticIds(codes=codes, raw_codes=raw, embeddings=emb, texts=texts, train_log=log, record=record)


def _texts_or_none(ds: SeqDataset, cfg: SemanticIdConfig) -> list[str] | None:
    """Item texts to embed (or, for the collaborative encoder, to show); None when the dataset has none and
    codes are given or come from the interactions."""
    if ds.item_text is None and cfg.template == "auto":
        if ds.item_codes is None and cfg.encoder != "collaborative":
            raise DataError(
                f"{ds.name}: the dataset has neither item text nor codes (index.json); "
                f"the semantic-ID stage needs one of them"
            )
        return None
    return item_texts(ds, cfg.template)


def load_semantic_ids(folder: Path, record: dict[str, Any]) -> SemanticIds:
    """Read the stage's artefacts from ``folder`` (no computation)."""
    emb = np.load(folder / "embeddings.npy", allow_pickle=False) if (folder / "embeddings.npy").is_file() else None
    texts = json.loads((folder / TEXTS).read_text(encoding="utf-8")) if (folder / TEXTS).is_file() else None
    log_path = folder / TRAIN_LOG
    try:
        log = pd.read_csv(log_path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        log = pd.DataFrame()
    return SemanticIds(
        codes=CodeTable.load(folder / CODES),
        raw_codes=CodeTable.load(folder / RAW_CODES),
        embeddings=emb,
        texts=texts,
        train_log=log,
        record=record.get("summary", {}),
    )


# -- RQ-VAE checkpoint (safetensors + JSON config) -----------------------------------------------------


def save_rqvae(folder: Path, model: RQVAE) -> None:
    """Write ``rqvae.safetensors`` (weights, no pickle) and ``rqvae.json`` (what rebuilds the module)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(folder / CHECKPOINT) as tmp:
        save_file(state, str(tmp))
    atomic_write_json(folder / CHECKPOINT_META, {"in_dim": model.in_dim, "config": asdict(model.cfg)})


def load_rqvae(folder: Path) -> RQVAE:
    """Rebuild the RQ-VAE saved by :func:`save_rqvae` (in eval mode)."""
    from safetensors.torch import load_file

    meta_path = folder / CHECKPOINT_META
    if not meta_path.is_file() or not (folder / CHECKPOINT).is_file():
        raise DataError(f"{folder}: no RQ-VAE checkpoint ({CHECKPOINT} + {CHECKPOINT_META})")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    model = RQVAE(int(meta["in_dim"]), RQVAEConfig(**meta["config"]))
    model.load_state_dict(load_file(str(folder / CHECKPOINT)))
    return model.eval()


# Version of results/semantic_ids.json's layout (semantic_ids_results; see agrec.run.report).
RESULTS_FORMAT = 1


def semantic_ids_results(
    sem: SemanticIds, collisions: pd.DataFrame, usage: pd.DataFrame, coherence: dict[str, Any]
) -> dict[str, Any]:
    """What ``report.record("semantic_ids", …, RESULTS_FORMAT)`` stores: the codes' shape, the collision rate
    before and after de-duplication (``collisions``: :func:`~agrec.semantic_ids.diagnostics.collision_table`),
    per-level perplexity and utilisation (``usage``: :func:`~agrec.semantic_ids.diagnostics.level_usage`), the
    coherence numbers (empty without item text), the fit and the stage's time."""
    codes = sem.codes
    return {
        "source": sem.record["source"],
        "n_items": codes.n_items,
        "n_levels": codes.n_levels,
        "codebook_sizes": list(codes.codebook_sizes),
        "collision_rate_before": float(collisions.iloc[0]["collision_rate"]),
        "collision_rate_after": float(collisions.iloc[1]["collision_rate"]),
        "collision_free": codes.is_collision_free(),
        "dedup": sem.record["dedup"],
        "perplexity": [float(x) for x in usage["perplexity"]],
        "utilisation": [float(x) for x in usage["utilisation"]],
        "coherence": coherence,
        "fit": sem.record["fit"],
        "seconds": sem.record["seconds"],
    }
