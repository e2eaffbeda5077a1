"""A folder's ``manifest.json``: the sha256 of every file a writer put there, checked by every reader.

For outputs that live outside a run directory and so have no stage record (``agrec seeds``' aggregate under
``reports/…/seeds/``, read by ``agrec table2`` from a committed report): a file edited by hand, cut short or
deleted gives a named error instead of a silently different table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from agrec.errors import AgrecError
from agrec.fingerprint import sha256_file
from agrec.io import atomic_write_json

MANIFEST = "manifest.json"
FORMAT = 1


class ManifestError(AgrecError):
    """A folder's files are not those its writer recorded."""


def write_manifest(folder: Path, names: Sequence[str], kind: str) -> Path:
    """Record the sha256 of ``folder/<name>`` for every name (write the manifest after the files)."""
    files = {name: sha256_file(folder / name) for name in names}
    return atomic_write_json(folder / MANIFEST, {"kind": kind, "format": FORMAT, "files": files})


def update_manifest(folder: Path, names: Sequence[str], kind: str) -> Path:
    """Record (or re-record) the sha256 of ``names`` in ``folder``'s manifest, keeping its other entries (for a
    folder several writers fill one file at a time, such as a report's ``results/``)."""
    files: dict[str, str] = {}
    try:
        rec = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if isinstance(rec, dict) and rec.get("kind") == kind and isinstance(rec.get("files"), dict):
            files = {k: v for k, v in rec["files"].items() if (folder / k).is_file()}
    except (OSError, ValueError):
        pass
    files.update({name: sha256_file(folder / name) for name in names})
    return atomic_write_json(folder / MANIFEST, {"kind": kind, "format": FORMAT, "files": dict(sorted(files.items()))})


def check_manifest(folder: Path, kind: str, needed: Sequence[str], remedy: str) -> None:
    """Raise :class:`ManifestError` unless ``folder``'s manifest is of ``kind``, lists every name of ``needed``,
    and every file it lists is present with its recorded sha256. ``remedy`` ends each message (what to rerun)."""
    path = folder / MANIFEST
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(
            f"{path} is missing: the files of {folder} cannot be checked against what their writer recorded; {remedy}"
        ) from None
    except (OSError, ValueError) as e:
        raise ManifestError(f"{path}: cannot be read ({type(e).__name__}); {remedy}") from None
    files = rec.get("files") if isinstance(rec, dict) else None
    if not isinstance(files, dict) or rec.get("kind") != kind:
        raise ManifestError(f"{path}: not a manifest of {kind}; {remedy}")
    absent = [n for n in needed if n not in files]
    if absent:
        raise ManifestError(f"{path} does not list {', '.join(absent)}; {remedy}")
    for name, sha in files.items():
        f = folder / name
        if not f.is_file():
            raise ManifestError(f"{f} is missing (listed in {path}); {remedy}")
        if sha256_file(f) != sha:
            raise ManifestError(f"{f} was changed after it was written (sha256 differs from {path}); {remedy}")
