"""Typed run configuration loaded from YAML profiles (``configs/*.yaml``).

A profile is a tree of dataclasses, one per pipeline stage. Loading is strict: an unknown key, a
duplicate key, a value of the wrong type (``true`` where a number is expected, ``.nan`` / ``.inf`` for a
number), an out-of-range value or a name that would leave the run/report roots is a
:class:`~agrec.errors.ConfigError` naming the file and the dotted key. Relative paths inside a profile are resolved
against the profile file's folder, so a run does not depend on the current working directory.

Stage configs live beside the code they configure (``agrec/data/config.py`` …); this module only
assembles them into a :class:`Profile`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import dacite
import yaml

from agrec.analysis.config import AnalysisConfig
from agrec.canonical import canonical, keyed
from agrec.baselines.config import BaselinesConfig
from agrec.data.config import DataConfig
from agrec.decode.config import RENAMED_KEYS, DecodeConfig, EvalConfig
from agrec.decode.variants import parse_variants
from agrec.errors import ConfigError
from agrec.fingerprint import short_hash
from agrec.gnn.config import GNNConfig
from agrec.lm.config import LMConfig
from agrec.paths import check_name, check_path, safe_join
from agrec.semantic_ids.config import SemanticIdConfig

# Stages of the pipeline in data-flow order, each with the notebook that runs it (agrec.run.pipeline).
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

    # the stages `agrec run` executes, always in pipeline order (data ... analysis); its --stages overrides the list
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    runs_dir: str = "../runs"  # relative to the profile file
    reports_dir: str = "../reports"  # relative to the profile file
    kernel_name: str = "python3"  # the Jupyter kernel papermill runs the notebooks in
    stage_timeout_s: int = 3600  # per notebook cell, papermill's execution_timeout
    # A sub-folder of the profile's run and report folders for a variant of the same profile, e.g.
    # "seeds/7" (written by `agrec seeds` for every seed but the profile's own). None: the profile's
    # own folders. Only plain names separated by "/" (see VARIANT_PART): never "..", absolute or empty.
    variant: str | None = None
    # torch intra-op threads of every stage (None = torch's default, one per core). Fixed so that the
    # numbers do not depend on the machine's core count (docs/running.md "Reproducibility"); a stage's own
    # semantic_ids.cpu_threads / lm.num_threads overrides it inside that stage.
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        check_path(self.runs_dir, "pipeline.runs_dir")
        check_path(self.reports_dir, "pipeline.reports_dir")
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ConfigError(f"pipeline.stages: unknown stage(s) {unknown}; known stages are {list(STAGES)}")
        if len(set(self.stages)) != len(self.stages):
            raise ConfigError(f"pipeline.stages: a stage is listed twice: {self.stages}")
        if self.stage_timeout_s <= 0:
            raise ConfigError(f"pipeline.stage_timeout_s must be > 0, got {self.stage_timeout_s}")
        if self.variant is not None:
            variant_parts(self.variant)  # validates
        if self.num_threads is not None and (isinstance(self.num_threads, bool) or self.num_threads < 1):
            raise ConfigError(f"pipeline.num_threads must be >= 1 or null, got {self.num_threads!r}")


# One component of ``pipeline.variant``: starts with a letter or digit (so never "." or ".."), then
# letters, digits, "_", "-", "." — safe as a folder name on every file system.
VARIANT_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def variant_parts(variant: str) -> list[str]:
    """The folder names of ``pipeline.variant`` (``"seeds/7"`` -> ``["seeds", "7"]``), validated."""
    parts = variant.split("/") if isinstance(variant, str) else []
    if not parts or not all(VARIANT_PART.fullmatch(p) for p in parts):
        raise ConfigError(
            f"pipeline.variant must be folder names (letters, digits, '_', '-', '.'; not starting "
            f"with '.' or '-') separated by '/', e.g. 'seeds/7'; got {variant!r}"
        )
    return parts


@dataclass
class Profile:
    """One complete, reproducible run configuration."""

    name: str  # the profile's name: runs/<dataset>/<name>/
    # seeds Python, NumPy and torch at the start of every stage (agrec.seed.seed_everything); `agrec seeds` varies it.
    # Same seed, same machine and thread count: same numbers (docs/running.md "Reproducibility").
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
        check_name(self.name, "name")  # a folder below runs_dir / reports_dir
        if not 0 <= self.seed < 2**32:  # NumPy's range: checked here, not in the data notebook's numpy call
            raise ConfigError(f"seed must be in [0, 2**32) (NumPy's seed range), got {self.seed}")
        parse_variants(self.evaluation, self.decode)  # every grid point of every decode variant is valid
        ev = self.evaluation
        if "lm" in (ev.scorer, *ev.scorers) and not (self.lm.is_tiny and self.lm.tiny.item_loss > 0):
            # the item vectors are an output (a head) only when the item loss trains them as one
            raise ConfigError(
                "evaluation.scorers: 'lm' (the LM's own item head) needs lm.backbone 'tiny' with "
                f"lm.tiny.item_embedding and lm.tiny.item_loss > 0, got backbone {self.lm.backbone!r}, "
                f"item_loss {self.lm.tiny.item_loss}"
            )

        window = self.lm.max_history + 1  # the items of one training sequence, all read by the teacher
        if self.lm.distill_teacher == "sasrec" and window > self.baselines.sasrec.max_seq_length:
            raise ConfigError(
                f"lm.distill_teacher 'sasrec' reads a training sequence of lm.max_history + 1 = {window} items, "
                f"more than baselines.sasrec.max_seq_length ({self.baselines.sasrec.max_seq_length})"
            )

    # -- paths -------------------------------------------------------------------------------
    def _resolve(self, p: str) -> Path:
        base = Path(self.source).parent if self.source else Path.cwd()
        return (base / p).resolve()

    def _variant(self, root: Path) -> Path:
        """``root`` or, with ``pipeline.variant``, its sub-folder (the only place variants enter paths)."""
        return (
            safe_join(root, *variant_parts(self.pipeline.variant), key="pipeline.variant")
            if self.pipeline.variant
            else root
        )

    @property
    def run_dir(self) -> Path:
        """``<runs_dir>/<dataset>/<name>[/<pipeline.variant>]``."""
        runs = self._resolve(self.pipeline.runs_dir)
        return self._variant(safe_join(safe_join(runs, self.data.dataset, key="data.dataset"), self.name, key="name"))

    @property
    def reports_root(self) -> Path:
        """The reports folder shared by all datasets/profiles (holds ``_static/`` for HTML)."""
        return self._resolve(self.pipeline.reports_dir)

    @property
    def report_dir(self) -> Path:
        """``<reports_dir>/<dataset>/<name>[/<pipeline.variant>]``."""
        return self._variant(
            safe_join(safe_join(self.reports_root, self.data.dataset, key="data.dataset"), self.name, key="name")
        )

    def data_path(self) -> Path | None:
        return None if self.data.path is None else self._resolve(self.data.path)

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The profile as plain data, in canonical form (:func:`agrec.canonical.canonical`: options still at
        a neutral default are left out): what a stage records as its config."""
        return canonical(self)

    def key_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the keys that never change a result (:func:`agrec.canonical.runtime`):
        the form every cache key is taken over."""
        return keyed(self)

    def section_hash(self, *sections: str, seed: bool = True) -> str:
        """A short stable hash of the named sections' keyed form (and the seed, unless ``seed=False``), used
        to decide whether a stage's cached artefact was produced by the same configuration."""
        d = self.key_dict()
        payload = {s: d[s] for s in sections}
        if seed:
            payload["seed"] = self.seed
        return short_hash(payload)


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
        renamed = [f"{k} is now {RENAMED_KEYS[k]}" for k in unknown if k in RENAMED_KEYS]
        hint = f" ({'; '.join(renamed)})" if renamed else ""
        raise ConfigError(f"{where}unknown key(s) {', '.join(unknown)}{hint}")
    bad = _check_numbers(Profile, raw)  # dacite takes True for an int and NaN for a float
    if bad:
        raise ConfigError(f"{where}{bad}")
    try:
        prof = dacite.from_dict(Profile, raw, config=_DACITE)
    except dacite.UnexpectedDataError as e:  # defensive: _unknown_keys should have caught it
        raise ConfigError(f"{where}unknown key(s) {', '.join(sorted(e.keys))}") from None
    except dacite.WrongTypeError as e:
        raise ConfigError(
            f"{where}key '{e.field_path}' expects {_type_name(e.field_type)}, "
            f"got {e.value!r} ({type(e.value).__name__})"
        ) from None
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
        text = path.read_text(encoding="utf-8-sig")  # a BOM carries no data
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    raw = load_yaml(text, source=path)
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
        parts = dotted.split(".") if isinstance(dotted, str) else [""]
        if any(not p.strip() for p in parts):
            raise ConfigError(
                f"{source or 'overrides'}: override key {dotted!r} is not a dotted key such as "
                f"data.min_seq_len (an empty part)"
            )
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"{source or 'overrides'}: cannot set '{dotted}': '{p}' is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key repeated in one mapping is an error (YAML 1.2 says keys are
    unique; PyYAML silently keeps the last one, so a profile could say ``seed`` twice and mean either)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *anchor" merges; explicit keys may override merged ones (YAML merge spec)
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(key, seen[key], line)
                seen[key] = line
            except TypeError:  # unhashable key, e.g. "? [a, b]": PyYAML reports it below
                continue
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, first_line: int, line: int):
        super().__init__(f"line {line}: duplicate key {key!r} (first given on line {first_line})")
        self.key, self.first_line, self.line = key, first_line, line


