import json
import os
import math

import numpy as np
import pandas as pd
import pytest

from agrec.cli import main
from agrec.config import load_profile
from agrec.decode.stage import DecodeReport, save_rankings, slug
from agrec.errors import AgrecError, ConfigError
from agrec.io import atomic_write_json
from agrec.run.lineage import config_key, stage_status
from agrec.run.rundir import RunDir
from agrec.run.seeds import aggregate_seeds, mean_sd, parse_seeds, run_seeds, seed_overrides

from conftest import CI_PROFILE

U = 40  # synthetic users


def _dirs(tmp_path):
    return {"pipeline.runs_dir": str(tmp_path / "runs"), "pipeline.reports_dir": str(tmp_path / "reports")}


def _items(hit_mask, targets):
    """Rankings ``[U, 10]``: the target at rank 1 where ``hit_mask``, absent otherwise."""
    other = np.stack([targets + 1000 + j for j in range(10)], 1)
    out = other.copy()
    out[hit_mask, 0] = targets[hit_mask]
    return out


def fake_decode(profile, hits: dict[str, np.ndarray], alpha: float):
    """Write a decode stage (results.json, rankings, record) through agrec.decode.stage's writers."""
    from agrec.metrics import evaluate_rankings

    run = RunDir(profile.run_dir)
    folder = run.stage_dir("decode")
    (folder / "rankings").mkdir(exist_ok=True)
    users, targets = np.arange(U), np.arange(U) * 3
    rows = []
    for name, mask in hits.items():
        items = _items(mask, targets)
        save_rankings(folder, name, "test", users, targets, items, np.zeros(items.shape))
        m = evaluate_rankings(items, targets, [5, 10])
        settings = {"gnn": None, "alpha": alpha} if name.startswith("AGRec") else (
            {"gnn": None, "alpha": 0.0} if name == "w/o Graph" else {"gnn": "lightgcn"})
        rows.append({"name": name, "settings": settings, "metrics": {"valid": m, "test": m}, "rankings": slug(name)})
    chosen = {"alpha": alpha, "tau": 1.0, "valid": {"NDCG@10": 0.1, "HR@10": 0.2}, "test": {}}
    DecodeReport(rows=rows, curve=[], chosen=chosen, n_users=U, seconds=0.0, folder=folder).save()
    run.mark_done("decode", config_key(profile, "decode"), profile, chosen=chosen)


def seed_hits(seed):
    """AGRec hits users 0..19 (+ one more per seed); the LM alone 10..24; the GNN 0..9 in even seeds."""
    u = np.arange(U)
    extra = seed % 7
    return {"w/o Graph": (u >= 10) & (u < 25),
            "GNN only (lightgcn)": (u < 10) if seed % 2 == 0 else (u < 30),
            "AGRec (lightgcn)": (u < 20) | (u == 20 + extra)}


