"""Which report files each stage's execution wrote, so that a stage executed again does not leave its old files.

A stage's notebook writes tables, figures and results into the report folder (:class:`agrec.run.report.Report`);
the folder is shared by all stages and outlives the run that filled it. When a stage executes again with a profile
or code that no longer writes some file (a decode row dropped from the profile, a table renamed), that file would
otherwise stay beside the new ones and read as part of the new report. The runner therefore records, in each
executed notebook's ``agrec`` metadata, the list ``outputs`` of report files its execution created or replaced;
after the next successful execution of the same stage it removes the files of the previous list that this one did
not write and that no other stage claims. A failed execution removes nothing (the files it wrote before its failing
cell stay, as does the partial notebook). Once every executed stage notebook of the folder records its outputs, the
runner also removes the files of the stage folders that none of them claims: left by an execution from before this
record existed, written by hand or by a notebook run interactively on the profile's report folder.

What this does not cover: a stage whose report is reused keeps its recorded list (or none, if it predates the
record); a file two stages write (``figures/alpha_curve.png``, decode and analysis) stays while either claims it;
the notebook of a stage a profile no longer runs stays until removed by hand; sweep points and seed sub-folders are
report folders of their own.

Files are told apart by (inode, mtime, size): every report file is written to a temporary file and renamed
(:mod:`agrec.io`), so a rewritten file always has a new inode, even when its bytes are the same.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from agrec.manifest import MANIFEST, update_manifest

# What a stage's notebook writes into (agrec.run.report.Report); the notebooks themselves, index.md, seeds/ and
# sweeps/ belong to the runner and to other commands.
STAGE_SUBDIRS = ("figures", "tables", "results")
# Shared by every stage and rewritten by the runner or by each writer: never a stage's own output.
SHARED = frozenset({f"results/{MANIFEST}", "results/pipeline.json"})

Signature = tuple[int, int, int]


def snapshot(report_dir: Path) -> dict[str, Signature]:
    """``{relative path: (inode, mtime_ns, size)}`` of every stage-written file under ``report_dir``: regular files
    below the stage folders, reached without following a symbolic link (a linked folder or file is never a stage's
    output), temporary files (names starting with ``.``) and the shared files excluded."""
    files: dict[str, Signature] = {}
    for sub in STAGE_SUBDIRS:
        root = report_dir / sub
        if root.is_symlink() or not root.is_dir():
            continue
        for dirpath, _dirnames, filenames in os.walk(root):  # os.walk does not descend into linked folders
            for name in filenames:
                p = Path(dirpath) / name
                if name.startswith(".") or p.is_symlink() or not p.is_file():
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


def read_stamp(notebook: Path) -> dict[str, Any]:
    """What the runner stamped into an executed notebook's ``agrec`` metadata (``report_key``, ``seconds``,
    ``refreshed``, ``resources``, ``outputs``); {} if missing or unreadable."""
    try:
        meta = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
        stamp = meta.get("agrec", {}) if isinstance(meta, dict) else {}
        return stamp if isinstance(stamp, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def outputs_of(stamp: dict[str, Any]) -> list[str] | None:
    """The ``outputs`` of a notebook's stamp (:func:`read_stamp`); None if it records none, or not as a list of
    names."""
    outs = stamp.get("outputs")
    if not isinstance(outs, list) or not all(isinstance(o, str) for o in outs):
        return None
    return outs


def read_outputs(notebook: Path) -> list[str] | None:
    """The ``outputs`` the runner recorded in an executed notebook; None if it has none or cannot be read."""
    return outputs_of(read_stamp(notebook))


def remove(report_dir: Path, names: Iterable[str], log: Callable[[str], None], why: str) -> list[str]:
    """Delete the files ``names`` (paths relative to ``report_dir``) that are stage-written files of the folder now
    (:func:`snapshot`: nothing shared, linked, temporary or outside the stage folders, whatever a hand-edited record
    says), forget removed results in ``results/manifest.json``, log one line; return what was removed. A file that
    cannot be removed is named in the log and kept: the stage's execution has already succeeded."""
    present = snapshot(report_dir)
    gone: list[str] = []
    try:
        for rel in sorted(set(names) & set(present)):
            try:
                (report_dir / rel).unlink()
            except OSError as e:
                log(f"  could not remove {rel} from {report_dir} ({type(e).__name__}: {e}); it is kept")
                continue
            gone.append(rel)
    finally:
        if any(rel.startswith("results/") for rel in gone):
            _forget_results(report_dir / "results")
    if gone:
        log(f"  removed {len(gone)} report file(s) {why}: {', '.join(gone)}")
    return gone


def _forget_results(folder: Path) -> None:
    """Drop the entries of removed files from ``folder/manifest.json``, if it is a readable results manifest (one
    that is not is left for the readers' own check to name)."""
    from agrec.run.report import RESULTS_KIND

    try:
        rec = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(rec, dict) and rec.get("kind") == RESULTS_KIND and isinstance(rec.get("files"), dict):
        update_manifest(folder, [], RESULTS_KIND)  # keeps only the entries still on disk
