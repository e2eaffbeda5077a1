import json
import os
import math
import re

import numpy as np
import pandas as pd
import pytest

from agrec.cli import main
from agrec.config import load_profile
from agrec.decode.outcomes import OUTCOMES, read_outcomes, write_outcomes
from agrec.decode.stage import DecodeReport, save_rankings, slug
from agrec.errors import AgrecError, ConfigError
from agrec.io import atomic_write_json
from agrec.run.lineage import config_key, stage_status
from agrec.run.report import Report
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
    dec = DecodeReport(rows=rows, curve=[], chosen=chosen, n_users=U, seconds=0.0, folder=folder)
    dec.save()
    run.mark_done("decode", config_key(profile, "decode"), profile, chosen=chosen)
    write_outcomes(Report(profile.report_dir), dec, profile)   # as the decode notebook does


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


def _summary_files(folder):
    return {f: (folder / f).read_text() for f in ("summary.csv", "significance.csv")}


def test_seeds_whose_run_folders_are_gone_are_paired_from_their_reports(tmp_path):
    """A seed run on another machine or day arrives as its report folder alone: the aggregate pairs it from the
    per-user outcomes the decode notebook recorded, to the same numbers as from its run folder."""
    import shutil

    fake = FakePipeline()
    seeds = [2024, 2025, 2026]
    from_runs = run_seeds(CI_PROFILE, seeds, stages=["decode"], overrides=_dirs(tmp_path), run_pipeline=fake,
                          log=lambda s: None, n_resamples=999)
    out = tmp_path / "reports" / "ml-100k" / "ci" / "seeds"
    before = _summary_files(out)
    assert from_runs.seeds["source"].tolist() == ["run"] * 3
    runs = tmp_path / "runs" / "ml-100k" / "ci"
    shutil.rmtree(runs / "seeds" / "2025")               # one seed's run folder gone: mixed sources, found
    mixed = aggregate_seeds(CI_PROFILE, None, _dirs(tmp_path), log=lambda s: None, n_resamples=999)
    assert mixed.seeds["seed"].tolist() == seeds          # in seed order, wherever each was found
    assert mixed.seeds["source"].tolist() == ["run", "report", "run"]
    assert _summary_files(out) == before                 # every mean, p-value and CI identical
    shutil.rmtree(runs)                                  # every run folder gone; the seeds are still found
    found = aggregate_seeds(CI_PROFILE, None, _dirs(tmp_path), log=lambda s: None, n_resamples=999)
    assert found.seeds["seed"].tolist() == seeds and found.seeds["source"].tolist() == ["report"] * 3
    assert _summary_files(out) == before
    sets = [a for k, v in _dirs(tmp_path).items() for a in ("--set", f"{k}={v}")]
    assert main(["seeds", "--config", str(CI_PROFILE), "--aggregate-only", *sets]) == 0
    assert pd.read_csv(out / "seeds.csv")["source"].tolist() == ["report"] * 3
    assert re.search(r"\|\s+2025 \|.*\| report\s+\|", (out / "summary.md").read_text())


def test_a_run_folder_that_is_here_wins_over_its_report_even_unfinished(tmp_path):
    """A seed whose decode rerun was stopped (record invalidated) is unfinished: its report's older outcomes
    must not stand in for a run folder that is on this machine."""
    fake = FakePipeline()
    run_seeds(CI_PROFILE, [2024, 2025, 2026], stages=["decode"], overrides=_dirs(tmp_path), run_pipeline=fake,
              log=lambda s: None, n_resamples=99)
    RunDir(tmp_path / "runs" / "ml-100k" / "ci" / "seeds" / "2025").invalidate("decode", log=lambda s: None)
    logs = []
    got = aggregate_seeds(CI_PROFILE, [2024, 2025, 2026], _dirs(tmp_path), log=logs.append, n_resamples=99)
    assert got.seeds["seed"].tolist() == [2024, 2026] and got.seeds["source"].tolist() == ["run", "run"]
    assert any("seed(s) [2025] have no finished decode stage" in m for m in logs)
    assert aggregate_seeds(CI_PROFILE, None, _dirs(tmp_path), log=lambda s: None,
                           n_resamples=99).seeds["seed"].tolist() == [2024, 2026]


def test_a_damaged_report_of_the_profiles_own_seed_is_named_not_dropped(tmp_path):
    import shutil

    fake = FakePipeline()
    run_seeds(CI_PROFILE, [2024, 2025], stages=["decode"], overrides=_dirs(tmp_path), run_pipeline=fake,
              log=lambda s: None, n_resamples=99)
    shutil.rmtree(tmp_path / "runs")
    path = tmp_path / "reports" / "ml-100k" / "ci" / "results" / OUTCOMES
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(AgrecError, match=r"ci/results/decode_outcomes.npz"):
        aggregate_seeds(CI_PROFILE, None, _dirs(tmp_path), log=lambda s: None, n_resamples=99)


def test_outcomes_hold_each_rows_rank_of_the_test_item(tmp_path):
    prof = load_profile(CI_PROFILE, _dirs(tmp_path))
    fake_decode(prof, seed_hits(2024), alpha=0.2)
    got = read_outcomes(prof.report_dir)
    assert got.seed == 2024 and got.list_length == 10 and got.chosen["alpha"] == 0.2
    assert [r["name"] for r in got.rows] == ["w/o Graph", "GNN only (lightgcn)", "AGRec (lightgcn)"]
    np.testing.assert_array_equal(got.users, np.arange(U))
    np.testing.assert_array_equal(got.targets, np.arange(U) * 3)
    want = np.zeros(U, dtype=np.int32)
    want[10:25] = 1                                      # the LM alone ranks the target first for users 10..24
    np.testing.assert_array_equal(got.ranks["w/o Graph"], want)
    assert got.config["evaluation"] == prof.key_dict()["evaluation"]
    listed = json.loads((prof.report_dir / "results" / "manifest.json").read_text())["files"]
    assert OUTCOMES in listed
    assert read_outcomes(tmp_path / "nowhere", required=False) is None
    with pytest.raises(AgrecError, match="no per-user decode outcomes"):
        read_outcomes(tmp_path / "nowhere")


