"""The one cache-key policy (agrec.canonical, agrec.fingerprint.short_hash): a runtime key is recorded but is in
no key; every other profile key is in the key of the stages that read its section; the keys that existed before
the policy kept their values."""

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from agrec.canonical import field_dataclass, canonical, is_runtime, keyed, keyed_record, runtime, runtime_paths
from agrec.config import STAGES, Profile, load_profile
from agrec.fingerprint import sha256_json, short_hash
from agrec.run.lineage import SECTIONS_OF, config_key, pipeline_status
from agrec.lm.checkpoint import training_config
from agrec.run.rundir import RunDir

from conftest import CI_PROFILE

ROOT = Path(__file__).resolve().parents[1]
# Every key that never changes a result, by name: a field that becomes runtime (or stops being) shows here.
RUNTIME_KEYS = [
    "semantic_ids.embedding_cache",
    "gnn.train.device", "gnn.train.progress",
    "lm.eval_batch_size", "lm.save_every_steps", "lm.keep_checkpoints", "lm.resume", "lm.log_every", "lm.progress",
    "lm.num_threads", "lm.cache_dir",
    "baselines.sasrec.device", "baselines.sasrec.progress",
]


def _leaves(cls, prefix=""):
    """``(dotted name, field)`` of every profile key below the dataclass ``cls``."""
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        sub = field_dataclass(f)
        if sub is not None:
            yield from _leaves(sub, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f


def _other(value):
    """A value different from ``value`` of a plausible type (keys are hashed, not validated)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "-other"
    if isinstance(value, list):
        return value + value[:1] if value else [1]
    if isinstance(value, dict):
        return {**value, "other": {}}
    return 3  # None


def _set(profile, dotted, value):
    *parents, last = dotted.split(".")
    obj = profile
    for p in parents:
        obj = getattr(obj, p)
    setattr(obj, last, value)


def _get(profile, dotted):
    obj = profile
    for p in dotted.split("."):
        obj = getattr(obj, p)
    return obj


def _keys(profile):
    return {s: config_key(profile, s) for s in STAGES} | {"lm model": short_hash(training_config(profile.lm))}


def test_the_runtime_keys_are_these():
    assert runtime_paths(Profile) == RUNTIME_KEYS


@pytest.mark.parametrize("dotted", RUNTIME_KEYS)
def test_a_runtime_key_is_recorded_but_changes_no_key(dotted):
    p = load_profile(CI_PROFILE)
    before = _keys(p)
    new = _other(_get(p, dotted))
    _set(p, dotted, new)
    assert _keys(p) == before
    section, *rest = dotted.split(".")
    recorded = p.to_dict()[section]
    for part in rest:
        recorded = recorded[part]
    assert recorded == new                       # the record says how the run was made
    keyed_section = p.key_dict()[section]
    for part in rest[:-1]:
        keyed_section = keyed_section[part]
    assert rest[-1] not in keyed_section


@pytest.mark.parametrize("stage", STAGES)
def test_every_other_key_of_a_stage_section_changes_the_stage_key(stage):
    # The complement: a key that is not runtime is never silently left out of the key of a stage that hashes
    # its section (a result could then be reused for another configuration).
    base = load_profile(CI_PROFILE)
    want = _keys(base)[stage]
    sections = [s for s in SECTIONS_OF[stage] if s != "seed"]
    if stage == "lm":
        sections = ["data", "lm"]
    checked = 0
    for section in sections:
        for name, f in _leaves(type(getattr(base, section))):
            if is_runtime(f):
                continue
            p = load_profile(CI_PROFILE)
            dotted = f"{section}.{name}"
            _set(p, dotted, _other(_get(p, dotted)))
            assert config_key(p, stage) != want, dotted
            checked += 1
    assert checked >= 10


def test_decode_alpha_and_tau_are_in_no_key_and_no_record():
    # The decode stage chooses α/τ per row on validation (evaluation.alpha_grid × tau_grid); the library
    # default of DecodeConfig is neither a profile key nor part of any key.
    p = load_profile(CI_PROFILE)
    before = _keys(p)
    p.decode.alpha, p.decode.tau = 0.05, 3.0
    assert _keys(p) == before
    assert "alpha" not in p.to_dict()["decode"] and "tau" not in p.to_dict()["decode"]


def test_one_hash_function():
    # short_hash is the 16-digit prefix of sha256_json; section_hash is short_hash of the keyed sections.
    p = load_profile(CI_PROFILE)
    assert short_hash({"a": 1}) == sha256_json({"a": 1})[:16]
    assert p.section_hash("data", "gnn") == short_hash({"data": p.key_dict()["data"], "gnn": p.key_dict()["gnn"],
                                                        "seed": p.seed})
    # and no module computes a key by hand any more
    idiom = re.compile(r"sha256\(json\.dumps")
    offenders = [str(f.relative_to(ROOT)) for f in (ROOT / "agrec").rglob("*.py")
                 if idiom.search(f.read_text()) and f.name != "fingerprint.py"]
    assert offenders == []


def test_keys_of_runs_recorded_before_the_policy_are_kept():
    # Hand-computed from the pre-policy formulas (sha256 of sorted JSON of the sections less the keys each stage
    # left out by name): the model keys (GNN, SASRec, LM checkpoints) kept their values, so trained models
    # are reused.
    p = load_profile(CI_PROFILE)
    d = canonical(p)
    lm_old = {k: v for k, v in d["lm"].items()
              if k not in {"progress", "log_every", "num_threads", "keep_checkpoints", "resume", "cache_dir",
                           "eval_batch_size", "save_every_steps"}}
    assert training_config(p.lm) == lm_old
    assert config_key(p, "lm") == sha256_json({"data": d["data"], "lm": lm_old, "seed": p.seed})[:16]
    assert config_key(p, "data") == sha256_json({"data": d["data"]})[:16]
    # (semantic_ids, gnn, decode and analysis hashed their sections whole before: their stage keys changed once)
    assert config_key(p, "semantic_ids") != sha256_json({"data": d["data"], "semantic_ids": d["semantic_ids"],
                                                         "seed": p.seed})[:16]
    gnn_train = {k: v for k, v in d["gnn"]["train"].items() if k not in ("progress", "device", "test_graph")}
    assert {k: v for k, v in keyed(p)["gnn"]["train"].items() if k != "test_graph"} == gnn_train
    sasrec = {k: v for k, v in d["baselines"]["sasrec"].items() if k not in ("device", "progress")}
    assert keyed(p)["baselines"]["sasrec"] == sasrec


def test_keyed_record_strips_runtime_keys_of_a_recorded_config():
    p = load_profile(CI_PROFILE)
    rec = p.to_dict()
    rec["lm"]["progress"] = not rec["lm"]["progress"]
    rec["gnn"]["train"]["device"] = "cuda"
    assert keyed_record(Profile, rec) == p.key_dict()


def test_runtime_marker_on_a_dataclass():
    @dataclasses.dataclass
    class C:
        a: int = 1
        bar: bool = runtime(True)
        xs: list = runtime(default_factory=list)

    assert canonical(C()) == {"a": 1, "bar": True, "xs": []} and keyed(C()) == {"a": 1}
    assert runtime_paths(C) == ["bar", "xs"]


def test_every_profile_key_is_read_outside_its_config_module():
    # A key no code reads is dead: it could only change a stage's key (decode.alpha was one).
    sources = {f: f.read_text() for f in (ROOT / "agrec").rglob("*.py")}
    dead = []
    for section in dataclasses.fields(Profile):
        if section.metadata.get("internal"):
            continue
        cls = field_dataclass(section)
        for name, f in (_leaves(cls) if cls else [(section.name, section)]):
            owner = Path(inspect.getsourcefile(cls or Profile)).resolve()
            pat = re.compile(rf"\.{f.name}\b|[\"']{f.name}[\"']")
            if not any(pat.search(s) for path, s in sources.items() if path.resolve() != owner):
                dead.append(f"{section.name}.{name}")
    assert dead == []


@pytest.fixture(scope="module")
def ci_run():
    from agrec.run.pipeline import run_pipeline

    run_pipeline(CI_PROFILE, log=lambda s: None)
    return load_profile(CI_PROFILE)


def test_flipping_every_runtime_key_leaves_every_stage_of_a_finished_run_current(ci_run):
    # The toy run: the CI profile's finished pipeline. Progress bars, logging, checkpoint bookkeeping, caches
    # and devices of the models changed at once: nothing is recomputed (before, toggling lm.progress reran
    # the decode stage).
    overrides = {k: _other(_get(ci_run, k)) for k in RUNTIME_KEYS}
    overrides["gnn.train.device"] = overrides["baselines.sasrec.device"] = "auto"
    overrides["lm.num_threads"] = 2
    overrides["semantic_ids.embedding_cache"] = "../runs/_cache/elsewhere"
    overrides["lm.cache_dir"] = "../runs/_cache/backbones"
    flipped = load_profile(CI_PROFILE, overrides)
    states = {st.stage: (st.state, st.reasons) for st in pipeline_status(flipped, RunDir(flipped.run_dir))}
    assert states == {s: ("current", []) for s in STAGES}
