"""What a notebook opens first: the profile, its run directory and its report writer."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agrec.config import Profile, load_profile
from agrec.run.report import Report
from agrec.run.rundir import RunDir
from agrec.run.runlock import acquire as acquire_lock
from agrec.seed import seed_everything
from agrec.threads import set_num_threads


class RunContext(Protocol):
    """What the functions that only read or key a run need: its profile and its run folder (a
    :class:`Session`, or a stage's loaded inputs such as :class:`agrec.data.stage.RunData`)."""

    @property
    def profile(self) -> Profile: ...

    @property
    def run(self) -> RunDir: ...


@dataclass
class Session:
    profile: Profile
    run: RunDir
    report: Report

    @property
    def seed(self) -> int:
        return self.profile.seed


def open_session(
    config_path: str | Path,
    *,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    seed: int | None = None,
    run_dir: str | Path | None = None,
    report_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Session:
    """Load a profile with a notebook's parameter overrides, seed every RNG and take the run folder's writer
    lock (:mod:`agrec.run.runlock`; held until the process ends).

    ``dataset``, ``data_dir`` and ``seed`` are shortcuts for the overrides ``data.dataset``,
    ``data.path`` and ``seed``; ``data_dir``, ``run_dir`` and ``report_dir`` are relative to the
    current folder (unlike paths inside the profile, which are relative to the profile file).
    None means "as in the profile".
    """
    ov: dict[str, Any] = dict(overrides or {})
    if dataset is not None:
        ov["data.dataset"] = dataset
    if data_dir is not None:
        ov["data.path"] = str(Path(data_dir).resolve())
    if seed is not None:
        ov["seed"] = seed
    profile = load_profile(config_path, ov)
    seed_everything(profile.seed)
    set_num_threads(profile.pipeline.num_threads)
    _inline_figures()
    run = RunDir(Path(run_dir).resolve() if run_dir is not None else profile.run_dir)
    if os.environ.get("RANK", "0") == "0":
        # The session may compute and write stages: it is the run folder's writer until its process ends
        # (a notebook kernel, a launcher). Under ``agrec run`` the runner holds the lock for its kernels; the
        # other processes of a torchrun launch work under rank 0's.
        acquire_lock(run.root, command=_session_command(config_path))
    report = Report(Path(report_dir).resolve() if report_dir is not None else profile.report_dir)
    return Session(profile=profile, run=run, report=report)


def _session_command(config_path: str | Path) -> str | None:
    """How a session's lock names a notebook kernel (None: the process's own command line)."""
    return f"notebook kernel on {config_path}" if "ipykernel" in " ".join(sys.argv) else None


def _inline_figures() -> None:
    """Inside a notebook kernel, show matplotlib Figure objects as PNG outputs.

    The inline backend registers its PNG formatter only once pyplot is set up; the library builds
    figures with ``matplotlib.figure.Figure`` (no global state), so it is switched on here.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is not None and getattr(ip, "kernel", None) is not None:
        ip.run_line_magic("matplotlib", "inline")
