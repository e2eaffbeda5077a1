"""The run directory ``runs/<dataset>/<profile>/``: artefacts of every stage plus their provenance.

Each stage writes its artefacts under ``<run>/<stage>/`` and then a record ``<run>/<stage>/stage.json``
holding

- ``config_hash``: the hash of the config sections the stage depends on (and the seed, where it matters);
- ``inputs``: a fingerprint of every input it read — dataset files (content hashes), local checkpoints,
  the digests of the upstream stages' records, the agrec version (see :mod:`agrec.run.lineage`);
- ``artefacts``: every file the stage wrote, with its size, sha256 and modification time;
- ``digest``: a hash of all of the above, which the downstream stages record as their input;
- the seed, the full config and the library versions (for the reader, not for the key).

A stage is reused only when config hash, inputs and artefacts all match (:func:`agrec.run.lineage.stage_status`).
The record is written last, so a crash mid-stage leaves no record and the stage reruns; a record that
cannot be read is treated as absent. A stage about to recompute is invalidated first, which also removes the
temporary files of writers that were killed (:func:`agrec.io.remove_orphaned_temps`).
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from agrec.errors import AgrecError
from agrec.fingerprint import FingerprintCache, iter_files, sha256_json
from agrec.io import atomic_write_json, check_format, remove_orphaned_temps, temp_prefix
from agrec.run.lineage import source_digest, source_files, stage_folders, stage_inputs, stage_sources, stage_status
from agrec.run.provenance import library_versions

if TYPE_CHECKING:
    from agrec.config import Profile

RECORD_FORMAT = 2


class RunFolderError(AgrecError, OSError):
    """The run or report folder cannot be written (read-only, permissions, disk full)."""


def writable_error(path: Path, err: OSError) -> RunFolderError:
    """A named error for an ``OSError`` raised while writing under ``path``."""
    why = {
        errno.EROFS: "is on a read-only file system",
        errno.EACCES: "is not writable (permission denied)",
        errno.EPERM: "is not writable (operation not permitted)",
        errno.ENOSPC: "cannot be written: no space left on the device",
    }.get(err.errno or 0, f"cannot be written ({err})")
    return RunFolderError(
        f"{path} {why}; choose another folder (pipeline.runs_dir / pipeline.reports_dir) or make it writable"
    )


class RunDir:
    """Paths, stage records and artefact checks of one run."""

    RECORD = "stage.json"
    FINGERPRINTS = ".fingerprints.json"

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._fingerprints: FingerprintCache | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    @property
    def fingerprints(self) -> FingerprintCache:
        """The size + mtime fast path for content hashes (kept in ``<run>/.fingerprints.json``)."""
        if self._fingerprints is None:
            self._fingerprints = FingerprintCache(self.root / self.FINGERPRINTS)
        return self._fingerprints

    def stage_dir(self, stage: str) -> Path:
        d = self.root / stage
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise writable_error(d, e) from None
        return d

    def record_path(self, stage: str) -> Path:
        return self.root / stage / self.RECORD

    def read_record(self, stage: str) -> dict[str, Any] | None:
        """The stage's record, or None when there is none or it cannot be read (garbage means "no record")."""
        p = self.record_path(stage)
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(rec, dict) or rec.get("stage") != stage or not isinstance(rec.get("config_hash"), str):
            return None
        fmt = rec.get("format", 1)
        if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
            return None  # garbage, like the checks above
        # a newer record is refused, never treated as absent: the stage would rerun and overwrite it
        check_format(p, fmt, "stage record", newest=RECORD_FORMAT, remedy="use another run folder")
        return rec

    def digest(self, stage: str) -> str | None:
        """The digest of the stage's record (what downstream stages key on), None if it has no valid record."""
        rec = self.read_record(stage)
        return rec.get("digest") if rec is not None else None

    # -- artefacts -------------------------------------------------------------------------------------------
    def list_artefacts(self, stage: str) -> dict[str, dict[str, Any]]:
        """``{relative path: {size, sha256, mtime_ns}}`` of every file under ``<run>/<stage>/`` except the record
        and hidden (temporary) files."""
        folder = self.root / stage
        out: dict[str, dict[str, Any]] = {}
        for rel, p in iter_files(folder):
            if rel != self.RECORD:
                st = p.stat()
                # hashed now, and kept in the fingerprint cache for the quick checks that follow
                out[rel] = {
                    "size": st.st_size,
                    "sha256": self.fingerprints.sha256(p, verify=True),
                    "mtime_ns": st.st_mtime_ns,
                }
        return out

    def artefact_problems(self, stage: str, record: dict[str, Any], verify: bool = False) -> list[str]:
        """What is wrong with the artefacts a record lists: missing, truncated/grown, or changed content.

        Sizes are always checked; a file is rehashed unless its size, modification time, inode change time and
        inode are those it had when last hashed (:class:`FingerprintCache`); with ``verify`` every file is
        rehashed.
        """
        folder = self.root / stage
        listed = record.get("artefacts")
        if not isinstance(listed, dict) or not listed:
            return [f"{self.record_path(stage)}: the record lists no artefacts (written by an older agrec)"]
        problems = []
        for rel, meta in listed.items():
            p = folder / rel
            try:
                st = p.stat()
            except OSError:
                problems.append(f"artefact {p} is missing")
                continue
            if not isinstance(meta, dict) or st.st_size != meta.get("size"):
                problems.append(
                    f"artefact {p} has {st.st_size} bytes, the record says {meta.get('size')} "
                    f"(truncated or overwritten)"
                )
                continue
            if self.fingerprints.sha256(p, verify) != meta.get("sha256"):
                problems.append(f"artefact {p} has changed content (sha256 differs from the record)")
        self.fingerprints.save()
        return problems

    # -- records ---------------------------------------------------------------------------------------------
    def mark_done(
        self, stage: str, config_hash: str, profile: "Profile", inputs: dict[str, str] | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Write the stage record (call after every artefact of the stage is in place).

        ``inputs`` defaults to the stage's inputs as computed by :func:`agrec.run.lineage.stage_inputs`.
        """
        if inputs is None:
            inputs = stage_inputs(profile, self, stage)
        artefacts = self.list_artefacts(stage)
        sources = stage_sources(profile, stage)
        digest = sha256_json(
            {
                "stage": stage,
                "config_hash": config_hash,
                "inputs": inputs,
                "artefacts": {k: v["sha256"] for k, v in artefacts.items()},
            }
        )[:32]
        record = {
            "stage": stage,
            "format": RECORD_FORMAT,
            "config_hash": config_hash,
            "digest": digest,
            "inputs": inputs,
            "artefacts": artefacts,
            "seed": profile.seed,
            "profile": profile.source,
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": profile.to_dict(),
            "versions": library_versions(),
            "sources": list(sources),
            "source_digest": source_digest(sources),
            "source_files": source_files(sources),
            **extra,
        }
        try:
            atomic_write_json(self.record_path(stage), record)
        except OSError as e:
            raise writable_error(self.record_path(stage).parent, e) from None
        self.fingerprints.save()
        return record

    def is_current(
        self, stage: str, config_hash: str, profile: "Profile", verify: bool = False, log: Any = print
    ) -> bool:
        """True when the stage's record matches ``config_hash``, its inputs and its artefacts; otherwise says
        why through ``log`` (so a notebook shows why a stage recomputes)."""
        st = stage_status(profile, self, stage, config_hash=config_hash, verify=verify)
        if not st.current and st.state == "stale" and log is not None:
            log(f"{stage}: recomputing: {'; '.join(st.reasons)}")
        return st.current

    def invalidate(self, stage: str, log: Callable[[str], None] | None = print) -> list[Path]:
        """Remove the stage's record (its artefacts stay and may be resumed from: a stale stage's checkpoints)
        and the temporary files that killed writers left in its folders and in the run folder itself
        (:func:`agrec.io.remove_orphaned_temps`, each named in ``log``). Returns those removed."""
        try:
            self.record_path(stage).unlink(missing_ok=True)
            removed = remove_orphaned_temps(self.root, log=log)
            for folder in stage_folders(stage):
                removed += remove_orphaned_temps(self.root / folder, recursive=True, log=log)
        except OSError as e:
            raise writable_error(self.record_path(stage).parent, e) from None
        return removed

    def discard(self, stage: str) -> None:
        """Remove everything the stage left in the run folder: record, artefacts, checkpoints (``--force``).

        A forced stage then starts from nothing of the run it replaces: no checkpoint to resume, no artefact
        to reuse. The folder is renamed away first (one atomic step, so an interrupt leaves either the old
        folder or none) and then deleted.
        """
        folder = self.root / stage
        if not folder.exists():
            return
        trash = self.root / f"{temp_prefix(stage)}discarded.tmp"  # a kill mid-delete leaves it to the orphan sweep
        try:
            if trash.exists():
                shutil.rmtree(trash)
            os.replace(folder, trash)
            shutil.rmtree(trash)
        except OSError as e:
            raise writable_error(folder, e) from None


def ensure_writable(folder: Path) -> None:
    """Raise :class:`RunFolderError` unless a file can be created in ``folder`` (created if needed).

    A real write, not ``os.access``: root passes permission checks but not a read-only file system.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f"{temp_prefix('agrec-write-test')}tmp"  # a kill in between leaves it to the orphan sweep
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise writable_error(folder, e) from None
