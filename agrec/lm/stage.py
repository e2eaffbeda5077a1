"""The LM stage: fine-tune the backbone on the training split, or reuse the trained model.

``train_lm(session)`` trains (resuming an interrupted run of the same configuration) and returns an
:class:`~agrec.lm.bundle.LMBundle`; ``load_lm(session)`` loads the trained model of a finished run.
Artefacts in ``<run>/lm/``: ``checkpoints/epoch-NNN/`` (standard ``save_pretrained`` folders),
``loss_curve.csv`` (one row per optimizer step), ``val_curve.csv`` (one row per epoch),
``codes.json`` (the code table trained with) and the stage record naming the selected checkpoint.

Runs as one process, or data-parallel under ``torchrun`` / ``accelerate launch`` through
``python -m agrec.lm.train`` (same stage, same artefacts).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence, overload

import numpy as np

import pandas as pd
import torch

import agrec
from agrec.canonical import keyed
from agrec.errors import AgrecError, DataError
from agrec.fingerprint import short_hash
from agrec.io import atomic_path
from agrec.run.lineage import config_key
from agrec.lm.backbones import build_tiny_tokenizer, resolve_backbone_path
from agrec.lm.build import TINY_BASE, BuiltLM, build_fresh, load_checkpoint_model
from agrec.lm.bundle import LMBundle
from agrec.lm.checkpoint import (
    CheckpointMismatch,
    check_manifest,
    codes_fingerprint,
    make_manifest,
    read_manifest,
    training_config,
)
from agrec.baselines.stage import is_reusable as sasrec_reusable, sasrec_key, train_sasrec
from agrec.lm.config import LMConfig
from agrec.lm.distill import CodeDistiller, TeacherFn, sasrec_item_vectors, sasrec_teacher
from agrec.lm.distributed import DistEnv, init_distributed
from agrec.lm.finetune import merged_for_inference
from agrec.lm.item_embedding import init_item_embedding, item_embedding, save_item_embedding, state_dict_without
from agrec.lm.prompts import PromptFormat, Samples, build_eval_samples, build_train_samples, make_prompt_format
from agrec.lm.random_ids import random_code_table
from agrec.lm.trainer import Trainer, TrainResult
from agrec.decode.beam import generate_items
from agrec.decode.config import DecodeConfig
from agrec.decode.evaluate import validation_users
from agrec.decode.trie import ItemTrie
from agrec.metrics import evaluate_rankings
from agrec.lm.vocab import add_code_tokens
from agrec.semantic_ids.codes import CodeTable
from agrec.run.session import Session
from agrec.semantic_ids.stage import prepare_codes
from agrec.data.stage import prepare_data

STAGE = "lm"
LOSS_CSV = "loss_curve.csv"
VAL_CSV = "val_curve.csv"
CODES_JSON = "codes.json"


def stage_key(session: Session, codes: CodeTable) -> str:
    """Hash of what the trained model depends on: data section and the data stage's artefacts, lm section
    (without bookkeeping keys), the code table, the seed and the agrec version. Checkpoints carry it, so
    training resumes only from checkpoints of the same run."""
    p = session.profile
    payload = {
        "data": keyed(p.data),
        "lm": training_config(p.lm),
        "codes": codes_fingerprint(codes),
        "seed": p.seed,
        **({"teacher": sasrec_key(session)} if p.lm.distill_teacher == "sasrec" else {}),  # absent: keys unchanged
        "data_digest": session.run.digest("data"),
        "agrec": agrec.__version__,
    }
    return short_hash(payload)


def _base_dir(session: Session) -> Path:
    src = session.profile.source
    return Path(src).parent if src else Path.cwd()


def resolve_codes(
    session: Session, n_items: int, item_ids: list[str] | None = None, env: DistEnv | None = None
) -> CodeTable:
    """The code table the LM is trained with: the semantic-ID stage's, or random IDs (``lm.codes``)."""
    cfg = session.profile.lm
    if cfg.codes == "random":
        return random_code_table(n_items, cfg.random_codebook_sizes, session.profile.seed, item_ids=item_ids)

    env = env or DistEnv()
    with env.main_first():
        return prepare_codes(session)


