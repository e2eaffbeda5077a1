"""How training samples become micro-batches (``lm.batching``): padded, length-bucketed or packed.

- ``pad`` (the original loop): each epoch a permutation drawn from ``(seed, epoch)`` is cut into
  global batches of ``batch_size x grad_accum x world`` samples, each split into ``grad_accum x world``
  micro-batches (micro-batch ``j`` of process ``r`` is part ``j * world + r``); a micro-batch is
  right-padded to its longest sample. On datasets of short, uneven sequences (Amazon: most Eq. 7
  windows hold 2-8 items, a few hold 21) most of each padded batch is padding.
- ``bucket``: the samples are sorted by length (ties broken by the epoch's random permutation) and cut
  into global batches the same way, whose order is then shuffled with the same generator. Batches
  hold samples of (nearly) one length, so padding all but vanishes; the batches differ from ``pad``'s
  (samples of one length train together), so the optimisation is not the same run.
- ``pack``: the very micro-batches of ``pad`` (same samples per optimizer step, same loss
  normaliser, so the same training run up to floating-point rounding), but each micro-batch's samples
  are packed into rows of at most ``lm.pack_length`` tokens (first-fit decreasing) instead of one
  padded row each. Position ids restart at 0 for every sample and a block-diagonal causal mask keeps
  every token from attending outside its own sample, so each supervised token's NLL is that of the
  sample on its own. The mask is a 4-D tensor (boolean for sdpa, additive for eager attention), which
  transformers passes to the attention as it is; flash-attention kernels take no 4-D mask
  (:func:`check_packable`).

All plans are pure functions of ``(seed, epoch)``, which exact resume relies on.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from agrec.errors import ConfigError
from agrec.lm.prompts import IGNORE, Samples

BATCHINGS = ("pad", "bucket", "pack")
# attention implementations that take a custom 4-D mask as it is (transformers' masking_utils returns
# a 4-D mask unchanged; sdpa reads a boolean one, eager adds it to the scores)
PACKABLE_ATTENTION = ("sdpa", "eager")

Plan = list[list[np.ndarray]]  # global batches, each a list of grad_accum x world index arrays


def _split_global(order: np.ndarray, per_step: int, parts: int) -> Plan:
    plan = []
    for s in range(0, len(order), per_step):
        chunk = order[s : s + per_step]
        if len(chunk) < parts:  # too few to give every micro-batch a sample: dropped
            break
        plan.append(np.array_split(chunk, parts))
    return plan


def epoch_plan(n: int, seed: int, epoch: int, batch_size: int, grad_accum: int, world: int) -> Plan:
    """``pad`` (and ``pack``): the epoch's global batches from a permutation of ``(seed, epoch)``."""
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return _split_global(perm, batch_size * grad_accum * world, grad_accum * world)


def bucket_plan(lengths: np.ndarray, seed: int, epoch: int, batch_size: int, grad_accum: int, world: int) -> Plan:
    """``bucket``: global batches of consecutive samples in length order (ties in the order of the
    epoch's permutation), in a shuffled order; both draws come from ``(seed, epoch)``."""
    lengths = np.asarray(lengths)
    rng = np.random.default_rng([seed, epoch])
    rank = np.empty(len(lengths), dtype=np.int64)
    rank[rng.permutation(len(lengths))] = np.arange(len(lengths))
    order = np.lexsort((rank, lengths))  # by length, then by random rank
    plan = _split_global(order, batch_size * grad_accum * world, grad_accum * world)
    return [plan[i] for i in rng.permutation(len(plan))]


