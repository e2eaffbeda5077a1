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
- With a ``checkpoint`` path, the whole training state (weights, Adam's moments, the best epoch so far, the
  curves) is written there after every epoch, and a later call with the same ``key`` continues from it. Since
  an epoch's randomness is a function of ``(seed, epoch)`` only, an interrupted and resumed training ends with
  exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from agrec.baselines.config import SASRecConfig
from agrec.baselines.sasrec import SASRec
from agrec.data.split import LeaveOneOutSplit
from agrec.io import atomic_path
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


def read_checkpoint(path: Path, key: str, log: Callable[[str], None] = print) -> dict[str, Any] | None:
    """The training state :func:`fit` wrote to ``path`` under ``key``; None (and a line in ``log``) when the
    file is absent, unreadable or from another configuration, so that training starts afresh."""
    if not path.is_file():
        return None
    try:
        # weights_only: tensors, numbers, strings and containers of them; nothing executable is unpickled
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: report and start over
        log(f"sasrec: not resuming from {path}: unreadable ({type(e).__name__}: {e})")
        return None
    if not isinstance(state, dict) or state.get("key") != key:
        found = state.get("key") if isinstance(state, dict) else None
        log(f"sasrec: not resuming from {path}: written for configuration {found!r}, this one is {key!r}")
        return None
    return state


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
    checkpoint: Path | None = None,
    key: str = "",
    log: Callable[[str], None] = print,
) -> FitResult:
    """Train ``model`` on ``split.train``; select the epoch by ``evaluate(model)[cfg.valid_metric]``.

    ``evaluate`` returns validation metrics of the model in eval mode (see
    :func:`agrec.baselines.scorer.evaluate_sasrec`); it must not look at the test items.
    ``checkpoint``: a file that holds the training state after each epoch; when it exists and was written
    under the same ``key`` (the caller's hash of everything the training depends on), training continues from
    it. One written under another key, or unreadable, is named in ``log`` and training starts afresh. The
    caller removes the file once the result is stored.
    """
    device = model.device
    windows = training_windows(split.train, cfg.max_seq_length, cfg.train_stride)
    inputs, targets = torch.from_numpy(windows.inputs), torch.from_numpy(windows.targets)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    best_score, best_epoch, best_valid, best_state = -math.inf, 0, {}, None
    bad_evals, epoch, train_seconds, rows = 0, 0, 0.0, []
    saved = read_checkpoint(checkpoint, key, log) if checkpoint is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        best_score, best_epoch, best_valid = saved["best_score"], saved["best_epoch"], saved["best_valid"]
        best_state, bad_evals, epoch = saved["best_state"], saved["bad_evals"], saved["epoch"]
        train_seconds, rows = saved["train_seconds"], saved["rows"]
        log(f"sasrec: resuming after epoch {epoch} from {checkpoint}")
    bar = tqdm(
        total=cfg.epochs,
        initial=epoch,
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
            if checkpoint is not None:
                state = {
                    "key": key,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "best_score": best_score,
                    "best_epoch": best_epoch,
                    "best_valid": best_valid,
                    "best_state": best_state,
                    "bad_evals": bad_evals,
                    "train_seconds": train_seconds,
                    "rows": rows,
                }
                with atomic_path(checkpoint) as tmp:
                    torch.save(state, tmp)
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