def _check_codes(codes: CodeTable, n_items: int) -> None:
    if codes.n_items != n_items:
        raise DataError(f"the code table has {codes.n_items} items but the dataset has {n_items}")
    if not codes.is_collision_free():
        raise DataError(
            f"the code table has {codes.n_collisions()} collision(s): generated codes could not be "
            f"mapped back to one item"
        )


def _expected_manifest(cfg: LMConfig, codes: CodeTable, key: str, base_dir: Path, log: Callable[[str], None]) -> dict:
    """The manifest a checkpoint of this run must carry (tokenizer rebuilt from the backbone)."""
    path = resolve_backbone_path(cfg, base_dir, log=log)
    if path is None:
        tokenizer = build_tiny_tokenizer()
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    vocab = add_code_tokens(tokenizer, codes)
    return make_manifest(cfg, codes, vocab, tokenizer, key, None if path is None else str(path))


def _save_fn(built: BuiltLM, tiny_base) -> Callable:
    from peft import PeftModel

    def save(model, folder: Path) -> None:
        if isinstance(model, PeftModel):
            # the resized embedding need not be saved whole: the code-token rows are in the adapter
            model.save_pretrained(str(folder), save_embedding_layers=False)
        elif item_embedding(model) is not None:  # a plain Llama folder, and the item vectors beside it
            model.save_pretrained(folder, state_dict=state_dict_without(model))
            save_item_embedding(model, folder)
        else:
            model.save_pretrained(folder)
        built.tokenizer.save_pretrained(folder)
        if tiny_base is not None:
            tiny_base.save_pretrained(folder / TINY_BASE)
            built.tokenizer.save_pretrained(folder / TINY_BASE)

    return save


@dataclass
class TrainingJob:
    """A :class:`Trainer` with the model, prompt format and samples it was set up with."""

    trainer: Trainer
    built: BuiltLM
    prompt: PromptFormat
    train: Samples
    valid: Samples


