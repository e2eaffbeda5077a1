"""Which report files each stage's execution wrote, so that a rerun leaves none of an older run behind.

A stage's notebook writes tables, figures and results into the report folder (:class:`agrec.run.report.Report`);
the folder is shared by all stages and outlives the run that filled it. When a stage executes again with a profile
or code that no longer writes some file (a decode row dropped from the profile, a table renamed), that file would
otherwise stay beside the new ones and read as part of the new report. The runner therefore records, in each
executed notebook's ``agrec`` metadata, the list ``outputs`` of report files its execution created or replaced;
after the next successful execution of the same stage it removes the files of the previous list that this one did
not write and that no other stage claims. A failed execution removes nothing, so the last good report stays whole.

Files are told apart by (inode, mtime, size): every report file is written to a temporary file and renamed
(:mod:`agrec.io`), so a rewritten file always has a new inode, even when its bytes are the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

from agrec.manifest import MANIFEST, update_manifest

# What a stage's notebook writes into (agrec.run.report.Report); the notebooks themselves, index.md, seeds/ and
# sweeps/ belong to the runner and to other commands.
STAGE_SUBDIRS = ("figures", "tables", "results")
# Shared by every stage and rewritten by the runner or by each writer: never a stage's own output.
SHARED = frozenset({f"results/{MANIFEST}", "results/pipeline.json"})

Signature = tuple[int, int, int]


def snapshot(report_dir: Path) -> dict[str, Signature]:
    """``{relative path: (inode, mtime_ns, size)}`` of every stage-written file under ``report_dir``
    (temporary files, whose names start with ``.``, excluded)."""
    files: dict[str, Signature] = {}
    for sub in STAGE_SUBDIRS:
        root = report_dir / sub
        if not root.is_dir():
            continue
        for p in root.rglob("*"):
            if p.name.startswith(".") or not p.is_file():
                continue
            rel = p.relative_to(report_dir).as_posix()
            if rel in SHARED:
                continue
            st = p.stat()
            files[rel] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return files


def written_since(report_dir: Path, before: dict[str, Signature]) -> list[str]:
    """The files of ``report_dir`` created or replaced since ``before`` was taken, sorted."""
    return sorted(rel for rel, sig in snapshot(report_dir).items() if before.get(rel) != sig)


def claimed(notebooks: Iterable[Path]) -> tuple[set[str], bool]:
    """The union of the ``outputs`` recorded in ``notebooks`` (executed stage notebooks), and whether every one of
    them has such a record (a notebook executed before the runner recorded outputs has none)."""
    names: set[str] = set()
    complete = True
    for nb in notebooks:
        outs = read_outputs(nb)
        if outs is None:
            complete = False
        else:
            names.update(outs)
    return names, complete


def read_outputs(notebook: Path) -> list[str] | None:
    """The ``outputs`` the runner recorded in an executed notebook; None if it has none or cannot be read."""
    try:
        meta = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
        outs = meta.get("agrec", {}).get("outputs")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(outs, list) or not all(isinstance(o, str) for o in outs):
        return None
    return outs


def remove(report_dir: Path, names: Iterable[str], log: Callable[[str], None], why: str) -> list[str]:
    """Delete ``report_dir/<name>`` for each name (only inside the stage folders; a name that escapes them is
    skipped), forget removed results in ``results/manifest.json``, log one line; return what was removed."""
    gone: list[str] = []
    for rel in sorted(set(names)):
        path = report_dir / rel
        parts = Path(rel).parts
        if not parts or parts[0] not in STAGE_SUBDIRS or ".." in parts or rel in SHARED:
            continue
        if path.is_file():
            path.unlink()
            gone.append(rel)
    if any(rel.startswith("results/") for rel in gone) and (report_dir / "results" / MANIFEST).is_file():
        from agrec.run.report import RESULTS_KIND

        update_manifest(report_dir / "results", [], RESULTS_KIND)  # keeps only the entries still on disk
    if gone:
        log(f"  removed {len(gone)} report file(s) {why}: {', '.join(gone)}")
    return gone