def load_yaml(text: str, source: str | Path | None = None) -> Any:
    """Parse YAML text with :class:`StrictLoader`; any problem is a :class:`ConfigError` naming ``source``."""
    where = f"{source}: " if source else ""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as e:
        raise ConfigError(f"{where}{e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}not valid YAML: {e}") from None
    except (ValueError, OverflowError, RecursionError) as e:  # e.g. a timestamp out of range
        raise ConfigError(f"{where}not valid YAML: {e}") from None


def _mapping_for_list(key: str, value: dict) -> str:
    # dacite iterates a mapping as if it were the list and fails with a bare ValueError
    return f"key '{key}' expects a list, got a mapping {value!r}"


def _check_numbers(tp: Any, value: Any, key: str = "") -> str | None:
    """The first place in ``value`` where the type ``tp`` expects a number and gets a bool, or a float
    field gets NaN / ±inf; a message naming the dotted key, or None. Walks dataclasses, Optional /
    unions, lists, tuples and dicts, so every int/float field of every section is covered."""
    if value is None:
        return None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            return None  # dacite reports the wrong type
        hints = typing.get_type_hints(tp)
        for k, v in value.items():
            if k in hints:
                bad = _check_numbers(hints[k], v, f"{key}.{k}" if key else str(k))
                if bad:
                    return bad
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if isinstance(value, (list, tuple)):
            seqs = [a for a in options if typing.get_origin(a) in (list, tuple)]
            return _check_numbers(seqs[0], value, key) if seqs else None
        if isinstance(value, dict):
            maps = [a for a in options if dataclasses.is_dataclass(a) or typing.get_origin(a) is dict]
            if not maps and any(typing.get_origin(a) in (list, tuple) for a in options):
                return _mapping_for_list(key, value)
            return _check_numbers(maps[0], value, key) if maps else None
        scalars = [a for a in options if a in (int, float, bool)]
        if bool in scalars or not scalars:
            return None
        return _check_numbers(float if float in scalars else int, value, key)
    if origin in (list, tuple) and isinstance(value, dict):
        return _mapping_for_list(key, value)
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        item_types = args if origin is tuple and args and args[-1] is not Ellipsis else (args[:1] * len(value))
        for i, (t, v) in enumerate(zip(item_types, value, strict=False)):
            bad = _check_numbers(t, v, f"{key}[{i}]")
            if bad:
                return bad
        return None
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        for k, v in value.items():
            bad = _check_numbers(args[1], v, f"{key}.{k}")
            if bad:
                return bad
        return None
    if origin is typing.Literal and isinstance(value, bool) and not any(a is value for a in args):
        return f"key '{key}' expects one of {list(args)}, got {value!r} (bool)"  # True == 1 would pass
    if tp in (int, float) and isinstance(value, bool):
        return f"key '{key}' expects {tp.__name__}, got {value!r} (bool)"
    if tp is float and isinstance(value, float) and not math.isfinite(value):
        return f"key '{key}' expects a finite number, got {value!r}"
    return None


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
            out.extend(_unknown_keys(cast(type, sub), value, prefix + key + "."))
    return sorted(out)


def _type_name(t: Any) -> str:
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")
