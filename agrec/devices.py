"""Where a stage computes: one validator and one resolver for every ``device`` key of a profile.

The keys (``semantic_ids.device``, ``gnn.train.device``, ``baselines.sasrec.device``, ``decode.device``) accept
the same four forms; they used to be checked by four slightly different tests, one of which let ``cuda:x``
through to a crash deep inside torch. Asking for a GPU that torch cannot see is an error naming the key, not a
silent fall-back to the CPU: a profile that says ``cuda`` means it, only ``auto`` falls back.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from agrec.errors import AgrecError, ConfigError

if TYPE_CHECKING:  # torch is imported lazily, so that reading a profile stays cheap
    import torch

DEVICE_FORMS = "'cpu', 'cuda', 'cuda:N' or 'auto'"
_DEVICE = re.compile(r"cpu|cuda|auto|cuda:\d+")


def check_device(value: object, key: str) -> None:
    """Raise :class:`ConfigError` naming ``key`` unless ``value`` is one of :data:`DEVICE_FORMS`."""
    if not isinstance(value, str) or not _DEVICE.fullmatch(value):
        raise ConfigError(f"{key} must be {DEVICE_FORMS}, got {value!r}")


def resolve_device(name: str, key: str, process_device: "torch.device | None" = None) -> "torch.device":
    """The device a ``device`` key names.

    ``"cpu"`` is the CPU; ``"auto"`` is the GPU where torch sees one, else the CPU; ``"cuda"`` (and ``"auto"``
    with a GPU) is ``process_device`` when that is a GPU (the one torchrun gave this process, see
    :func:`agrec.lm.distributed.init_distributed`), else the current GPU; ``"cuda:N"`` is GPU N. A GPU that
    torch cannot see raises :class:`AgrecError` naming ``key``.
    """
    import torch

    check_device(name, key)
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise AgrecError(
            f"{key} is {name!r} but torch sees no CUDA device (torch {torch.__version__}); use 'cpu' or 'auto'"
        )
    if name in ("cuda", "auto"):
        if process_device is not None and process_device.type == "cuda":
            return process_device
        return torch.device("cuda", torch.cuda.current_device())
    index = int(name.split(":")[1])
    if index >= torch.cuda.device_count():
        raise AgrecError(f"{key} is {name!r} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    return torch.device("cuda", index)
