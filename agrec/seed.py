"""One call that seeds every random number generator the pipeline uses."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if installed) PyTorch, and ask PyTorch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import torch
    except ImportError:  # the data stage does not need torch
        return
    # cuBLAS needs this to be deterministic on GPUs; harmless on the CPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    # warn_only: some CUDA kernels have no deterministic version; on the CPU everything does.
    torch.use_deterministic_algorithms(True, warn_only=True)
