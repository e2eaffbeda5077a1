"""The fine-tuning loop: data-parallel, gradient accumulation, bf16 autocast, checkpoints, exact resume.

A plain PyTorch loop rather than HF ``Trainer`` or ``accelerate.Accelerator``: the loss is normalised
by the number of supervised tokens of the whole (global, accumulated) batch, the batch plan is a
pure function of (seed, epoch), and resume restores every piece of state — which is what makes an
interrupted-then-resumed run reproduce the uninterrupted one exactly. ``Accelerator`` also keeps
process-wide state that cannot be re-configured within one process (a notebook training two
configurations). The loop still runs under ``accelerate launch`` and ``torchrun`` alike
(:mod:`agrec.lm.distributed`).

Batching (``lm.batching``, :mod:`agrec.lm.batching`): each epoch draws a permutation of the samples
from ``(seed, epoch)``; it is cut into global batches of ``batch_size x grad_accum x world`` sequences,
each split into ``grad_accum x world`` micro-batches (micro-batch ``j`` of process ``r`` is part
``j * world + r``). So ``world`` processes with ``batch_size`` b see the same global batches as one
process with ``world * b``. A last global batch too small to give every micro-batch a sequence is
dropped. ``bucket`` cuts the batches from the samples in length order instead; ``pack`` keeps the
batches and packs each micro-batch into rows without padding between samples.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, cast

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from agrec.errors import ConfigError
from agrec.io import atomic_dir, atomic_write_json
from agrec.lm.batching import bucket_plan, check_packable, collate_packed, epoch_plan
from agrec.lm.checkpoint import (
    MANIFEST,
    STATE,
    check_manifest,
    checksum_problems,
    load_tree,
    read_manifest,
    save_tree,
    write_checksums,
)
from agrec.lm.config import LMConfig
from agrec.lm.distill import CodeDistiller
from agrec.lm.distributed import DistEnv
from agrec.lm.finetune import parameter_counts
from agrec.lm.loss import SupervisedNLL
from agrec.lm.prompts import IGNORE, Samples
from agrec.progress import Task

CHECKPOINTS = "checkpoints"


class TrainingInterrupted(RuntimeError):
    """Raised by the ``stop_after_step`` hook (tests simulate a crash with it)."""


@dataclass
class TrainState:
    """Counters and history that a checkpoint restores besides weights and optimizer."""

    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # optimizer steps completed in the current epoch
    global_step: int = 0
    train_tokens: int = 0  # non-padding input tokens processed, all processes
    train_time_s: float = 0.0  # wall time inside training steps (no evaluation, no saving)
    steps: list[dict] = field(default_factory=list)  # one row per optimizer step
    evals: list[dict] = field(default_factory=list)  # one row per evaluation (epoch end)
    stopped_by_patience: bool = False  # lm.patience ended training (a resume does not continue it)


@dataclass
class TrainResult:
    selected: Path  # the checkpoint the stage hands on
    state: TrainState
    params: dict[str, int]
    precision: str
    world: int

    def steps_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.state.steps)

    def evals_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.state.evals)


def cpu_supports_bf16() -> bool:
    """True on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX), where autocast pays off."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for ``lm.precision`` on ``device``."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_supports_bf16() else "fp32"


def lr_lambda(warmup: int, total: int, schedule: str) -> Callable[[int], float]:
    """Multiplier of the base learning rate for optimizer step ``s`` (0-based): linear warm-up over
    ``warmup`` steps, then cosine or linear decay to 0 at ``total`` (or constant)."""

    def f(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (s - warmup) / max(1, total - warmup))
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - progress

    return f


def collate(samples: Samples, idx: np.ndarray, pad_id: int, device: torch.device):
    """Right-padded ``(input_ids, attention_mask, labels)``, each ``LongTensor[B, T]``."""
    seqs = [samples.input_ids[i] for i in idx]
    T = max(len(s) for s in seqs)
    ids = np.full((len(seqs), T), pad_id, dtype=np.int64)
    labels = np.full((len(seqs), T), IGNORE, dtype=np.int64)
    mask = np.zeros((len(seqs), T), dtype=np.int64)
    for r, i in enumerate(idx):
        n = len(samples.input_ids[i])
        ids[r, :n] = samples.input_ids[i]
        labels[r, :n] = samples.labels[i]
        mask[r, :n] = 1
    return (torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device), torch.from_numpy(labels).to(device))