def make_training_job(
    cfg: LMConfig,
    codes: CodeTable,
    train_seqs: Sequence[np.ndarray],
    valid_histories: Sequence[np.ndarray],
    valid_targets: Sequence[int] | np.ndarray,
    out_dir: Path,
    seed: int,
    run_key: str,
    base_dir: Path | None = None,
    env: DistEnv | None = None,
    log: Callable[[str], None] = print,
    teacher: TeacherFn | None = None,
    teacher_items: torch.Tensor | None = None,
) -> TrainingJob:
    """Build the fresh model, the prompt format and the samples, and the trainer that resumes from
    ``out_dir/checkpoints`` (through ``from_pretrained``) or starts from the fresh model. ``teacher``: the
    distillation teacher of ``lm.distill_teacher`` (:mod:`agrec.lm.distill`), None without one; ``teacher_items``
    ``[n_items, d]``: its item vectors, where ``lm.tiny.item_init: teacher`` starts the LM's item embedding."""
    env = env or DistEnv()
    torch.manual_seed(seed)
    with env.main_first():  # rank 0 converts SmolLM2 once; the others then read the cache
        built = build_fresh(cfg, codes, seed, base_dir, log=log)
    if cfg.tiny.item_init == "teacher":
        if teacher_items is None:
            raise AgrecError("lm.tiny.item_init 'teacher': the teacher's item vectors were not given")
        init_item_embedding(built.model, teacher_items)  # the fresh model only: a resumed one loads its checkpoint
    tiny_base = copy.deepcopy(built.base_model) if built.base_model is not None else None
    fmt = make_prompt_format(cfg.prompt_format, built.vocab, built.tokenizer, cfg.max_history, cfg.prompt_variants)
    train = build_train_samples(fmt, train_seqs, cfg.samples, cfg.window_stride, seed=seed)
    keep = validation_users(len(valid_histories), cfg.val_loss_users, seed)
    valid = build_eval_samples(fmt, [valid_histories[int(u)] for u in keep], np.asarray(valid_targets)[keep])
    manifest = make_manifest(
        cfg,
        codes,
        built.vocab,
        built.tokenizer,
        run_key,
        None if built.backbone_path is None else str(built.backbone_path),
    )
    log(
        f"lm: backbone {cfg.backbone} ({cfg.finetune_mode}), prompt {fmt.name}, samples {cfg.samples}: "
        f"{len(train):,} training sequences ({train.n_tokens():,} tokens), {len(valid):,} validation users"
    )

    def build_model(ckpt: Path | None):
        if ckpt is None:
            return built.model
        return load_checkpoint_model(ckpt, cfg, codes, base_dir, trainable=True, log=log).model

    rec_eval = None
    if cfg.select == "ndcg":
        rec_eval = validation_ndcg(
            cfg,
            fmt.prompt_ids,
            built.vocab.item_token_ids,
            valid_histories,
            valid_targets,
            seed,
            int(built.tokenizer.pad_token_id),
        )

    distiller = None
    if cfg.distill_teacher != "none":
        if teacher is None:
            raise AgrecError(f"lm.distill_teacher {cfg.distill_teacher!r}: no teacher was given")
        distiller = CodeDistiller(
            teacher,
            built.vocab.item_token_ids,
            len(built.tokenizer),
            cfg.distill_weight,
            cfg.distill_temperature,
            cfg.distill_branch_tokens,
            cache=cfg.distill_cache,
        )
    trainer = Trainer(
        build_model,
        _save_fn(built, tiny_base),
        train,
        valid,
        cfg,
        manifest,
        Path(out_dir),
        seed,
        n_levels=codes.n_levels,
        pad_id=int(built.tokenizer.pad_token_id),
        env=env,
        log=log,
        rec_eval=rec_eval,
        distiller=distiller,
    )
    return TrainingJob(trainer=trainer, built=built, prompt=fmt, train=train, valid=valid)


def validation_ndcg(
    cfg: LMConfig,
    prompt_fn: Callable[[Any], list[int]],  # a history (item ids) -> prompt token ids
    item_token_ids: torch.Tensor,
    histories: Sequence[np.ndarray],
    targets: Sequence[int] | np.ndarray,
    seed: int,
    pad_token_id: int,
) -> Callable[[torch.nn.Module], dict[str, float]]:
    """``lm.select: ndcg``'s metric: HR@10 and NDCG@10 of the LM alone (α = 0: trie-constrained beam search
    with ``lm.select_beam_size`` beams) on the validation items of ``lm.select_users`` users drawn with
    ``seed`` (the same users after every epoch), each user's history left out unless
    ``lm.select_exclude_history`` is false. ``histories [U]`` and ``targets [U]`` are the validation users'."""
    users = validation_users(len(histories), cfg.select_users, seed)  # drawn as the decode stage draws its own
    prompts = [prompt_fn(histories[int(u)]) for u in users]
    exclude = [histories[int(u)] for u in users] if cfg.select_exclude_history else None
    want = np.asarray(targets)[users]
    trie = ItemTrie.build(item_token_ids)
    dec = DecodeConfig(alpha=0.0, beam_size=cfg.select_beam_size, batch_size=cfg.eval_batch_size)

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        res = generate_items(model, prompts, trie, cfg=dec, exclude=exclude, k=10, pad_token_id=pad_token_id)
        m = evaluate_rankings(res.items.numpy(), want, [10])
        return {"val_HR@10": m["HR@10"], "val_NDCG@10": m["NDCG@10"]}

    return evaluate