def pack_rows(lengths: np.ndarray, capacity: int) -> list[np.ndarray]:
    """First-fit decreasing: positions into ``lengths`` grouped into rows of at most ``capacity`` tokens.

    Rows are in the order they were opened, samples within a row in the order they were placed
    (longest first; equal lengths in input order), so the result is a function of ``lengths`` alone.
    Raises ValueError for a sample longer than ``capacity``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) and int(lengths.max()) > capacity:
        raise ValueError(f"a sample of {int(lengths.max())} tokens does not fit a row of {capacity}")
    free: list[int] = []
    rows: list[list[int]] = []
    for i in np.argsort(-lengths, kind="stable"):
        n = int(lengths[i])
        for r, f in enumerate(free):
            if n <= f:
                rows[r].append(int(i))
                free[r] -= n
                break
        else:
            rows.append([int(i)])
            free.append(capacity - n)
    return [np.asarray(r, dtype=np.int64) for r in rows]


class PackedBatch(NamedTuple):
    """A packed micro-batch; a tuple in :meth:`SupervisedNLL.forward`'s argument order.

    ``input_ids``, ``labels``, ``position_ids``, ``segment_ids``: ``LongTensor[R, T]`` (``R`` rows of
    ``T`` = the longest row's tokens). ``segment_ids`` numbers the samples of a row 0, 1, …; the
    padding after the last one is segment ``-1``. ``attention_mask`` is None: the loss module builds
    the 4-D mask from ``segment_ids`` (:func:`block_causal_mask`) in the form its attention takes.
    """

    input_ids: torch.Tensor
    attention_mask: None
    labels: torch.Tensor
    position_ids: torch.Tensor
    segment_ids: torch.Tensor


def collate_packed(samples: Samples, idx: np.ndarray, pad_id: int, device: torch.device, capacity: int) -> PackedBatch:
    """Samples ``idx`` packed into rows of at most ``capacity`` tokens (:func:`pack_rows`).

    Each sample's first label is set to :data:`IGNORE`: in a row it follows another sample's last
    token, which must not predict it (on its own a sample's first label is never used either).
    """
    idx = np.asarray(idx)
    lengths = np.fromiter((len(samples.input_ids[i]) for i in idx), dtype=np.int64, count=len(idx))
    rows = pack_rows(lengths, capacity)
    T = max(int(lengths[r].sum()) for r in rows)
    ids = np.full((len(rows), T), pad_id, dtype=np.int64)
    labels = np.full((len(rows), T), IGNORE, dtype=np.int64)
    pos = np.zeros((len(rows), T), dtype=np.int64)
    seg = np.full((len(rows), T), -1, dtype=np.int64)
    for r, row in enumerate(rows):
        t = 0
        for k, j in enumerate(row):
            i = idx[j]
            n = int(lengths[j])
            ids[r, t : t + n] = samples.input_ids[i]
            labels[r, t : t + n] = samples.labels[i]
            labels[r, t] = IGNORE
            pos[r, t : t + n] = np.arange(n)
            seg[r, t : t + n] = k
            t += n
        pos[r, t:] = np.arange(T - t)  # the padding tail: a segment of its own (no fully masked query)
    as_t = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return PackedBatch(as_t(ids), None, as_t(labels), as_t(pos), as_t(seg))


def block_causal_mask(
    segment_ids: torch.Tensor, attn_implementation: str, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``[R, 1, T, T]``: query ``q`` may attend key ``k`` iff ``k <= q`` and both are in one segment.

    Boolean (True = attend) for ``sdpa``; additive (0 or the dtype's minimum) for ``eager``.
    """
    T = segment_ids.shape[1]
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    causal = torch.ones(T, T, dtype=torch.bool, device=segment_ids.device).tril()
    return attention_form(same & causal, attn_implementation, dtype, "lm.batching 'pack'")


def attention_form(
    allowed: torch.Tensor, attn_implementation: str, dtype: torch.dtype = torch.float32, what: str = "a 4-D mask"
) -> torch.Tensor:
    """``allowed`` ``[R, T, T]`` (True: query may attend key) -> ``[R, 1, T, T]`` in the form the attention
    takes: boolean for ``sdpa``, additive (0 or the dtype's minimum) for ``eager``. ``what`` names the feature
    that needs it in the error for any other implementation."""
    allowed = allowed.unsqueeze(1)
    if attn_implementation == "sdpa":
        return allowed
    if attn_implementation == "eager":
        zero = torch.zeros((), dtype=dtype, device=allowed.device)
        return torch.where(allowed, zero, torch.finfo(dtype).min)
    raise ConfigError(f"{what} needs sdpa or eager attention, the model uses {attn_implementation!r}")


def attn_implementation(model) -> str:
    """The attention implementation of a (possibly PEFT-wrapped) HF model."""
    from agrec.lm.finetune import unwrap

    return str(getattr(getattr(unwrap(model), "config", None), "_attn_implementation", None))


def check_packable(model, what: str | None = None) -> None:
    """A :class:`ConfigError` unless ``model`` takes a custom 4-D attention mask (sdpa or eager); ``what`` names the
    feature that needs it (default: ``lm.batching 'pack'``)."""
    impl = attn_implementation(model)
    if impl in PACKABLE_ATTENTION:
        return
    # packing's mask is block-diagonal, and padded batches are its alternative
    packing = what is None
    need = "lm.batching 'pack'" if packing else what
    mask = "4-D block-diagonal mask" if packing else "4-D mask"
    raise ConfigError(
        f"{need} needs attention that takes a {mask} ({' or '.join(PACKABLE_ATTENTION)}); this backbone uses "
        f"{impl!r}, which does not (flash-attention kernels reject 4-D masks)"
        + (". Use lm.batching 'bucket' instead." if packing else "")
    )