class Trainer:
    """Trains one model; see the module docstring.

    Args:
        build_model: ``build_model(checkpoint_or_None) -> model`` (the trainable model, fresh or loaded
            from a checkpoint folder through ``from_pretrained``).
        save_model: ``save_model(model, folder)`` writes the model and tokenizer (``save_pretrained``).
        train: tokenized training samples.
        valid: tokenized validation samples (exactly ``n_levels`` supervised tokens at the end).
        manifest: what describes the run (stored in, and checked against, every checkpoint).
        out_dir: the stage folder; checkpoints go to ``out_dir/checkpoints/``.
    """

    def __init__(
        self,
        build_model: Callable,
        save_model: Callable,
        train: Samples,
        valid: Samples,
        cfg: LMConfig,
        manifest: dict,
        out_dir: Path,
        seed: int,
        n_levels: int,
        pad_id: int,
        env: DistEnv | None = None,
        log: Callable[[str], None] = print,
        rec_eval: Callable[[Any], dict[str, float]] | None = None,
        distiller: CodeDistiller | None = None,
    ):
        if len(train) == 0:
            raise ValueError("no training samples")
        self.build_model, self.save_model = build_model, save_model
        self.train, self.valid = train, valid
        self.cfg, self.manifest, self.seed = cfg, manifest, seed
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / CHECKPOINTS
        self.n_levels, self.pad_id = n_levels, pad_id
        self.env = env or DistEnv()
        self.log = log if self.env.is_main else (lambda s: None)
        self.precision = resolve_precision(cfg.precision, self.env.device)
        self._n_sup = train.n_supervised
        self._lengths = train.lengths
        self.pack_length = int(cfg.pack_length or self._lengths.max())
        if cfg.batching == "pack" and self._lengths.max() > self.pack_length:
            raise ConfigError(
                f"lm.pack_length ({self.pack_length}) is shorter than the longest training sample "
                f"({int(self._lengths.max())} tokens); raise it or leave it null"
            )
        self.stop_after_step: int | None = None  # test hook: raise TrainingInterrupted after this step
        # lm.select "ndcg": the model's validation recommendation metrics (``{"val_NDCG@10": …}``) after each epoch
        self.rec_eval = rec_eval
        # lm.distill_teacher: the teacher's soft code targets, mixed into the training loss (agrec/lm/distill.py)
        self.distiller = distiller
        if cfg.select == "ndcg" and rec_eval is None:
            raise ConfigError("lm.select 'ndcg' needs a recommendation evaluation of the model (rec_eval)")
        if cfg.distill_teacher != "none" and distiller is None:
            raise ConfigError(f"lm.distill_teacher {cfg.distill_teacher!r} needs the teacher's distiller")

    # -- plan -------------------------------------------------------------------------------------
    def plan(self, epoch: int) -> list[list[np.ndarray]]:
        """The epoch's global batches, each a list of ``grad_accum * world`` sample-index arrays."""
        args = (self.seed, epoch, self.cfg.batch_size, self.cfg.grad_accum, self.env.world)
        if self.cfg.batching == "bucket":
            return bucket_plan(self._lengths, *args)
        return epoch_plan(len(self.train), *args)  # pad, and pack (same batches, packed rows)

    def collate(self, idx: np.ndarray) -> tuple:
        """One training micro-batch: the arguments of :class:`SupervisedNLL`'s forward."""
        if self.cfg.batching == "pack":
            return collate_packed(self.train, idx, self.pad_id, self.env.device, self.pack_length)
        return collate(self.train, idx, self.pad_id, self.env.device)

    def total_steps(self) -> int:
        total = sum(len(self.plan(e)) for e in range(self.cfg.epochs))
        return min(total, self.cfg.max_steps) if self.cfg.max_steps else total

    # -- checkpoints --------------------------------------------------------------------------------
    def checkpoints(self) -> list[tuple[int, Path]]:
        """(global step, folder) of the complete checkpoints, oldest first."""
        out = []
        if self.ckpt_dir.is_dir():
            for d in self.ckpt_dir.iterdir():
                # folders are renamed into place complete (atomic_dir); the manifest carries the step
                if d.is_dir() and not d.name.startswith(".") and (d / f"{STATE}.safetensors").is_file():
                    out.append((int(read_manifest(d)["global_step"]), d))
        return sorted(out)

    def _save(self, name: str, model, optimizer, scheduler, state: TrainState) -> Path:
        rng = {"cpu": torch.get_rng_state()}
        if self.env.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.env.device)
        rngs = [rng]
        if self.env.distributed:
            rngs = cast(list[dict[str, torch.Tensor]], [None] * self.env.world)  # filled by all_gather_object
            torch.distributed.all_gather_object(rngs, rng)
        folder = self.ckpt_dir / name
        if self.env.is_main:
            with atomic_dir(folder) as tmp:
                self.save_model(model, tmp)
                atomic_write_json(
                    tmp / MANIFEST, {**self.manifest, "epoch": state.epoch, "global_step": state.global_step}
                )
                names = [n for n, p in model.named_parameters() if p.requires_grad]
                save_tree(
                    tmp,
                    STATE,
                    {
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "state": asdict(state),
                        "rng": rngs,
                        "param_names": names,
                        "world": self.env.world,
                    },
                )
                write_checksums(tmp)
        self.env.barrier()
        return folder

    def _prune(self, state: TrainState, keep: set[Path]) -> None:
        """Drop mid-epoch checkpoints older than the newest epoch checkpoint, and epoch checkpoints
        beyond ``keep_checkpoints`` (never one in ``keep``)."""
        if not self.env.is_main:
            return
        ckpts = self.checkpoints()
        epochs = [d for _, d in ckpts if d.name.startswith("epoch-")]
        doomed = []
        if epochs:
            last_epoch_step = max(s for s, d in ckpts if d == epochs[-1])
            doomed += [d for s, d in ckpts if d.name.startswith("step-") and s <= last_epoch_step]
        if self.cfg.keep_checkpoints:
            doomed += epochs[: -self.cfg.keep_checkpoints]
        for d in doomed:
            if d not in keep:
                shutil.rmtree(d, ignore_errors=True)

    def latest_resumable(self) -> Path | None:
        """The newest intact checkpoint of this very run (matching manifest), or None. A damaged checkpoint
        (files differ from its checksums, unreadable manifest) is skipped with a message, never loaded."""
        for _, d in reversed(self.checkpoints()):
            problems = checksum_problems(d)
            if problems:
                self.log(f"lm: not resuming from damaged checkpoint {d.name}: {problems[0]}")
                continue
            check_manifest(read_manifest(d), self.manifest, d)
            return d
        return None

    # -- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, loss_mod: SupervisedNLL) -> dict[str, float]:
        """Teacher-forced validation: mean NLL of the target's code tokens, per-level token accuracy
        (argmax over the whole vocabulary) and next-item accuracy (every level right, i.e. greedy
        decoding returns the target). Sharded over processes."""
        L = self.n_levels
        was_training = loss_mod.training
        loss_mod.eval()
        idx = np.arange(len(self.valid))[self.env.rank :: self.env.world]
        idx = idx[np.argsort(self.valid.lengths[idx], kind="stable")]  # less padding
        nll = torch.zeros((), dtype=torch.float64)
        correct = torch.zeros(L + 1, dtype=torch.float64)
        for s in range(0, len(idx), self.cfg.eval_batch_size):
            batch = collate(self.valid, idx[s : s + self.cfg.eval_batch_size], self.pad_id, self.env.device)
            with self._autocast():
                logits, targets = loss_mod.supervised_logits(*batch)
            logits = logits.float()
            nll += F.cross_entropy(logits, targets, reduction="sum").double().cpu()
            hit = (logits.argmax(-1) == targets).view(-1, L)
            correct[:L] += hit.sum(0).double().cpu()
            correct[L] += hit.all(1).sum().double().cpu()
        sums = self.env.all_reduce_sum(torch.cat([nll.view(1), correct, torch.tensor([len(idx)], dtype=torch.float64)]))
        n = max(1.0, float(sums[-1]))
        out = {"val_loss": float(sums[0]) / (n * L)}
        for lvl in range(L):
            out[f"val_acc_l{lvl}"] = float(sums[1 + lvl]) / n
        out["val_item_acc"] = float(sums[1 + L]) / n
        loss_mod.train(was_training)
        return out

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.env.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- training -----------------------------------------------------------------------------------
    def fit(self, resume: bool = True) -> TrainResult:
        """Train (or resume) to the end; return the selected checkpoint and the history."""
        # Denormal floats (Adam's second moments of tiny gradients, near-zero attention weights) are
        # 10-100x slower on x86 CPUs; flushing them to zero made tiny's steps ~1.5x faster here.
        flush = self.env.device.type == "cpu" and torch.set_flush_denormal(True)
        threads = torch.get_num_threads()
        if self.cfg.num_threads:
            torch.set_num_threads(self.cfg.num_threads)
        try:
            return self._fit(resume)
        finally:
            torch.set_num_threads(threads)
            if flush:
                torch.set_flush_denormal(False)

    def _fit(self, resume: bool) -> TrainResult:
        cfg, env = self.cfg, self.env
        ckpt = self.latest_resumable() if resume else None
        if not resume and env.is_main and self.ckpt_dir.exists():
            shutil.rmtree(self.ckpt_dir)
        env.barrier()
        model = self.build_model(ckpt)
        if ckpt is None:  # dropout streams: seeded per process, restored from the checkpoint on resume
            torch.manual_seed(self.seed + env.rank)
        if cfg.batching == "pack":
            check_packable(model)
        model.to(env.device)
        model.train()
        params = parameter_counts(model)
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        # no weight decay on norms and biases (1-D), as usual for transformers
        groups = [
            {"params": [p for n, p in trainable if p.ndim >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for n, p in trainable if p.ndim < 2], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(
            groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, foreach=env.device.type == "cuda"
        )
        total = self.total_steps()
        warmup = int(round(cfg.warmup_ratio * total))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(warmup, total, cfg.schedule))
        state = TrainState()
        if ckpt is not None:
            tree = load_tree(ckpt, STATE)
            if tree["world"] != env.world:
                raise RuntimeError(
                    f"{ckpt} was written by {tree['world']} process(es); resume it with the same "
                    f"number (now {env.world}) or set lm.resume=false"
                )
            if tree["param_names"] != [n for n, _ in trainable]:
                raise RuntimeError(f"{ckpt}: the trainable parameters differ from this model's")
            optimizer.load_state_dict(tree["optimizer"])
            scheduler.load_state_dict(tree["scheduler"])
            state = TrainState(**tree["state"])
            rng = tree["rng"][env.rank]
            torch.set_rng_state(rng["cpu"])
            if "cuda" in rng and env.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], env.device)
            self.log(f"lm: resuming from {ckpt.name} (epoch {state.epoch}, step {state.global_step} of {total})")
        # item_loss > 0 only for tiny (config checks)
        loss_mod = SupervisedNLL(model, cfg.label_smoothing, cfg.tiny.item_loss, self.distiller)
        ddp = None
        if env.distributed:
            ddp = torch.nn.parallel.DistributedDataParallel(
                loss_mod, device_ids=[env.device.index] if env.device.type == "cuda" else None
            )
        runner = ddp or loss_mod
        params_list = [p for _, p in trainable]

        done = state.global_step >= total or state.stopped_by_patience
        # before the step bar and task start: their rates and ETAs count steps only
        if not done and self.distiller is not None and self.distiller.cache is not None:
            t0 = time.perf_counter()
            self.fill_teacher_cache()
            state.train_time_s += time.perf_counter() - t0  # part of what training costs
        bar = None
        if env.is_main and cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=total, initial=state.global_step, desc="lm", unit="step", mininterval=2.0, dynamic_ncols=True
            )
        # The CLI's view of training (agrec.progress): steps with ETA, one milestone per epoch.
        task = Task("lm", total, "step", initial=state.global_step, min_interval_s=1.0) if env.is_main else None
        pending: list[tuple[int, int, float, torch.Tensor, int, int, float]] = []

        def flush() -> None:
            for epoch, step, lr, loss_sum, n_sup, n_tok, elapsed in pending:
                state.steps.append(
                    {
                        "epoch": epoch,
                        "step": step,
                        "lr": lr,
                        "loss": float(loss_sum) / n_sup,
                        "supervised_tokens": n_sup,
                        "tokens": n_tok,
                        "train_time_s": elapsed,
                    }
                )
            pending.clear()

        last: Path | None = ckpt
        stopped_early = False
        for epoch in range(state.epoch, cfg.epochs):
            if done:
                break
            plan = self.plan(epoch)
            for s in range(state.step_in_epoch, len(plan)):
                parts = plan[s]
                n_sup = int(sum(self._n_sup[p].sum() for p in parts))
                n_tok = int(sum(self._lengths[p].sum() for p in parts))
                t0 = time.perf_counter()
                local = torch.zeros((), device=env.device)
                for j in range(cfg.grad_accum):
                    batch = self.collate(parts[j * env.world + env.rank])
                    sync = ddp is None or j == cfg.grad_accum - 1
                    with contextlib.nullcontext() if sync or ddp is None else ddp.no_sync():
                        with self._autocast():
                            nll = runner(*batch)
                        (nll * (env.world / max(1, n_sup))).backward()
                    local += nll.detach()
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params_list, cfg.max_grad_norm)
                lr = float(scheduler.get_last_lr()[0])
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                loss_sum = env.all_reduce_sum(local)
                state.train_time_s += time.perf_counter() - t0
                state.global_step += 1
                state.step_in_epoch = s + 1
                state.train_tokens += n_tok
                pending.append((epoch, state.global_step, lr, loss_sum, n_sup, n_tok, state.train_time_s))
                if state.global_step % cfg.log_every == 0 or state.step_in_epoch == len(plan):
                    flush()
                    if bar is not None:
                        bar.update(state.global_step - bar.n)
                        bar.set_postfix(
                            epoch=epoch + 1,
                            loss=f"{state.steps[-1]['loss']:.4f}",
                            tok_s=f"{state.train_tokens / max(state.train_time_s, 1e-9):,.0f}",
                        )
                    if task is not None:
                        task.update(state.global_step, epoch=f"{epoch + 1}/{cfg.epochs}", loss=state.steps[-1]["loss"])
                if self.stop_after_step is not None and state.global_step >= self.stop_after_step:
                    flush()
                    if bar is not None:
                        bar.close()
                    raise TrainingInterrupted(f"stopped after step {state.global_step}")
                if cfg.max_steps and state.global_step >= cfg.max_steps:
                    stopped_early = state.step_in_epoch < len(plan)
                    done = True
                    break
                if (
                    cfg.save_every_steps
                    and state.global_step % cfg.save_every_steps == 0
                    and state.step_in_epoch < len(plan)
                ):
                    flush()
                    last = self._save(f"step-{state.global_step:07d}", model, optimizer, scheduler, state)
            flush()
            self._evaluate_epoch(state, epoch, loss_mod, model, task)
            if stopped_early:  # max_steps inside an epoch: a checkpoint of the partial epoch
                last = self._save(f"step-{state.global_step:07d}", model, optimizer, scheduler, state)
                break
            state.epoch, state.step_in_epoch = epoch + 1, 0
            self._check_patience(state)
            last = self._save(f"epoch-{epoch + 1:03d}", model, optimizer, scheduler, state)
            self._prune(state, keep={self._select(state, last)})
            if state.stopped_by_patience:
                break
        if bar is not None:
            bar.close()
        if task is not None:
            task.close()
        if last is None:
            raise RuntimeError("training finished without a checkpoint")
        selected = self._select(state, last)
        self._prune(state, keep={selected, last})
        return TrainResult(selected=selected, state=state, params=params, precision=self.precision, world=env.world)

    def fill_teacher_cache(self) -> None:
        """``lm.distill_cache``: every training row's teacher targets, computed before the first step in fixed
        batches of rows sorted by length (the same batches, so the same values, when a run resumes)."""
        assert self.distiller is not None
        order = np.argsort(self._lengths, kind="stable")
        bs = self.cfg.batch_size
        n_batches = -(-len(order) // bs)
        task = Task("lm teacher", n_batches, "batch", min_interval_s=1.0) if self.env.is_main else None
        t0, n = time.perf_counter(), 0
        for b, s in enumerate(range(0, len(order), bs)):
            n += self.distiller.fill(*self.collate(order[s : s + bs]))
            if task is not None:
                task.update(b + 1)
        if task is not None:
            task.close()
        self.log(
            f"lm: teacher targets of {len(order):,} training rows ({n:,} distinct) computed in "
            f"{time.perf_counter() - t0:.0f} s and kept "
            f"({self.distiller.cache_nbytes / 2**20:,.0f} MiB; lm.distill_cache)"
        )

    def _evaluate_epoch(self, state: TrainState, epoch: int, loss_mod: SupervisedNLL, model: Any, task: Any) -> None:
        """The end-of-epoch evaluation row (validation loss and accuracies, the recommendation metrics of
        ``lm.select: ndcg``, the epoch's mean training loss), logged and appended to ``state.evals``."""
        cfg = self.cfg
        row = {
            "epoch": epoch + 1,
            "step": state.global_step,
            **self.evaluate(loss_mod),
            **(self._rec_metrics(model) if self.rec_eval is not None else {}),
            "train_loss": float(np.mean([r["loss"] for r in state.steps if r["epoch"] == epoch])),
        }
        state.evals.append(row)
        self.log(
            f"lm: epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}, val loss "
            f"{row['val_loss']:.4f}, val next-item acc {row['val_item_acc']:.4f}"
            + (f", val NDCG@10 {row['val_NDCG@10']:.4f}" if "val_NDCG@10" in row else "")
        )
        if task is not None:
            task.update(
                state.global_step,
                milestone=True,
                epoch=f"{epoch + 1}/{cfg.epochs}",
                train_loss=row["train_loss"],
                val_loss=row["val_loss"],
            )

    def _check_patience(self, state: TrainState) -> None:
        """Mark the run stopped once ``lm.patience`` epochs have passed without a better selection metric (never
        after the last epoch: there is nothing left to stop)."""
        waited = self._epochs_since_best(state)
        if self.cfg.patience is not None and waited >= self.cfg.patience and state.epoch < self.cfg.epochs:
            state.stopped_by_patience = True
            self.log(f"lm: no better {self._metric_name()} for {waited} epoch(s): stopping (lm.patience)")

    def _rec_metrics(self, model: Any) -> dict[str, float]:
        assert self.rec_eval is not None
        was_training = model.training
        model.eval()
        try:
            return {k: float(v) for k, v in self.rec_eval(model).items()}
        finally:
            model.train(was_training)

    def _metric_name(self) -> str:
        return "validation NDCG@10" if self.cfg.select == "ndcg" else "validation loss"

    def _best_index(self, state: TrainState) -> int:
        """The evaluation row of the selection metric's best epoch: lowest val loss (``best``) or highest
        ``val_NDCG@10`` (``ndcg``); ties go to the earlier epoch."""
        if self.cfg.select == "ndcg":
            return max(range(len(state.evals)), key=lambda i: (state.evals[i]["val_NDCG@10"], -i))
        return min(range(len(state.evals)), key=lambda i: (state.evals[i]["val_loss"], i))

    def _epochs_since_best(self, state: TrainState) -> int:
        """Epoch evaluations after the best one (0 when the last is the best, or when nothing is selected)."""
        if self.cfg.select == "last" or not state.evals:
            return 0
        return len(state.evals) - 1 - self._best_index(state)

    def _select(self, state: TrainState, last: Path) -> Path:
        """``last``, or the epoch checkpoint of the best validation loss (``select: best``) or validation
        NDCG@10 (``select: ndcg``)."""
        if self.cfg.select == "last" or not state.evals:
            return last
        best = state.evals[self._best_index(state)]
        folder = self.ckpt_dir / f"epoch-{best['epoch']:03d}"
        return folder if folder.is_dir() else last
