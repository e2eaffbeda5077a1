"""Content fingerprints of files and folders, with a size + mtime fast path.

A stage's reuse key includes a fingerprint of every file it reads (dataset files, local checkpoints,
upstream artefacts). Hashing a 2 GB checkpoint on every run would be slow, so the sha256 of each file is
remembered together with its size and modification time (nanoseconds); while both are unchanged the
remembered hash is used, and any change of either rehashes the file. The memory is a JSON file in the run
directory; losing it only costs a rehash.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from agrec.io import atomic_write_json

CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def iter_files(folder: str | os.PathLike, skip_hidden: bool = True) -> list[tuple[str, Path]]:
    """``(relative posix path, path)`` of every regular file under ``folder``, sorted; with ``skip_hidden``,
    files under a hidden name (temporary writes, caches) are left out."""
    folder = Path(folder)
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if (skip_hidden and any(part.startswith(".") for part in rel.parts)) or not p.is_file():
            continue
        out.append((rel.as_posix(), p))
    return out


def sha256_matches(path: str | os.PathLike, want: str | None) -> bool:
    """``path`` exists and has the sha256 ``want`` (None: a record written before hashes were kept)."""
    p = Path(path)
    return p.is_file() and (want is None or sha256_file(p) == want)


def sha256_json(obj: Any) -> str:
    """Hex sha256 of ``obj`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def short_hash(obj: Any) -> str:
    """The project's cache key of ``obj``: the first 16 hex digits of :func:`sha256_json`. Every stage key,
    model key and checkpoint key is this function of a :func:`agrec.canonical.keyed` payload."""
    return sha256_json(obj)[:16]


class FingerprintCache:
    """``{absolute path: [size, mtime_ns, ctime_ns, inode, sha256]}`` kept in ``path`` (None: in memory only).

    A file is rehashed unless all four of its stat fields are those recorded with its hash. The inode change
    time and the inode are what a user cannot set back: a file edited in place with its size and modification
    time restored (``touch -d``, ``os.utime``), or replaced by another file, is rehashed.
    """

    FIELDS = 5

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, list] = {}
        self._dirty = False
        if self.path is not None and self.path.is_file():
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(raw, dict):  # entries of an older layout are dropped: those files are rehashed once
                    self._entries = {
                        k: v
                        for k, v in raw.items()
                        if isinstance(v, list) and len(v) == self.FIELDS and isinstance(v[-1], str)
                    }
            except (OSError, ValueError):
                self._entries = {}  # a damaged cache is only a lost speed-up

    def sha256(self, path: str | os.PathLike, verify: bool = False) -> str:
        """sha256 of ``path``, from the cache while its size, mtime, ctime and inode are unchanged (``verify``:
        always hash)."""
        p = Path(path).resolve()
        st = p.stat()
        key = str(p)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        hit = self._entries.get(key)
        if not verify and hit is not None and hit[:-1] == stamp:
            return hit[-1]
        digest = sha256_file(p)
        self._entries[key] = [*stamp, digest]
        self._dirty = True
        return digest

    def file(self, path: str | os.PathLike, verify: bool = False) -> str:
        """Fingerprint of one input file: ``sha256:<hex>``, or ``absent`` when it does not exist (so that a
        file appearing later, e.g. an optional ``X.index.json``, also changes the key)."""
        p = Path(path)
        if not p.exists():
            return "absent"
        if p.is_dir():
            return self.tree(p, verify)
        return "sha256:" + self.sha256(p, verify)

    def tree(self, folder: str | os.PathLike, verify: bool = False) -> str:
        """Fingerprint of every regular file under ``folder`` (relative names + contents); hidden files and
        folders (temporary writes, caches) are skipped."""
        folder = Path(folder)
        if not folder.is_dir():
            return "absent"
        items = [[rel, self.sha256(p, verify)] for rel, p in iter_files(folder)]
        return "tree:" + sha256_json(items)

    def save(self) -> None:
        """Write the cache back if anything changed (best effort: a read-only run folder keeps it in memory)."""
        if self.path is None or not self._dirty:
            return
        try:
            atomic_write_json(self.path, self._entries, indent=None)
            self._dirty = False
        except OSError:
            pass
