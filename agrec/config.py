"""Typed run configuration loaded from YAML profiles (``configs/*.yaml``).

A profile is a tree of dataclasses, one per pipeline stage. Loading is strict: an unknown key, a
value of the wrong type or an out-of-range value is a :class:`~agrec.errors.ConfigError` naming the
file and the dotted key. Relative paths inside a profile are resolved against the profile file's
folder, so a run does not depend on the current working directory.

Stage configs live beside the code they configure (``agrec/data/config.py`` …); this module only
assembles them into a :class:`Profile`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dacite
import yaml

from agrec.analysis.config import AnalysisConfig
from agrec.baselines.config import BaselinesConfig
from agrec.data.config import DataConfig
from agrec.decode.config import DecodeConfig, EvalConfig
from agrec.errors import ConfigError
from agrec.gnn.config import GNNConfig
from agrec.lm.config import LMConfig
from agrec.semantic_ids.config import SemanticIdConfig

# Stages of the pipeline in data-flow order, each with the notebook that runs it (agrec.pipeline).
STAGE_NOTEBOOKS: dict[str, str] = {
    "data": "01_data.ipynb",
    "semantic_ids": "02_tokenization.ipynb",
    "gnn": "03_gnn.ipynb",
    "lm": "04_finetune.ipynb",
    "decode": "05_decode.ipynb",
    "analysis": "06_analysis.ipynb",
}
STAGES: tuple[str, ...] = tuple(STAGE_NOTEBOOKS)


@dataclass
class PipelineConfig:
    """Where a run writes, and which stages ``agrec run`` executes."""

    stages: list[str] = field(default_factory=lambda: list(STAGES))
    runs_dir: str = "../runs"        # relative to the profile file
    reports_dir: str = "../reports"  # relative to the profile file
    kernel_name: str = "python3"
    stage_timeout_s: int = 3600      # per notebook cell, papermill's execution_timeout

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ConfigError(f"pipeline.stages: unknown stage(s) {unknown}; known stages are {list(STAGES)}")
        if len(set(self.stages)) != len(self.stages):
            raise ConfigError(f"pipeline.stages: a stage is listed twice: {self.stages}")
        if self.stage_timeout_s <= 0:
            raise ConfigError(f"pipeline.stage_timeout_s must be > 0, got {self.stage_timeout_s}")


@dataclass
class Profile:
    """One complete, reproducible run configuration."""

    name: str                                   # the profile's name: runs/<dataset>/<name>/
    seed: int = 2024
    data: DataConfig = field(default_factory=DataConfig)
    semantic_ids: SemanticIdConfig = field(default_factory=SemanticIdConfig)
    gnn: GNNConfig = field(default_factory=GNNConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    # The file this profile was read from (None when built in code); not a YAML key.
    source: str | None = field(default=None, metadata={"internal": True})

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigError(f"name must be a non-empty string without '/', got {self.name!r}")

    # -- paths -------------------------------------------------------------------------------
    def _resolve(self, p: str) -> Path:
        base = Path(self.source).parent if self.source else Path.cwd()
        return (base / p).resolve()

    @property
    def run_dir(self) -> Path:
        return self._resolve(self.pipeline.runs_dir) / self.data.dataset / self.name

    @property
    def reports_root(self) -> Path:
        """The reports folder shared by all datasets/profiles (holds ``_static/`` for HTML)."""
        return self._resolve(self.pipeline.reports_dir)

    @property
    def report_dir(self) -> Path:
        return self.reports_root / self.data.dataset / self.name

    def data_path(self) -> Path | None:
        return None if self.data.path is None else self._resolve(self.data.path)

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source", None)
        return d

    def section_hash(self, *sections: str, seed: bool = True) -> str:
        """A short stable hash of the named sections (and the seed, unless ``seed=False``), used to
        decide whether a stage's cached artefact was produced by the same configuration."""
        d = self.to_dict()
        payload = {s: d[s] for s in sections}
        if seed:
            payload["seed"] = self.seed
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


_DACITE = dacite.Config(strict=True)


def profile_from_dict(raw: dict[str, Any], source: str | Path | None = None) -> Profile:
    """Build a :class:`Profile` from a plain mapping, strictly (see module docstring)."""
    where = f"{source}: " if source else ""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}a profile must be a YAML mapping at the top level, got {type(raw).__name__}")
    if "source" in raw:
        raise ConfigError(f"{where}unknown key 'source'")
    unknown = _unknown_keys(Profile, raw)
    if unknown:
        raise ConfigError(f"{where}unknown key(s) {', '.join(unknown)}")
    try:
        prof = dacite.from_dict(Profile, raw, config=_DACITE)
    except dacite.UnexpectedDataError as e:  # defensive: _unknown_keys should have caught it
        raise ConfigError(f"{where}unknown key(s) {', '.join(sorted(e.keys))}") from None
    except dacite.WrongTypeError as e:
        raise ConfigError(f"{where}key '{e.field_path}' expects {_type_name(e.field_type)}, "
                          f"got {e.value!r} ({type(e.value).__name__})") from None
    except dacite.MissingValueError as e:
        raise ConfigError(f"{where}missing required key '{e.field_path}'") from None
    except dacite.DaciteError as e:  # any other structural problem
        raise ConfigError(f"{where}{e}") from None
    except ConfigError as e:  # raised by a __post_init__ range check
        raise ConfigError(f"{where}{e}") from None
    prof.source = str(Path(source).resolve()) if source else None
    return prof


def load_profile(path: str | Path, overrides: dict[str, Any] | None = None) -> Profile:
    """Read a YAML profile; ``overrides`` maps dotted keys (``"data.min_seq_len"``) to values."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: profile file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    raw = {} if raw is None else raw
    if overrides:
        raw = apply_overrides(raw, overrides, source=path)
    return profile_from_dict(raw, source=path)


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any], source: str | Path | None = None) -> dict[str, Any]:
    """Return a copy of ``raw`` with dotted-key overrides applied. Unknown keys are caught later,
    by the strict load, with their full dotted name."""
    out = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"{source or 'overrides'}: cannot set '{dotted}': '{p}' is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def _unknown_keys(cls: type, raw: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of keys in ``raw`` that ``cls`` (a dataclass, recursively) does not have.

    dacite reports nested unknown keys without their section; users need the full path.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    out = []
    for key, value in raw.items():
        if key not in fields:
            out.append(prefix + str(key))
            continue
        sub = hints[key]
        if dataclasses.is_dataclass(sub) and isinstance(value, dict):
            out.extend(_unknown_keys(sub, value, prefix + key + "."))
    return sorted(out)


def _type_name(t: Any) -> str:
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")
