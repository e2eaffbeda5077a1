"""Training of SASRec on the training split: cross-entropy epochs, validation NDCG@10, early stopping.

Training data (:func:`training_windows`): RecBole's sequential augmentation — for every user and every prefix
``s[:j]`` of the training sequence (``j >= 1``), truncated to its last ``max_seq_length`` items, predict
``s[j]`` — computed with shared forward passes: a window of up to ``max_seq_length`` items predicts the next
item at each of its positions, and causality plus right padding make the output at position t exactly the
output of the prefix ending there. With ``train_stride = 1`` the trained (context, target) pairs are exactly
RecBole's; a larger stride trains each target with at least ``max_seq_length - train_stride + 1`` items of
context (all of them when fewer precede it), in fewer windows.

- Only ``split.train`` is trained on and ``split.valid`` selects the model; the test item is never read.
- Every source of randomness of epoch ``e`` (window order, dropout) derives from ``(seed, e)``; the global
  torch RNG is restored afterwards. Same seed, same thread count -> the same weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from agrec.baselines.config import SASRecConfig
from agrec.baselines.sasrec import SASRec
from agrec.data.split import LeaveOneOutSplit
from agrec.progress import Task


@dataclass
class Windows:
    """Training windows: ``inputs [W, L]`` right-padded model ids (item + 1, 0 = padding) and ``targets [W, L]``
    the project item id each position predicts (-1: not trained); ``n_targets [W]`` trained positions per row."""

    inputs: np.ndarray
    targets: np.ndarray
    n_targets: np.ndarray

    def __len__(self) -> int:
        return len(self.inputs)


def training_windows(train: list[np.ndarray], max_seq_length: int, stride: int = 1) -> Windows:
    """Cut each training sequence into windows that together predict every item but the first exactly once.

    For a sequence ``s`` of ``n`` items: the first window is ``s[:min(n-1, L)]`` and predicts ``s[1..]`` at every
    position; then windows ``s[b-L:b]`` for ``b = L + stride, L + 2*stride, …`` (and finally ``n - 1``) predict
    the targets ``s[j]``, ``j`` in ``(previous b, b]``, from their last positions. Users with one training item
    have nothing to predict and give no window.
    """
    L = max_seq_length
    rows: list[tuple[np.ndarray, np.ndarray, int]] = []  # (window items, its targets, first trained position)
    for s in train:
        s = np.asarray(s, dtype=np.int64)
        n = len(s)
        if n < 2:
            continue
        b = min(n - 1, L)
        rows.append((s[:b], s[1 : b + 1], 0))
        while b < n - 1:
            prev, b = b, min(b + stride, n - 1)
            # window s[b-L:b]; position p predicts s[b-L+p+1]; targets j in (prev, b] sit at p = j-(b-L)-1
            rows.append((s[b - L : b], s[b - L + 1 : b + 1], prev - (b - L)))
    W = len(rows)
    inputs = np.zeros((W, L), dtype=np.int64)
    targets = np.full((W, L), -1, dtype=np.int64)
    for w, (items, tgt, first) in enumerate(rows):
        inputs[w, : len(items)] = items + 1
        targets[w, first : len(tgt)] = tgt[first:]
    return Windows(inputs=inputs, targets=targets, n_targets=(targets >= 0).sum(1))


def target_batches(
    windows: Windows, batch_size: int, rng: np.random.Generator, batching: str = "shuffle"
) -> list[np.ndarray]:
    """Shuffled window indices grouped so that each group trains about ``batch_size`` targets (a window is
    never split: a group ends with the window that crosses a multiple of ``batch_size``).

    ``batching="bucket"``: the shuffled windows are put in length order (ties keep the shuffle's order) before
    grouping, and the groups are then shuffled. A batch's windows are then of about one length, so trimming the
    all-padding columns leaves little padding: on short, uneven sequences (Amazon: 8 items on average, up to 50)
    a shuffled batch is padded to its longest window and most of its positions are padding.
    """
    order = rng.permutation(len(windows))
    if batching == "bucket":
        lengths = (windows.inputs > 0).sum(1)
        order = order[np.argsort(lengths[order], kind="stable")]
    elif batching != "shuffle":
        raise ValueError(f"batching must be 'shuffle' or 'bucket', got {batching!r}")
    before = np.cumsum(windows.n_targets[order]) - windows.n_targets[order]
    group = before // batch_size
    cuts = np.flatnonzero(np.diff(group)) + 1
    groups = np.split(order, cuts) if len(order) else []
    if batching == "bucket":
        groups = [groups[i] for i in rng.permutation(len(groups))]
    return groups


@dataclass
class FitResult:
    """What :func:`fit` reports; the model holds the best weights afterwards (eval mode)."""

    best_epoch: int
    best_valid: dict[str, float]
    epochs_run: int
    stopped_early: bool
    train_seconds: float  # optimisation time only, summed over epochs
    curves: pd.DataFrame  # per epoch: loss, seconds, validation metrics (when evaluated)
    n_windows: int
    n_targets: int

    @property
    def seconds_per_epoch(self) -> float:
        return self.train_seconds / max(self.epochs_run, 1)


def epoch_seeds(seed: int, epoch: int) -> tuple[np.random.Generator, int]:
    """The window-order generator and the torch (dropout) seed of one epoch, a pure function of (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    torch_seed = int(np.random.SeedSequence([seed, epoch, 1]).generate_state(1, np.uint64)[0] >> 1)
    return rng, torch_seed


def fit(
    model: SASRec,
    split: LeaveOneOutSplit,
    cfg: SASRecConfig,
    seed: int,
    evaluate: Callable[[SASRec], dict[str, float]],
    progress: bool | None = None,
) -> FitResult:
    """Train ``model`` on ``split.train``; select the epoch by ``evaluate(model)[cfg.valid_metric]``.

    ``evaluate`` returns validation metrics of the model in eval mode (see
    :func:`agrec.baselines.scorer.evaluate_sasrec`); it must not look at the test items.
    """
    device = model.device
    windows = training_windows(split.train, cfg.max_seq_length, cfg.train_stride)
    inputs, targets = torch.from_numpy(windows.inputs), torch.from_numpy(windows.targets)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    best_score, best_epoch, best_valid, best_state = -math.inf, 0, {}, None
    bad_evals, epoch, train_seconds, rows = 0, 0, 0.0, []
    bar = tqdm(
        total=cfg.epochs,
        desc="sasrec",
        mininterval=1.0,
        unit="epoch",
        disable=not (cfg.progress if progress is None else progress),
    )
    task = Task("sasrec", cfg.epochs, "epoch")  # the CLI's view (agrec.progress); a no-op in a notebook
    try:
        while epoch < cfg.epochs and bad_evals < cfg.patience:
            rng, torch_seed = epoch_seeds(seed, epoch)
            model.train()
            t0 = time.perf_counter()
            total, n_batches = 0.0, 0
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(torch_seed)
                for idx in target_batches(windows, cfg.batch_size, rng, cfg.batching):
                    idx_t = torch.from_numpy(idx)
                    width = int((inputs[idx_t] > 0).sum(1).max())  # right padding: drop all-padding columns
                    loss = model.calculate_loss(inputs[idx_t, :width].to(device), targets[idx_t, :width].to(device))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach())
                    n_batches += 1
            seconds = time.perf_counter() - t0
            train_seconds += seconds
            epoch += 1
            row: dict[str, float] = {"epoch": epoch, "loss": total / max(n_batches, 1), "seconds": seconds}
            bar.update(1)
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                valid = evaluate(model)
                row.update({f"valid_{k}": v for k, v in valid.items()})
                score = valid[cfg.valid_metric]
                if score > best_score:
                    best_score, best_epoch, best_valid, bad_evals = score, epoch, valid, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    bad_evals += 1
                bar.set_postfix(
                    {
                        "loss": f"{row['loss']:.4f}",
                        f"valid {cfg.valid_metric}": f"{score:.4f}",
                        "best": f"{best_score:.4f}@{best_epoch}",
                    }
                )
                shown: dict[str, Any] = {"loss": f"{row['loss']:.4f}", f"valid_{cfg.valid_metric}": f"{score:.4f}"}
                task.update(epoch, milestone=True, **shown)
            else:
                task.update(epoch, loss=f"{row['loss']:.4f}")
            rows.append(row)
        task.close(best_epoch=best_epoch)
    finally:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(
        best_epoch=best_epoch,
        best_valid=dict(best_valid),
        epochs_run=epoch,
        stopped_early=epoch < cfg.epochs,
        train_seconds=train_seconds,
        curves=pd.DataFrame(rows),
        n_windows=len(windows),
        n_targets=int(windows.n_targets.sum()),
    )