@overload
def train_lm(
    session: Session,
    force: bool = ...,
    codes: CodeTable | None = ...,
    load: Literal[True] = ...,
    log: Callable[[str], None] = ...,
) -> LMBundle: ...
@overload
def train_lm(
    session: Session,
    force: bool = ...,
    codes: CodeTable | None = ...,
    *,
    load: bool,
    log: Callable[[str], None] = ...,
) -> LMBundle | None: ...
def train_lm(
    session: Session,
    force: bool = False,
    codes: CodeTable | None = None,
    load: bool = True,
    log: Callable[[str], None] = print,
) -> LMBundle | None:
    """Fine-tune the LM of ``session.profile.lm`` and return the trained bundle (see module doc).

    Args:
        force: retrain from scratch even if a trained model or resumable checkpoints exist.
        codes: the code table to train with; None = from ``lm.codes`` (the semantic-ID stage, or
            random IDs).
        load: return the trained bundle (False: return None; for data-parallel workers).
    """
    env = init_distributed()
    profile, run, cfg = session.profile, session.run, session.profile.lm
    say = log if env.is_main else (lambda s: None)

    with env.main_first():
        ds, split = prepare_data(session)
    if codes is None:
        codes = resolve_codes(session, ds.n_items, ds.item_ids, env)
    _check_codes(codes, ds.n_items)
    key = stage_key(session, codes)
    record_key = config_key(profile, STAGE)
    if not force and run.is_current(STAGE, record_key, profile, log=say):
        return load_lm(session, codes=codes) if load else None
    folder = run.stage_dir(STAGE)
    base_dir = _base_dir(session)
    if env.is_main:
        run.invalidate(STAGE, log=say)
    t_start = time.perf_counter()

    n_users = min(cfg.max_users or split.n_users, split.n_users)
    teacher, teacher_items = None, None
    if cfg.distill_teacher == "sasrec":  # trained here, or reused from <run>/baselines/ (the decode stage reuses it)
        # the other ranks poll for the trained teacher: its training can outlast the process group's barrier timeout
        with env.main_first_until(lambda: sasrec_reusable(session)):
            say("lm: distillation teacher: SASRec (baselines.sasrec)")
            scorer = train_sasrec(session, progress=cfg.progress)
        teacher = sasrec_teacher(scorer.model.to(env.device))
        if cfg.tiny.item_init == "teacher":
            teacher_items = sasrec_item_vectors(scorer.model)
    job = make_training_job(
        cfg,
        codes,
        split.train[:n_users],
        split.train[:n_users],
        split.valid[:n_users],
        folder,
        profile.seed,
        key,
        base_dir,
        env,
        log=say,
        teacher=teacher,
        teacher_items=teacher_items,
    )
    trainer, train, valid = job.trainer, job.train, job.valid
    resume = cfg.resume and not force
    if resume:
        try:
            trainer.latest_resumable()
        except CheckpointMismatch as e:
            say(f"lm: discarding checkpoints of another configuration ({e})")
            resume = False
    result = trainer.fit(resume=resume)
    if env.is_main:
        _write_curves(folder, result)
        codes.save(folder / CODES_JSON)  # the exact item <-> code table the model was trained with
        run.mark_done(
            STAGE,
            record_key,
            profile,
            run_key=key,
            **_record(cfg, result, folder, train, valid, codes, time.perf_counter() - t_start),
        )
    env.barrier()
    return load_lm(session, codes=codes) if load else None


def _write_curves(folder: Path, result: TrainResult) -> None:
    for name, df in ((LOSS_CSV, result.steps_frame()), (VAL_CSV, result.evals_frame())):
        with atomic_path(folder / name) as tmp:
            df.to_csv(tmp, index=False)


def _record(
    cfg: LMConfig, result: TrainResult, folder: Path, train: Samples, valid: Samples, codes: CodeTable, wall_s: float
) -> dict:
    st = result.state
    final = st.evals[-1] if st.evals else {}
    return {
        "checkpoint": str(result.selected.relative_to(folder)),
        "backbone": cfg.backbone,
        "finetune": cfg.finetune_mode,
        "prompt": cfg.prompt_format,
        "samples": cfg.samples,
        "params": result.params,
        "precision": result.precision,
        "world_size": result.world,
        "train_sequences": len(train),
        "train_tokens_per_epoch": train.n_tokens(),
        "valid_users": len(valid),
        "n_levels": codes.n_levels,
        "codes_fingerprint": codes_fingerprint(codes),
        "steps": st.global_step,
        "train_tokens": st.train_tokens,
        "train_time_s": round(st.train_time_s, 2),
        "tokens_per_s": round(st.train_tokens / max(st.train_time_s, 1e-9), 1),
        "stage_time_s": round(wall_s, 2),
        "final_eval": final,
    }


