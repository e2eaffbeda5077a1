"""Known datasets: where their public files come from, the checksums of those files and what was measured on
them, so that a user's copy can be checked (:mod:`agrec.data.check`, ``agrec data check``) and a run records
whether it used the known files (the data stage).

The entries live in ``registry.yaml`` beside this module. Each names its source (repository, commit, folder)
and, per file, the sha256 where the file could be read, and git's blob id (sha1 of ``"blob <size>\\0"`` + the
bytes), which the repository's tree gives even for files too large to fetch: a copy obtained elsewhere is
still recognised as the authors' file. Values that are not known are left out and reported as such, never
guessed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agrec.errors import DataError

REGISTRY_FILE = Path(__file__).with_name("registry.yaml")
FILE_KINDS = ("inter", "item", "index")  # LC-Rec layout: <D>.inter.json, <D>.item.json, <D>.index.json
# What a registry entry may record, per section (agrec.data.check computes the same keys).
STAT_KEYS = (
    "users",
    "items",
    "interactions",
    "avg_length",
    "min_length",
    "max_length",
    "repeats",
    "test_in_history",
    "valid_in_history",
)
CODE_KEYS = ("entries", "levels", "codebook_sizes", "colliding_items", "collision_groups", "largest_group")
TEXT_KEYS = ("entries", "with_text")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")
CHUNK = 1 << 20


@dataclass(frozen=True)
class FileRecord:
    """What is known of one public file: sha256 (its bytes), git blob id, size in bytes (each None if unknown)."""

    sha256: str | None = None
    git_blob: str | None = None
    bytes: int | None = None


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset of the registry.

    Attributes:
        name: the dataset name (``data.dataset``; the files' prefix).
        source: where the recorded files come from, e.g. ``WangXFng/AGRec @ 63af6b2, data/Instruments/``.
        files: ``{file name: FileRecord}`` of the public files.
        statistics: values of :data:`STAT_KEYS` measured on the inter file (before ``data.min_seq_len``).
        codes: values of :data:`CODE_KEYS` measured on the index file.
        text: values of :data:`TEXT_KEYS` measured on the item file.
        paper: the paper's Table 1 values (keys of :data:`STAT_KEYS`) where they were read; empty if not.
        notes: free text shown by the check.
    """

    name: str
    source: str
    files: dict[str, FileRecord] = field(default_factory=dict)
    statistics: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, Any] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)
    paper: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load_registry(path: str | Path | None = None) -> dict[str, DatasetRecord]:
    """``{dataset name: DatasetRecord}`` from ``path`` (default: the committed ``registry.yaml``).

    A malformed entry is a :class:`DataError` naming the file and the key.
    """
    from agrec.config import load_yaml

    path = Path(path) if path is not None else REGISTRY_FILE
    if not path.is_file():
        raise DataError(f"{path}: registry file not found")
    raw = load_yaml(path.read_text(encoding="utf-8"), source=path)
    if not isinstance(raw, dict) or not isinstance(raw.get("datasets"), dict):
        raise DataError(f"{path}: expected a mapping with a 'datasets' mapping")
    out: dict[str, DatasetRecord] = {}
    for name, entry in raw["datasets"].items():
        out[str(name)] = _entry(path, str(name), entry)
    return out


def _entry(path: Path, name: str, entry: Any) -> DatasetRecord:
    where = f"{path}: datasets.{name}"
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected a mapping")
    unknown = set(entry) - {"source", "files", "statistics", "codes", "text", "paper", "notes"}
    if unknown:
        raise DataError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    if not isinstance(entry.get("source"), str) or not entry["source"]:
        raise DataError(f"{where}.source: expected where the files come from (repository @ commit, folder)")
    files = {}
    for fname, rec in (entry.get("files") or {}).items():
        fw = f"{where}.files.{fname}"
        if not isinstance(rec, dict) or set(rec) - {"sha256", "git_blob", "bytes"}:
            raise DataError(f"{fw}: expected a mapping of sha256 / git_blob / bytes")
        sha, blob, size = rec.get("sha256"), rec.get("git_blob"), rec.get("bytes")
        if sha is not None and not (isinstance(sha, str) and _HEX64.fullmatch(sha)):
            raise DataError(f"{fw}.sha256: expected 64 lower-case hex digits, got {sha!r}")
        if blob is not None and not (isinstance(blob, str) and _HEX40.fullmatch(blob)):
            raise DataError(f"{fw}.git_blob: expected 40 lower-case hex digits, got {blob!r}")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise DataError(f"{fw}.bytes: expected a size in bytes, got {size!r}")
        files[str(fname)] = FileRecord(sha, blob, size)
    sections = {}
    for sec, keys in (("statistics", STAT_KEYS), ("codes", CODE_KEYS), ("text", TEXT_KEYS), ("paper", STAT_KEYS)):
        values = entry.get(sec) or {}
        if not isinstance(values, dict):
            raise DataError(f"{where}.{sec}: expected a mapping")
        bad = [k for k in values if k not in keys]
        if bad:
            raise DataError(f"{where}.{sec}: unknown key {bad[0]!r} (known: {', '.join(keys)})")
        sections[sec] = dict(values)
    notes = entry.get("notes") or []
    if isinstance(notes, str):
        notes = [notes]
    return DatasetRecord(name=name, source=entry["source"], files=files, notes=[str(n) for n in notes], **sections)


def file_digests(path: str | Path) -> tuple[str, str]:
    """``(sha256, git blob id)`` of a file's bytes, in one read."""
    p = Path(path)
    sha = hashlib.sha256()
    blob = hashlib.sha1(f"blob {p.stat().st_size}\0".encode())  # noqa: S324 (git's object id, not security)
    with open(p, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            blob.update(chunk)
    return sha.hexdigest(), blob.hexdigest()
