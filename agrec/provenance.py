"""Provenance of the software a run used: the dependency lock of the source checkout.

``requirements/cpu.lock`` (pip-tools, see the Makefile's ``lock`` target) pins every dependency of the CPU
path; ``make setup`` installs under it. Its sha256 goes into every stage record (through
:func:`agrec.rundir.library_versions`), so two runs can be told apart by the dependency set they were
set up from, not only by the handful of versions listed there.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

LOCK_FILE = Path("requirements") / "cpu.lock"


def source_root() -> Path:
    """The checkout this package is imported from (the folder holding ``agrec/``)."""
    return Path(__file__).resolve().parents[1]


def lock_hash(root: Path | None = None) -> str | None:
    """sha256 (hex) of ``<root>/requirements/cpu.lock``; ``root`` defaults to :func:`source_root`.

    None when there is no lock file (an install from a wheel or sdist carries none).
    """
    path = (root if root is not None else source_root()) / LOCK_FILE
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