def load_lm(
    session: Session,
    codes: CodeTable | None = None,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] = print,
) -> LMBundle:
    """The trained LM of a finished ``lm`` stage, loaded with ``from_pretrained`` and verified.

    Raises :class:`AgrecError` if the stage has not run, and
    :class:`~agrec.lm.checkpoint.CheckpointMismatch` if the checkpoint does not match this run's
    tokenizer, code table or config (saying which).
    """
    run, cfg = session.run, session.profile.lm
    rec = run.read_record(STAGE)
    if rec is None:
        raise AgrecError(f"no trained LM in {run.root / STAGE}: run train_lm(session) or `agrec run --stages lm` first")
    if codes is None:
        ds, _ = prepare_data(session)
        codes = resolve_codes(session, ds.n_items, ds.item_ids)
    folder = run.root / STAGE / rec["checkpoint"]
    return load_bundle(folder, cfg, codes, stage_key(session, codes), _base_dir(session), device=device, log=log)


def load_bundle(
    folder: Path,
    cfg: LMConfig,
    codes: CodeTable,
    run_key: str,
    base_dir: Path | None = None,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] = print,
) -> LMBundle:
    """An :class:`LMBundle` from checkpoint ``folder`` after checking it against the run (``cfg``,
    ``codes``, ``run_key``)."""
    folder = Path(folder)
    base_dir = base_dir or Path.cwd()
    found = read_manifest(folder)
    check_manifest(found, _expected_manifest(cfg, codes, run_key, base_dir, log), folder)
    built = load_checkpoint_model(folder, cfg, codes, base_dir, trainable=False, log=log)
    model = merged_for_inference(built.model).to(device)
    model.config.use_cache = True
    fmt = make_prompt_format(found["prompt"], built.vocab, built.tokenizer, found["max_history"], cfg.prompt_variants)
    return LMBundle(
        model=model,
        tokenizer=built.tokenizer,
        item_token_ids=built.vocab.item_token_ids.clone(),
        codes=codes,
        prompt=fmt,
        checkpoint=folder,
        manifest=found,
    )


def training_curves(session: Session) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(steps, evals)`` of the trained LM: the loss per optimizer step and the validation metrics
    per epoch (the CSVs of the stage folder)."""
    folder = session.run.root / STAGE
    if not (folder / LOSS_CSV).is_file():
        raise AgrecError(f"no loss curves in {folder}: the lm stage has not finished")
    return pd.read_csv(folder / LOSS_CSV), pd.read_csv(folder / VAL_CSV)


# Version of results/lm.json's layout (lm_results; see agrec.run.report).
RESULTS_FORMAT = 1


def lm_results(record: dict[str, Any], evals: pd.DataFrame) -> dict[str, Any]:
    """What ``report.record("lm", …, RESULTS_FORMAT)`` stores, from the lm stage's record and its per-epoch
    validation curve (:func:`training_curves`): the model, its size, training cost and final validation
    numbers."""
    final = record["final_eval"]
    return {
        "backbone": record["backbone"],
        "finetune": record["finetune"],
        "prompt": record["prompt"],
        "samples": record["samples"],
        "params_total": record["params"]["total"],
        "params_trainable": record["params"]["trainable"],
        "epochs": int(evals["epoch"].max()),
        "steps": record["steps"],
        "tokens_per_s": record["tokens_per_s"],
        "train_time_s": record["train_time_s"],
        "precision": record["precision"],
        "val_loss": final["val_loss"],
        "val_item_acc": final["val_item_acc"],
        "val_level_acc": [final[f"val_acc_l{level}"] for level in range(record["n_levels"])],
        "checkpoint": record["checkpoint"],
    }