def test_rank_gains_by_hand():
    from agrec.analysis.significance import rank_gains, user_gains

    g = rank_gains(np.array([1, 3, 0, 6, 11]), (5, 10))
    np.testing.assert_array_equal(g["HR@5"], [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(g["HR@10"], [1, 1, 0, 1, 0])
    np.testing.assert_array_equal(g["NDCG@5"], [1.0, 0.5, 0, 0, 0])
    assert g["NDCG@10"][3] == pytest.approx(1 / math.log2(7))
    items = np.array([[4, 5, 6], [7, 8, -1]])
    assert {k: v.tolist() for k, v in user_gains(items, np.array([6, 9]), (2,)).items()} == {
        "HR@2": [0.0, 0.0], "NDCG@2": [0.0, 0.0]}


def _rewrite_outcomes(path, edit):
    """Rewrite an outcomes file through ``edit(arrays, meta)``, and its manifest entry, as a writer would."""
    from agrec.manifest import update_manifest
    from agrec.run.report import RESULTS_KIND

    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    edit(arrays, meta)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(path, **arrays)
    update_manifest(path.parent, [path.name], RESULTS_KIND)


@pytest.mark.parametrize("damage, message", [
    ("bytes", "has changed content|sha256"),
    ("ranks", r"row 'AGRec \(lightgcn\)': the per-user ranks give HR@10 0.575000, the record 0.525000"),
    ("seed", "the decode record is of seed 9, expected seed 2025"),
    ("format", "outcomes of layout 2, this version reads 1"),
    ("config", r"seed 2025's decode stage ran with another configuration \(differs in evaluation.max_users\)"),
    ("baselines", r"ran with another configuration \(differs in baselines.sasrec.epochs\)"),
    ("protocol", "was decoded under decode protocol 1, this profile's is 2"),
    ("malformed", r"the outcomes' record is malformed \(KeyError"),
])
def test_report_outcomes_that_do_not_hold_up_are_refused(tmp_path, damage, message):
    import shutil

    fake = FakePipeline()
    run_seeds(CI_PROFILE, [2024, 2025], stages=["decode"], overrides=_dirs(tmp_path), run_pipeline=fake,
              log=lambda s: None, n_resamples=99)
    shutil.rmtree(tmp_path / "runs" / "ml-100k" / "ci" / "seeds" / "2025")
    path = tmp_path / "reports" / "ml-100k" / "ci" / "seeds" / "2025" / "results" / OUTCOMES
    over = _dirs(tmp_path)
    if damage == "bytes":
        path.write_bytes(path.read_bytes()[:-1] + b"x")
    elif damage == "ranks":     # two more users at rank 1 than the recorded metrics say
        def edit(a, meta):
            a["ranks"][2, 30:32] = 1
        _rewrite_outcomes(path, edit)
    elif damage == "seed":
        _rewrite_outcomes(path, lambda a, meta: meta.update(seed=9))
    elif damage == "format":
        _rewrite_outcomes(path, lambda a, meta: meta.update(format=2))
    elif damage == "baselines":  # the files are intact: the profile asked for trains another SASRec
        shutil.rmtree(tmp_path / "runs")
        over = {**over, "baselines.sasrec.epochs": 7}
    elif damage == "protocol":
        _rewrite_outcomes(path, lambda a, meta: meta.update(protocol=1))
    elif damage == "malformed":
        def edit(a, meta):
            del meta["rows"][0]["metrics"]
        _rewrite_outcomes(path, edit)
    else:                       # the profile asked for now is not the one the seed ran
        def edit(a, meta):
            meta["config"]["evaluation"]["max_users"] = 5
        _rewrite_outcomes(path, edit)
    with pytest.raises(AgrecError, match=message) as e:
        aggregate_seeds(CI_PROFILE, [2024, 2025], over, log=lambda s: None, n_resamples=99)
    assert "decode_outcomes.npz" in str(e.value)


def test_the_decode_notebook_records_each_rows_outcomes_from_its_rankings():
    """The real pipeline (the CI profile; reused when another test module has run it): the report's outcomes are
    the ranks of the run's own rankings, row by row, and give back its test metrics."""
    from agrec.decode.stage import load_rankings, read_results
    from agrec.metrics import target_ranks
    from agrec.run.pipeline import run_pipeline

    run_pipeline(CI_PROFILE, log=lambda s: None)
    prof = load_profile(CI_PROFILE)
    out = read_outcomes(prof.report_dir)    # checks the manifest and the recorded test metrics
    res = read_results(prof.run_dir / "decode")
    assert [r["name"] for r in out.rows] == [r["name"] for r in res["rows"]]
    assert out.seed == prof.seed and out.chosen == res["chosen"]
    for r in res["rows"]:
        rk = load_rankings(prof.run_dir / "decode", r["name"], "test")
        np.testing.assert_array_equal(out.ranks[r["name"]], target_ranks(rk["items"], rk["targets"]))
        np.testing.assert_array_equal(out.users, rk["users"])
    assert len(res["rows"]) >= 3
