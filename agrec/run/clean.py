"""``agrec clean``: remove what killed writers left in a profile's run and report folders, running nothing.

Every file and folder agrec writes is written under a temporary name that carries its writer
(:func:`agrec.io.temp_prefix`) and then renamed into place. A writer killed mid-write (SIGKILL, the out-of-memory
killer, a lost machine) leaves that temporary behind. A stage sweeps its own folders when it next recomputes
(:meth:`agrec.run.rundir.RunDir.invalidate`) and the notebook runner sweeps the report folder, so a folder whose stage
stays current keeps a dead writer's leftovers, checkpoints included, until then. This sweeps them now.

Only temporaries whose writer is gone from this host are touched: never a live process's (a run going on beside
this command keeps its files), never another host's on a shared disk; symbolic links are not followed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from agrec.config import load_profile
from agrec.io import remove_orphaned_temps


def clean(
    config_path: str | Path,
    overrides: dict[str, Any] | None = None,
    dry_run: bool = False,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Remove (``dry_run``: list) the orphaned temporaries at every level of the profile's run folder and report
    folder (``<runs_dir>/<dataset>/<name>[/<pipeline.variant>]``, the same under ``reports_dir``; without a variant
    its variants, e.g. ``seeds/<seed>``, are sub-folders and are swept too). Returns what was (would be) removed."""
    profile = load_profile(config_path, overrides)
    both = list(dict.fromkeys((profile.run_dir, profile.report_dir)))
    # a folder inside the other (reports_dir under the run folder) is swept with it, so nothing is listed twice
    folders = [f for f in both if not any(g != f and f.is_relative_to(g) for g in both)]
    found: list[Path] = []
    for folder in folders:
        found += remove_orphaned_temps(folder, recursive=True, log=log, dry_run=dry_run)
    n = len(found)
    what = f"{n} temporar{'y' if n == 1 else 'ies'} of writers that are gone"
    log(f"agrec clean: {'would remove' if dry_run else 'removed'} {what} under {' and '.join(map(str, folders))}")
    return found
