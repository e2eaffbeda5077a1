"""``--force`` recomputes a stage from nothing: no checkpoint resumed, no artefact of the replaced run reused."""

import json
import math
import shutil
import time

import pandas as pd
import pytest

from agrec.config import load_profile
from agrec.run.lineage import stage_folders
from agrec.run.pipeline import run_pipeline
from agrec.run.rundir import RunDir

from conftest import CI_PROFILE

STAGES = ["data", "semantic_ids", "gnn", "lm", "decode", "analysis"]


@pytest.fixture(scope="module")
def ci_copy(tmp_path_factory):
    """A copy of the CI profile's finished run (the shared one under runs/, computed if needed), with its own
    run and report folders, so that forcing stages here leaves the shared run alone."""
    run_pipeline(CI_PROFILE, log=lambda s: None)
    shared = load_profile(CI_PROFILE)
    root = tmp_path_factory.mktemp("force")
    shutil.copytree(shared.run_dir, root / "runs" / "ml-100k" / "ci",
                    ignore=shutil.ignore_patterns("seeds", ".lock", "logs"))
    shutil.copytree(shared.report_dir, root / "reports" / "ml-100k" / "ci", ignore=shutil.ignore_patterns("seeds"))
    overrides = {"pipeline.runs_dir": str(root / "runs"), "pipeline.reports_dir": str(root / "reports"),
                 **RUNTIME_FLIPS}
    return load_profile(CI_PROFILE, overrides), overrides


# Keys that never change a result (agrec.canonical.runtime), set unlike the CI profile: the forced runs below
# recompute each stage with them and must reproduce the shared run's results exactly.
RUNTIME_FLIPS = {"gnn.train.progress": True, "lm.progress": True, "lm.log_every": 1, "lm.eval_batch_size": 7,
                 "lm.keep_checkpoints": 1, "baselines.sasrec.progress": True}


def _files(run: RunDir, stage: str) -> dict[str, int]:
    out = {}
    for folder in stage_folders(stage):
        for p in (run.root / folder).rglob("*"):
            if p.is_file():
                out[str(p.relative_to(run.root))] = p.stat().st_mtime_ns
    return out


def _results(path):
    """A result file's content less what is not a result: wall times and the recorded config. Compare two with
    :func:`_same`: floats agree to a relative 1e-6 (lm.eval_batch_size sums the validation loss in other
    batches: equal up to rounding, which rounding both to 7 digits does not capture — 3.2832623 and 3.2832636
    round apart)."""
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if not any(t in k for t in ("seconds", "time_s", "config"))}
        if isinstance(x, list):
            return [strip(v) for v in x]
        if isinstance(x, float):
            return None if math.isnan(x) else x
        return x

    if path.name == "checksums.json":   # the hashes of the files compared here
        return None
    if path.suffix == ".json":
        return strip(json.loads(path.read_text()))
    if path.suffix == ".csv":
        frame = pd.read_csv(path)
        return strip(frame.drop(columns=[c for c in frame.columns if "seconds" in c]).to_dict("list"))
    return path.read_bytes()


def _same(a, b) -> bool:
    """Equal structures whose floats agree to a relative 1e-6 (ints, strings, bytes and None exactly)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_same_compares_floats_to_a_relative_tolerance_and_the_rest_exactly():
    assert _same({"l": [3.2832622671, 1, "x"]}, {"l": [3.2832635688, 1, "x"]})   # 4e-7 apart
    assert not _same({"l": [3.28326]}, {"l": [3.28336]})                        # 3e-5 apart
    assert not _same({"l": [1, 2]}, {"l": [1, 2, 3]}) and not _same({"a": 1}, {"b": 1})
    assert not _same({"a": 1}, {"a": 1.0}) and not _same(b"x", b"y") and _same(None, None)


@pytest.mark.parametrize("stage", STAGES)
def test_force_recomputes_the_stage_from_nothing(ci_copy, stage):
    profile, overrides = ci_copy
    run = RunDir(profile.run_dir)
    assert all(run.read_record(s) is not None for s in STAGES if s != "analysis"), "the copy is a finished run"
    before = _files(run, stage)
    # What an earlier run leaves that a resuming or reusing stage would pick up: a file of the replaced run in
    # each of the stage's folders. Forcing must remove it with everything else.
    for folder in stage_folders(stage):
        (run.root / folder).mkdir(parents=True, exist_ok=True)
        (run.root / folder / "left-by-the-replaced-run.txt").write_text("old")
    t0 = time.time_ns()
    logs = []
    run_pipeline(CI_PROFILE, stages=[stage], overrides=overrides, force=True, log=logs.append)
    tag = f"[1/1] {stage}"
    assert f"{tag}: forced: recomputing from nothing" in logs
    assert not any("current, reused" in line for line in logs)
    after = _files(run, stage)
    assert not any(name.endswith("left-by-the-replaced-run.txt") for name in after)
    if stage == "analysis":   # writes no run artefacts: its report was executed again
        nb = profile.report_dir / "06_analysis.ipynb"
        assert nb.stat().st_mtime_ns > t0
        return
    assert before and after
    # every file the stage keeps was written by the forced run (a resumed LM would keep its old checkpoints)
    old = sorted(name for name, mtime in after.items() if mtime < t0)
    assert old == [], old
    rec = run.read_record(stage)
    # Recomputed with the runtime keys flipped: the same key, and the same results as the shared run (files
    # byte-identical, or equal but for wall times and the recorded config).
    shared_run = RunDir(load_profile(CI_PROFILE).run_dir)
    shared = shared_run.read_record(stage)
    assert rec["config_hash"] == shared["config_hash"]
    assert set(rec["artefacts"]) == set(shared["artefacts"])
    for name, art in rec["artefacts"].items():
        if art["sha256"] != shared["artefacts"][name]["sha256"]:
            assert _same(_results(run.root / stage / name), _results(shared_run.root / stage / name)), name
    assert rec is not None and set(rec["artefacts"]) == {n.split("/", 1)[1] for n in after
                                                          if n.startswith(stage + "/") and not n.endswith("stage.json")
                                                          and "/." not in "/" + n}
    if stage == "gnn":    # trained from epoch 1 for every model, nothing resumed
        for model in profile.gnn.models:
            metrics = json.loads((run.root / "gnn" / model / "metrics.json").read_text())
            assert metrics["resumed_from"] is None and metrics["epochs_run"] >= 1
    if stage == "decode":  # the SASRec rows' model is retrained too
        metrics = run.root / "baselines" / "sasrec" / "metrics.json"
        assert metrics.stat().st_mtime_ns > t0