class FakePipeline:
    """Stands in for agrec.run.pipeline.run_pipeline: builds a data stage only when the run has none, and a
    synthetic decode stage; records every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, config_path, stages=None, overrides=None, force=False, notebooks_dir=None, log=print):
        prof = load_profile(config_path, overrides)
        self.calls.append({"seed": prof.seed, "overrides": dict(overrides), "stages": stages,
                           "run_dir": prof.run_dir, "report_dir": prof.report_dir})
        run = RunDir(prof.run_dir)
        if run.read_record("data") is None:
            atomic_write_json(run.stage_dir("data") / "split.json", {"built_by_seed": prof.seed})
            run.mark_done("data", prof.section_hash("data", seed=False), prof)
        for stage in ("semantic_ids", "gnn", "lm"):   # current records upstream of decode, as a real run has
            if stage_status(prof, run, stage).state != "current":
                atomic_write_json(run.stage_dir(stage) / "out.json", {"seed": prof.seed})
                run.mark_done(stage, config_key(prof, stage), prof)
        if stages is None or "decode" in stages:
            fake_decode(prof, seed_hits(prof.seed), alpha=0.1 * (prof.seed % 3 + 1))
        return prof


def test_parse_seeds():
    assert parse_seeds("3", 2024) == [2024, 2025, 2026]
    assert parse_seeds("2024,7,11", 2024) == [2024, 7, 11]
    assert parse_seeds("7,", 2024) == [7]
    for bad, msg in (("0", r"a count must be in \[1, 1000\], got 0"), ("1001", "got 1001"), ("a,b", "count"),
                     ("7,7", "twice"), ("-1,", r"\[0, 2\*\*32\)"), (",", "no seed")):
        with pytest.raises(AgrecError, match=msg):
            parse_seeds(bad, 2024)


def test_variant_folders_and_validation(tmp_path):
    base = load_profile(CI_PROFILE, _dirs(tmp_path))
    assert seed_overrides(base, 2024, {"a": 1}) == {"a": 1}
    ov = seed_overrides(base, 7, _dirs(tmp_path))
    assert ov["seed"] == 7 and ov["pipeline.variant"] == "seeds/7"
    p = load_profile(CI_PROFILE, ov)
    assert p.run_dir == tmp_path / "runs" / "ml-100k" / "ci" / "seeds" / "7"
    assert p.report_dir == tmp_path / "reports" / "ml-100k" / "ci" / "seeds" / "7"
    assert p.name == "ci"
    # a variant under a variant nests
    nested = load_profile(CI_PROFILE, {**_dirs(tmp_path), "pipeline.variant": "ablation"})
    assert seed_overrides(nested, 9)["pipeline.variant"] == "ablation/seeds/9"
    for bad in ("../x", "/abs", "a//b", ".hidden", "seeds/..", "a\\b", "", "-x"):
        with pytest.raises(ConfigError, match="pipeline.variant"):
            load_profile(CI_PROFILE, {"pipeline.variant": bad})


def test_run_seeds_layout_reuse_and_summary(tmp_path):
    fake = FakePipeline()
    logs = []
    summary = run_seeds(CI_PROFILE, [2024, 2025, 2026], stages=["data", "decode"], overrides=_dirs(tmp_path),
                        run_pipeline=fake, log=logs.append, n_resamples=999)
    runs, reps = tmp_path / "runs" / "ml-100k" / "ci", tmp_path / "reports" / "ml-100k" / "ci"
    # the profile's seed runs in the normal folders, with the caller's overrides only; the others in seeds/<seed>
    assert [c["seed"] for c in fake.calls] == [2024, 2025, 2026]
    assert fake.calls[0]["overrides"] == _dirs(tmp_path) and fake.calls[0]["run_dir"] == runs
    assert fake.calls[1]["run_dir"] == runs / "seeds" / "2025" and fake.calls[2]["report_dir"] == reps / "seeds" / "2026"
    assert all(c["stages"] == ["data", "decode"] for c in fake.calls)
    # the data stage was built once (by the profile's seed) and copied, with a record describing the copy
    for s in (2025, 2026):
        rec = RunDir(runs / "seeds" / str(s)).read_record("data")
        assert rec["seed"] == s and rec["copied_from"] == "../.." and rec["config"]["pipeline"]["variant"] == f"seeds/{s}"
        assert json.loads((runs / "seeds" / str(s) / "data" / "split.json").read_text()) == {"built_by_seed": 2024}
    # aggregate files
    out = reps / "seeds"
    for f in ("summary.md", "summary.csv", "significance.md", "significance.csv", "seeds.csv"):
        assert (out / f).is_file(), f
    t = summary.table.set_index("method")
    assert list(t.index) == ["w/o Graph", "GNN only (lightgcn)", "AGRec (lightgcn)"]
    assert (t["n_seeds"] == 3).all()
    # AGRec: 21 of 40 users hit in every seed -> HR@10 0.525 ± 0
    assert t.loc["AGRec (lightgcn)", "HR@10 mean"] == pytest.approx(21 / 40)
    assert t.loc["AGRec (lightgcn)", "HR@10 sd"] == 0.0
    gnn = np.array([10, 30, 10]) / 40
    assert t.loc["GNN only (lightgcn)", "HR@5 mean"] == pytest.approx(gnn.mean())
    assert t.loc["GNN only (lightgcn)", "HR@5 sd"] == pytest.approx(gnn.std(ddof=1))
    assert t.loc["AGRec (lightgcn)", "alpha per seed"] == "0.3, 0.1, 0.2"
    assert t.loc["GNN only (lightgcn)", "alpha per seed"] == ""
    assert t.loc["GNN only (lightgcn)", "wins HR@10"] == "2/3"
    assert t.loc["w/o Graph", "wins NDCG@10"] == "3/3"
    # the pooled HR test vs the LM alone: per user, AGRec-only hits 0..9 always; the LM hits 20..24 always, AGRec
    # only its seed's extra user (2024 % 7 = 1 -> 21, 2025 -> 22, 2026 -> 23): seed-averaged d < 0 for 20..24
    # -> 10 better, 5 worse (not 30 vs 12 discordant user-seed pairs)
    sig = summary.tests
    pooled = sig[(sig.method == "w/o Graph") & (sig.seed == "pooled") & (sig.metric == "HR@10")].iloc[0]
    assert (pooled.n_better, pooled.n_worse) == (10, 5)
    assert t.loc["w/o Graph", "p HR@10"] == pytest.approx(pooled.p_value)
    from scipy.stats import binomtest
    assert pooled.p_value == pytest.approx(binomtest(10, 15).pvalue)
    one = sig[(sig.method == "w/o Graph") & (sig.seed == "2024") & (sig.metric == "HR@10")].iloc[0]
    assert (one.n_better, one.n_worse, one.test) == (10, 4, "McNemar exact")
    assert sorted(sig.seed.unique()) == ["2024", "2025", "2026", "pooled"]
    md = (out / "summary.md").read_text()
    assert "0.5250 ± 0.0000" in md and "3 seeds (2024, 2025, 2026)" in md
    assert pd.read_csv(out / "seeds.csv")["alpha"].tolist() == pytest.approx([0.3, 0.1, 0.2])


def test_aggregate_only_cli_on_synthetic_outputs(tmp_path, capsys):
    fake = FakePipeline()
    run_seeds(CI_PROFILE, [2024, 7], stages=["decode"], overrides=_dirs(tmp_path), run_pipeline=fake,
              log=lambda s: None, n_resamples=99)
    summary = tmp_path / "reports" / "ml-100k" / "ci" / "seeds" / "summary.md"
    summary.unlink()
    sets = [a for k, v in _dirs(tmp_path).items() for a in ("--set", f"{k}={v}")]
    assert main(["seeds", "--config", str(CI_PROFILE), "--aggregate-only", *sets]) == 0
    assert "2 seeds (2024, 7)" in summary.read_text()
    assert "AGRec (lightgcn)" in capsys.readouterr().out
    # an explicit list with an unfinished seed aggregates the finished ones
    assert main(["seeds", "--config", str(CI_PROFILE), "--aggregate-only", "--seeds", "7,8", *sets]) == 0
    assert "1 seeds (7)" in summary.read_text()
    # running needs --seeds; aggregating nothing is an error naming the folder
    assert main(["seeds", "--config", str(CI_PROFILE), *sets]) == 2
    assert "--seeds is required" in capsys.readouterr().err
    assert main(["seeds", "--config", str(CI_PROFILE), "--aggregate-only", "--seeds", "8,", *sets]) == 2
    assert "no finished decode stage for seed(s) [8]" in capsys.readouterr().err


def test_aggregate_refuses_a_seed_run_with_another_config(tmp_path):
    fake = FakePipeline()
    run_seeds(CI_PROFILE, [2024, 7], stages=["decode"], overrides=_dirs(tmp_path), run_pipeline=fake,
              log=lambda s: None, n_resamples=99)
    with pytest.raises(AgrecError, match=r"seed 2024's decode stage ran with another configuration "
                                         r"\(differs in evaluation.max_users\)"):
        aggregate_seeds(CI_PROFILE, [2024, 7], {**_dirs(tmp_path), "evaluation.max_users": 5}, log=lambda s: None)
    with pytest.raises(AgrecError, match="has no row 'AGRec \\(sgl\\)'"):
        aggregate_seeds(CI_PROFILE, [2024, 7], _dirs(tmp_path), reference="AGRec (sgl)", log=lambda s: None)


def test_another_reference_gets_its_own_folder_and_leaves_the_main_summary(tmp_path):
    fake = FakePipeline()
    run_seeds(CI_PROFILE, [2024, 2025], stages=["decode"], overrides=_dirs(tmp_path), run_pipeline=fake,
              log=lambda s: None, n_resamples=99)
    seeds_dir = tmp_path / "reports" / "ml-100k" / "ci" / "seeds"
    main_before = {p.name: p.read_bytes() for p in seeds_dir.iterdir() if p.is_file()}
    sets = [a for k, v in _dirs(tmp_path).items() for a in ("--set", f"{k}={v}")]
    assert main(["seeds", "--config", str(CI_PROFILE), "--aggregate-only", "--reference", "w/o Graph", *sets]) == 0
    other = seeds_dir / "vs_w_o_graph"
    assert sorted(p.name for p in other.iterdir()) == ["manifest.json", "seeds.csv", "significance.csv",
                                                       "significance.md", "summary.csv", "summary.md"]
    listed = json.loads((other / "manifest.json").read_text())["files"]
    assert sorted(listed) == ["seeds.csv", "significance.csv", "significance.md", "summary.csv", "summary.md"]
    assert {p.name: p.read_bytes() for p in seeds_dir.iterdir() if p.is_file()} == main_before
    t = pd.read_csv(other / "summary.csv").set_index("method")
    # against the LM alone: AGRec hits 0..19 + its seed's extra user (21, 22), the LM 10..24; per seed, the LM
    # is better on 20..24 less AGRec's extra user (4 users) and worse on 0..9 (10 users) -> 0/2 seeds ahead
    assert t.loc["AGRec (lightgcn)", "wins HR@10"] == "0/2" and pd.isna(t.loc["w/o Graph", "wins HR@10"])
    assert "tests of **w/o Graph** against each row" in (other / "summary.md").read_text()


def test_mean_sd_formatting():
    assert mean_sd(0.17923, 0.00514) == "0.1792 ± 0.0051"
    assert mean_sd(0.1, math.nan) == "0.1000"
    assert mean_sd(0.5, 0.0, digits=2) == "0.50 ± 0.00"


def test_share_data_stage_only_from_the_same_data_config(tmp_path):
    from agrec.run.seeds import plan_seeds, share_data_stage

    main_prof = load_profile(CI_PROFILE, _dirs(tmp_path))
    run = RunDir(main_prof.run_dir)
    atomic_write_json(run.stage_dir("data") / "split.json", {"x": 1})
    run.mark_done("data", "k", main_prof)
    other = plan_seeds(CI_PROFILE, [7], {**_dirs(tmp_path), "data.min_seq_len": 5})[0]
    assert share_data_stage([main_prof.run_dir], other, log=lambda s: None) is None
    assert not (other.profile.run_dir / "data").exists()
    same = plan_seeds(CI_PROFILE, [7], _dirs(tmp_path))[0]
    assert share_data_stage([main_prof.run_dir], same, log=lambda s: None) == main_prof.run_dir
    rec = RunDir(same.profile.run_dir).read_record("data")
    assert (rec["seed"], rec["config_hash"], rec["copied_from"]) == (7, "k", "../..")
    # a run that already has its data stage is left alone
    assert share_data_stage([main_prof.run_dir], same, log=lambda s: None) is None


@pytest.mark.parametrize("damage, reason", [
    ("edit_results", "has changed content"),
    ("truncate_rankings", "has 10 bytes, the record says"),
    ("upstream_changed", "upstream lm"),
])
def test_aggregate_refuses_a_seed_whose_decode_stage_is_not_current(tmp_path, damage, reason):
    fake = FakePipeline()
    run_seeds(CI_PROFILE, [2024, 7], stages=["decode"], overrides=_dirs(tmp_path), run_pipeline=fake,
              log=lambda s: None, n_resamples=99)
    seed7 = load_profile(CI_PROFILE, {**_dirs(tmp_path), "seed": 7, "pipeline.variant": "seeds/7"})
    decode = seed7.run_dir / "decode"
    if damage == "edit_results":   # the reported case: a hand-edited NDCG@10, same size and mtime restored
        path = decode / "results.json"
        st = path.stat()
        text = path.read_text()
        i = text.index('"NDCG@10": ') + len('"NDCG@10": ')
        path.write_text(text[:i] + "0.9999" + text[i + 6:])
        assert path.stat().st_size == st.st_size
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif damage == "truncate_rankings":
        path = next((decode / "rankings").glob("*.npz"))
        path.write_bytes(path.read_bytes()[:10])
    else:
        run = RunDir(seed7.run_dir)
        atomic_write_json(run.stage_dir("lm") / "out.json", {"retrained": True})
        run.mark_done("lm", config_key(seed7, "lm"), seed7)
    with pytest.raises(AgrecError, match=rf"seeds/7/decode: seed 7's decode stage is stale \(.*{reason}"):
        aggregate_seeds(CI_PROFILE, [2024, 7], _dirs(tmp_path), log=lambda s: None, n_resamples=99)
    assert main(["seeds", "--config", str(CI_PROFILE), "--aggregate-only",
                 *[a for k, v in _dirs(tmp_path).items() for a in ("--set", f"{k}={v}")]]) == 2
