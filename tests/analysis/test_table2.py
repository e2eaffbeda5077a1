"""agrec.analysis.table2: rows read from decode.json, paper rows beside them, markdown."""

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from types import SimpleNamespace

from agrec.analysis.stage import RESULTS_FORMAT as ANALYSIS_FORMAT, analysis_results
from agrec.analysis.table2 import DECODE_RESULTS_FORMAT, METRICS, decode_record, read_run, table2, to_markdown
from agrec.decode.stage import DecodeReport
from agrec.errors import AgrecError
from agrec.manifest import update_manifest, write_manifest
from agrec.run.report import RESULTS_KIND, Report
from agrec.run.seeds import MANIFEST_KIND, SeedsSummary, write_summary


def _metrics(h5, n5, h10, n10):
    return {"HR@5": h5, "NDCG@5": n5, "HR@10": h10, "NDCG@10": n10}


def _write(folder, rows, sig=None, chosen=None, row_alpha=None, selected=None, significance_parts=None,
           decode_variants=None):
    """results/decode.json through the writers the decode notebook uses: a DecodeReport whose rows carry the α/τ
    they were decoded at, agrec.analysis.table2.decode_record, agrec.run.report.Report.record."""
    chosen = chosen or {"alpha": 0.2, "tau": 1.0}
    variants = {name: {"row": v["row"], "settings": {}, "chosen": {"alpha": v["alpha"], "tau": v["tau"]}}
                for name, v in (decode_variants or {}).items()}
    at = {v["row"]: v["chosen"] for v in variants.values()}
    at.update(row_alpha or {})
    dec_rows = []
    for name, m in rows.items():
        point = at.get(name, chosen) if name.startswith("AGRec") else {}
        settings = {"alpha": point["alpha"], "tau": point["tau"]} if point else {}
        dec_rows.append({"name": name, "settings": settings, "metrics": {"valid": m, "test": m}})
    dec = DecodeReport(rows=dec_rows, curve=[], chosen=chosen, n_users=3, seconds=0.0, folder=folder,
                       variants=variants, selected=selected)
    significance = pd.DataFrame([{"method": meth, "metric": k, "p_value": p}
                                 for meth, ps in (sig or {}).items() for k, p in ps.items()],
                                columns=["method", "metric", "p_value"])
    Report(folder).record("decode", decode_record(dec, significance, significance_parts or {}),
                          DECODE_RESULTS_FORMAT)
    return folder


def test_rows_in_order_with_p_values_and_paper(tmp_path):
    folder = _write(tmp_path / "Instruments" / "cpu", {
        "AGRec (lightgcn)": _metrics(0.09, 0.07, 0.12, 0.08),
        "w/o Graph": _metrics(0.08, 0.06, 0.11, 0.075),
        "GNN only (lightgcn)": _metrics(0.07, 0.05, 0.10, 0.065),
        "GNN only (sgl)": _metrics(0.01, 0.01, 0.01, 0.01),
    }, sig={"w/o Graph": {"HR@10": 0.03, "NDCG@10": 0.00002}, "GNN only (lightgcn)": {"HR@10": 0.5}})
    run = read_run(folder)
    assert (run.dataset, run.profile) == ("Instruments", "cpu")
    df = table2([run])
    assert list(df["row"]) == ["ours: LM alone (w/o Graph)", "ours: LightGCN alone", "ours: AGRec (LightGCN)",
                               "paper: SASRec", "paper: TIGER", "paper: LC-Rec", "paper: LETTER",
                               "paper: AGRec (Llama-3.2-1B)", "paper: LC-Rec (its own paper)"]
    # the main row's tests against its parts come from significance_test (AGRec vs every row)
    assert df.loc[2, "p vs LM HR@10"] == 0.03 and df.loc[2, "p vs scorer HR@10"] == 0.5
    assert pd.isna(df.loc[2, "p vs scorer NDCG@10"]) and pd.isna(df.loc[0, "p vs LM HR@10"])
    assert df.loc[2, "alpha"] == 0.2 and df.loc[2, "HR@10"] == 0.12
    md = to_markdown(df)
    # these made-up LM-alone numbers cannot come from one ranking per user: .075 - .06 > (.11 - .08) / log2 7
    assert ("| Instruments | ours: LM alone (w/o Graph) | 1 | .0800 | .0600 | .1100 | .0750 |  |  |  | "
            "N@10-N@5 <= (H@10-H@5)/log2 7 |") in md
    assert "| Instruments | paper: AGRec (Llama-3.2-1B) |  | .1053 | .0883 | .1260 | .0950 |  |  |  | ok |" in md
    assert ("| Instruments | paper: LC-Rec |  | .0835 | .0741 | .1056 | .0789 |  |  |  | "
            "N@10-N@5 >= (H@10-H@5)/log2 11 |") in md
    assert ("| Instruments | ours: AGRec (LightGCN) | 1 | .0900 | .0700 | .1200 | .0800 | 0.03 / <1e-4 | 0.5 /  | 0.2 "
            "| ok |") in md


def test_variant_rows_carry_their_alpha_and_tests_against_both_parts(tmp_path):
    parts = {"w/o Graph": {"HR@10": 0.001, "NDCG@10": 0.04}, "GNN only (lightgcn)": {"HR@10": 0.2, "NDCG@10": 0.3}}
    folder = _write(tmp_path / "Games" / "cpu", {
        "w/o Graph": _metrics(0.08, 0.06, 0.11, 0.075),
        "GNN only (lightgcn)": _metrics(0.07, 0.05, 0.10, 0.065),
        "AGRec (lightgcn)": _metrics(0.09, 0.07, 0.12, 0.08),
        "AGRec [level 0]": _metrics(0.1, 0.08, 0.13, 0.09),
        "SASRec only": _metrics(0.1, 0.08, 0.13, 0.09),
        "AGRec (sasrec)": _metrics(0.1, 0.08, 0.13, 0.09),
    }, sig={"w/o Graph": {"HR@10": 0.5, "NDCG@10": 0.5}},
        significance_parts={"AGRec (lightgcn)": {"w/o Graph": {"HR@10": 0.01}}, "AGRec [level 0]": parts,
                            "AGRec (sasrec)": {"w/o Graph": {"HR@10": 0.7}, "SASRec only": {"HR@10": 0.02}}},
        decode_variants={"level 0": {"row": "AGRec [level 0]", "alpha": [0.4, 0.0], "tau": 1.0}})
    df = table2([read_run(folder)])
    assert list(df["row"])[:6] == ["ours: LM alone (w/o Graph)", "ours: LightGCN alone",
                                   "ours: SASRec (full-softmax CE)", "ours: AGRec (LightGCN)", "ours: AGRec (SASRec)",
                                   "ours: AGRec [level 0]"]
    main, sas, var = df.iloc[3], df.iloc[4], df.iloc[5]
    # AGRec (sasrec) is tested against SASRec alone, not LightGCN
    assert (sas["p vs LM HR@10"], sas["p vs scorer HR@10"]) == (0.7, 0.02)
    assert main["p vs LM HR@10"] == 0.01  # significance_parts wins over significance_test
    assert (var["p vs LM HR@10"], var["p vs LM NDCG@10"], var["p vs scorer HR@10"]) == (0.001, 0.04, 0.2)
    assert var["alpha"] == [0.4, 0.0]
    md = to_markdown(df)
    assert "| Games | ours: AGRec [level 0] | 1 | .1000 | .0800 | .1300 | .0900 | 0.001 / 0.04 | 0.2 / 0.3 | [0.4, 0] | ok |" \
        in md
    # the paper's Games AGRec row: .0671 - .0572 = .0099 > (.1064 - .0815) / log2 7 = .0089
    assert "| Games | paper: AGRec (Llama-3.2-1B) |  | .0815 | .0572 | .1064 | .0671 |  |  |  | N@10-N@5 <= (H@10-H@5)/log2 7 |" \
        in md


def _write_seeds(folder, rows, sub=None, seeds=(2024, 2025, 2026)):
    """A seeds aggregate through its writer (agrec.run.seeds.write_summary): rows name -> (means, sds, n, alpha,
    {metric: p})."""
    recs = []
    for name, (means, sds, n, alpha, p) in rows.items():
        rec = {"method": name, "n_seeds": n, "alpha per seed": alpha, "tau per seed": ""}
        for m, v in means.items():
            rec[f"{m} mean"], rec[f"{m} sd"] = v, sds[m]
        rec.update({f"p {m}": v for m, v in p.items()})
        recs.append(rec)
    seeds_df = pd.DataFrame({"seed": list(seeds), "alpha": 0.2, "tau": 1.0, "run_dir": "r", "report_dir": "r"})
    out = folder / "seeds" / (sub or "")
    ref = next(n for n, r in rows.items() if not r[4])   # the row without p-values is the reference
    summary = SeedsSummary(table=pd.DataFrame(recs), tests=pd.DataFrame(), seeds=seeds_df, reference=ref, folder=out)
    base = SimpleNamespace(data=SimpleNamespace(dataset=folder.parent.name), name=folder.name)
    write_summary(summary, base, list(METRICS))


def test_rows_with_a_seed_aggregate_show_mean_sd_and_pooled_p(tmp_path):
    one = _metrics(0.5, 0.5, 0.5, 0.5)           # the one run's numbers, which the aggregate replaces
    folder = _write(tmp_path / "Instruments" / "cpu", {"w/o Graph": one, "GNN only (lightgcn)": one,
                                                       "SASRec only": one, "AGRec (lightgcn)": one,
                                                       "AGRec (sasrec)": one, "AGRec [top-n 30]": one},
                    sig={"w/o Graph": {"HR@10": 0.9}})
    sd = _metrics(0.001, 0.002, 0.003, 0.004)
    _write_seeds(folder, {
        "w/o Graph": (_metrics(0.08, 0.06, 0.11, 0.075), sd, 3, None, {"HR@10": 0.04, "NDCG@10": 0.01}),
        "GNN only (lightgcn)": (_metrics(0.07, 0.05, 0.10, 0.065), sd, 3, None, {"HR@10": 1e-6, "NDCG@10": 2e-5}),
        "SASRec only": (_metrics(0.09, 0.07, 0.12, 0.08), sd, 3, None, {"HR@10": 0.6, "NDCG@10": 0.7}),
        "AGRec (lightgcn)": (_metrics(0.09, 0.07, 0.12, 0.085), sd, 3, "0.2, 0.2, 0.1", {}),
        "AGRec (sasrec)": (_metrics(0.1, 0.08, 0.13, 0.09), sd, 3, "0.2, 0.2, 0.1", {"HR@10": 0.3}),
    })
    # AGRec (sasrec) tested against every row over the seeds: its own folder
    _write_seeds(folder, {"w/o Graph": (one, sd, 3, None, {"HR@10": 0.002, "NDCG@10": 0.003}),
                          "SASRec only": (one, sd, 3, None, {"HR@10": 0.02, "NDCG@10": 0.03}),
                          "AGRec (sasrec)": (one, sd, 3, "0.2, 0.2, 0.1", {})}, sub="vs_agrec_sasrec")
    run = read_run(folder)
    assert run.seeds.seeds == [2024, 2025, 2026]
    df = table2([run]).set_index("row")
    main, sas, lm = df.loc["ours: AGRec (LightGCN)"], df.loc["ours: AGRec (SASRec)"], df.loc["ours: LM alone (w/o Graph)"]
    assert (main["seeds"], main["NDCG@10"], main["NDCG@10 sd"], main["alpha"]) == (3, 0.085, 0.004, "0.2, 0.2, 0.1")
    # pooled p of the main row from seeds/summary.csv, not the one run's significance_test (0.9)
    assert (main["p vs LM HR@10"], main["p vs scorer NDCG@10"]) == (0.04, 2e-5)
    # AGRec (sasrec) against its parts from seeds/vs_agrec_sasrec/, not its line in the main aggregate
    assert (sas["p vs LM HR@10"], sas["p vs scorer HR@10"], sas["p vs scorer NDCG@10"]) == (0.002, 0.02, 0.03)
    assert lm["HR@10"] == 0.11 and pd.isna(lm["p vs LM HR@10"])
    # a row the aggregate lacks stays the one run, marked as such, with no pooled p borrowed
    var = df.loc["ours: AGRec [top-n 30]"]
    assert (var["seeds"], var["HR@10"]) == (1, 0.5) and pd.isna(var["HR@10 sd"]) and pd.isna(var["p vs LM HR@10"])
    md = to_markdown(table2([run]))
    assert ("| Instruments | ours: AGRec (LightGCN) | 3 | .0900 ± .0010 | .0700 ± .0020 | .1200 ± .0030 | "
            ".0850 ± .0040 | 0.04 / 0.01 | <1e-4 / <1e-4 | 0.2, 0.2, 0.1 |") in md


def test_a_broken_seed_aggregate_is_named(tmp_path):
    one, zero = _metrics(0.1, 0.1, 0.1, 0.1), _metrics(0, 0, 0, 0)
    folder = _write(tmp_path / "Instruments" / "cpu", {"w/o Graph": one})
    rows = {"AGRec (lightgcn)": (one, zero, 3, "0.2", {}), "w/o Graph": (one, zero, 3, None, {"HR@10": 0.04})}
    (folder / "seeds").mkdir()
    (folder / "seeds" / "summary.csv").write_text("method,n_seeds\nw/o Graph,3\n")   # not from the writer
    with pytest.raises(AgrecError, match=r"seeds/manifest.json is missing"):
        read_run(folder)
    _write_seeds(folder, rows)
    assert read_run(folder).seeds.mean["w/o Graph"]["HR@10"] == 0.1
    summary = folder / "seeds" / "summary.csv"
    good = summary.read_text()
    # a hand-edited number, a table cut to its header, a deleted seeds list: named, never a different table
    summary.write_text(good.replace("0.1,", "0.9999,", 1))
    with pytest.raises(AgrecError, match=r"seeds/summary.csv was changed after it was written"):
        read_run(folder)
    summary.write_text(good.splitlines()[0] + "\n")
    with pytest.raises(AgrecError, match=r"seeds/summary.csv was changed after it was written"):
        read_run(folder)
    summary.write_text(good)
    (folder / "seeds" / "seeds.csv").unlink()
    with pytest.raises(AgrecError, match=r"seeds/seeds.csv is missing \(listed in"):
        read_run(folder)


@pytest.mark.parametrize("content, message", [
    ("", "the table has no rows"),
    ("method,n_seeds\nw/o Graph,3\n", r"missing column\(s\) \['HR@5 mean'"),
    ("REPLACE_P", r"column\(s\) \['p HR@10'\] hold values that are not numbers"),
])
def test_a_seed_table_its_writer_would_not_write_is_named_even_with_a_matching_manifest(tmp_path, content, message):
    one, zero = _metrics(0.1, 0.1, 0.1, 0.1), _metrics(0, 0, 0, 0)
    folder = _write(tmp_path / "Instruments" / "cpu", {"w/o Graph": one})
    _write_seeds(folder, {"AGRec (lightgcn)": (one, zero, 3, "0.2", {}),
                          "w/o Graph": (one, zero, 3, None, {"HR@10": 0.04})})
    summary = folder / "seeds" / "summary.csv"
    df = pd.read_csv(summary)
    if content == "REPLACE_P":
        df["p HR@10"] = df["p HR@10"].astype(object)
        df.loc[1, "p HR@10"] = "abc"
        df.to_csv(summary, index=False)
    elif content == "":
        df.iloc[:0].to_csv(summary, index=False)
    else:
        summary.write_text(content)
    names = ["summary.md", "summary.csv", "significance.csv", "seeds.csv"]
    write_manifest(summary.parent, names, MANIFEST_KIND)   # forged: the content itself is checked too
    with pytest.raises(AgrecError, match=message):
        read_run(folder)


def test_a_hand_edited_decode_result_is_named(tmp_path):
    folder = _write(tmp_path / "Instruments" / "cpu", {"w/o Graph": _metrics(0.1, 0.1, 0.1, 0.1)})
    path = folder / "results" / "decode.json"
    path.write_text(path.read_text().replace("0.1", "0.9999", 1))
    with pytest.raises(AgrecError, match=r"results/decode.json was changed after it was written"):
        read_run(folder)


def test_table2_out_must_be_a_markdown_file_in_an_existing_folder(tmp_path):
    from agrec.analysis.table2 import write_table2

    prof = tmp_path / "p.yaml"
    prof.write_text("name: cpu\nseed: 1\ndata: {dataset: Instruments, format: lcrec, path: x}\n"
                    f"pipeline: {{reports_dir: {tmp_path / 'reports'}, runs_dir: {tmp_path / 'runs'}}}\n")
    for out, message in [(tmp_path, "that is a folder"), (tmp_path / "t.csv", "ending in .md"),
                         (tmp_path / "nope" / "t.md", "does not exist")]:
        with pytest.raises(AgrecError, match=message):
            write_table2([prof], out)


def test_table2_groups_the_runs_of_a_dataset_and_refuses_one_report_folder_twice(tmp_path):
    from agrec.analysis.table2 import write_table2

    def prof(file, name, dataset):
        (tmp_path / file).write_text(
            f"name: {name}\nseed: 1\ndata: {{dataset: {dataset}, format: lcrec, path: x}}\n"
            f"pipeline: {{reports_dir: {tmp_path / 'reports'}, runs_dir: {tmp_path / 'runs'}}}\n")
        _write(tmp_path / "reports" / dataset / name, {"w/o Graph": _metrics(0.05, 0.04, 0.08, 0.05)})
        return tmp_path / file

    games, instruments, collab = prof("g.yaml", "cpu", "Games"), prof("i.yaml", "cpu", "Instruments"), \
        prof("gc.yaml", "cpu-collab", "Games")
    out = write_table2([games, instruments, collab], tmp_path / "t.md")
    shown = [line.split(" | ")[0][2:] for line in out.read_text().splitlines() if " | ours: LM alone" in line]
    assert shown == ["Games (cpu)", "Games (cpu-collab)", "Instruments"]  # Games' two runs side by side
    with pytest.raises(AgrecError, match="g2.yaml: its report folder .* is --config .*g.yaml's too"):
        write_table2([games, prof("g2.yaml", "cpu", "Games")], tmp_path / "t.md")
    # a variant's report folder is deeper (<dataset>/<name>/seeds/7): the run is still named by its profile
    variant = tmp_path / "v.yaml"
    variant.write_text(games.read_text().replace("pipeline: {", "pipeline: {variant: seeds/7, "))
    _write(tmp_path / "reports" / "Games" / "cpu" / "seeds" / "7", {"w/o Graph": _metrics(0.06, 0.04, 0.08, 0.05)})
    md = write_table2([games, variant], tmp_path / "t.md").read_text()
    assert "| Games (cpu/seeds/7) | ours: LM alone (w/o Graph) | 1 | .0600 |" in md
    assert md.count("| Games | paper: SASRec |") == 1


def test_unknown_dataset_has_no_paper_rows(tmp_path):
    folder = _write(tmp_path / "Mine" / "cpu", {"w/o Graph": _metrics(0.1, 0.1, 0.1, 0.1)})
    df = table2([read_run(folder)])
    assert list(df["row"]) == ["ours: LM alone (w/o Graph)"]


def test_one_dataset_under_two_profiles_names_each_and_prints_the_published_rows_once(tmp_path):
    from agrec.analysis.table2 import PAPER_ROWS

    a = _write(tmp_path / "Games" / "cpu", {"w/o Graph": _metrics(0.05, 0.04, 0.08, 0.05)})
    b = _write(tmp_path / "Games" / "cpu-collab", {"w/o Graph": _metrics(0.06, 0.04, 0.09, 0.05)})
    c = _write(tmp_path / "Instruments" / "cpu", {"w/o Graph": _metrics(0.09, 0.07, 0.11, 0.08)})
    df = table2([read_run(a), read_run(b), read_run(c)])
    n_games = len(PAPER_ROWS["Games"])
    assert list(df["source"]) == (["ours (cpu)", "ours (cpu-collab)"] + ["paper"] * n_games
                                  + ["ours (cpu)"] + ["paper"] * len(PAPER_ROWS["Instruments"]))
    md = to_markdown(df)
    assert "| Games (cpu) | ours: LM alone (w/o Graph) | 1 | .0500 | .0400 | .0800 | .0500 |" in md
    assert "| Games (cpu-collab) | ours: LM alone (w/o Graph) | 1 | .0600 | .0400 | .0900 | .0500 |" in md
    assert md.count("| Games | paper: SASRec |") == 1
    # a dataset under one profile keeps its plain name
    assert "| Instruments | ours: LM alone (w/o Graph) | 1 |" in md
    # the complementarity section names the profile too, even where only one of the two runs was analysed
    from agrec.analysis.table2 import complementarity_markdown, complementarity_table

    comp = {"overall": {"LLM only": 10, "GNN only": 5, "both": 15, "neither": 70}}
    case = {"user": 3, "target_title": "t", "hit_lm": False, "hit_agrec": True}
    homog = pd.DataFrame([{"setting": "α=0", "users": 100, "mean distinct": 2.5}])
    Report(a).record("analysis", analysis_results(comp, homog, case, ["x"]), ANALYSIS_FORMAT)
    cm = complementarity_markdown(complementarity_table([read_run(a), read_run(b), read_run(c)]))
    assert "| Games (cpu) | 100 | 10 | 5 | 15 | 70 | 0.2500 | 0.2000 | 0.3000 |" in cm


def test_missing_or_broken_results_are_named(tmp_path):
    with pytest.raises(AgrecError, match="no decode results"):
        read_run(tmp_path / "X" / "cpu")
    bad = tmp_path / "Y" / "cpu" / "results"
    bad.mkdir(parents=True)
    (bad / "decode.json").write_text("{")
    with pytest.raises(AgrecError, match="results/manifest.json is missing"):
        read_run(bad.parent)
    # with a manifest that vouches for them (forged here), the contents are still checked
    update_manifest(bad, ["decode.json"], RESULTS_KIND)
    with pytest.raises(AgrecError, match="decode.json: not valid JSON"):
        read_run(bad.parent)
    (bad / "decode.json").write_text(json.dumps({"format": 1, "rows": {"w/o Graph": {"valid": {}}}}))
    update_manifest(bad, ["decode.json"], RESULTS_KIND)
    with pytest.raises(AgrecError, match="row 'w/o Graph' has no test metrics"):
        read_run(bad.parent)


def test_complementarity_per_dataset_from_the_analysis_record(tmp_path):
    from agrec.analysis.table2 import complementarity_markdown, complementarity_table

    a = _write(tmp_path / "Instruments" / "cpu", {"w/o Graph": _metrics(0.1, 0.1, 0.1, 0.1)})
    comp = {"overall": {"LLM only": 10, "GNN only": 5, "both": 15, "neither": 70}}
    case = {"user": 3, "target_title": "t", "hit_lm": False, "hit_agrec": True}
    homog = pd.DataFrame([{"setting": "α=0", "users": 100, "mean distinct": 2.5}])
    Report(a).record("analysis", analysis_results(comp, homog, case, ["ml-100k/quick"]), ANALYSIS_FORMAT)
    b = _write(tmp_path / "Games" / "cpu", {"w/o Graph": _metrics(0.1, 0.1, 0.1, 0.1)})  # not analysed
    df = complementarity_table([read_run(a), read_run(b)])
    assert df["dataset"].tolist() == ["Instruments"]
    r = df.iloc[0]
    assert (r["users"], r["LM HR@10"], r["GNN HR@10"], r["union HR@10"]) == (100, 0.25, 0.20, 0.30)
    assert "| Instruments | 100 | 10 | 5 | 15 | 70 | 0.2500 | 0.2000 | 0.3000 |" in complementarity_markdown(df)
    Report(a).record("analysis", {"complementarity": {"LLM only": 10}}, ANALYSIS_FORMAT)
    with pytest.raises(AgrecError, match="analysis.json: 'complementarity' must hold integer counts"):
        read_run(a)


def test_selected_and_fused_rows_carry_their_own_alpha_and_the_parts_of_their_source(tmp_path):
    m = _metrics
    folder = _write(tmp_path / "Instruments" / "cpu", {
        "w/o Graph": m(0.1, 0.05, 0.2, 0.08), "GNN only (lightgcn)": m(0.1, 0.05, 0.2, 0.07),
        "SASRec only": m(0.1, 0.05, 0.2, 0.09), "AGRec (lightgcn)": m(0.1, 0.05, 0.2, 0.085),
        "AGRec (sasrec)": m(0.1, 0.05, 0.2, 0.095), "AGRec (lightgcn+sasrec)": m(0.1, 0.05, 0.2, 0.097),
        "AGRec (selected)": m(0.1, 0.05, 0.2, 0.097)},
        row_alpha={"AGRec (lightgcn)": {"alpha": 0.2, "tau": 1.0}, "AGRec (sasrec)": {"alpha": 0.7, "tau": 1.0},
                   "AGRec (lightgcn+sasrec)": {"alpha": 0.4, "tau": 1.0}, "AGRec (selected)": {"alpha": 0.4, "tau": 1}},
        selected={"row": "AGRec (selected)", "source": "AGRec (lightgcn+sasrec)", "valid": {}},
        significance_parts={"AGRec (selected)": {"w/o Graph": {"HR@10": 0.5}, "SASRec only": {"NDCG@10": 0.01},
                                                 "GNN only (lightgcn)": {"NDCG@10": 0.02}}})
    df = table2([read_run(folder)], paper={}).set_index("row")
    assert list(df.index) == ["ours: LM alone (w/o Graph)", "ours: LightGCN alone", "ours: SASRec (full-softmax CE)",
                              "ours: AGRec (LightGCN)", "ours: AGRec (SASRec)", "ours: AGRec (LightGCN + SASRec)",
                              "ours: AGRec (selected)"]
    assert [df.loc[r, "alpha"] for r in df.index[3:]] == [0.2, 0.7, 0.4, 0.4]
    # the selected row is tested against the parts of its source: the LM and, of the two fused scorers, the one
    # stronger on test (SASRec here)
    sel = df.loc["ours: AGRec (selected)"]
    assert (sel["p vs LM HR@10"], sel["p vs scorer NDCG@10"]) == (0.5, 0.01)


def test_decode_results_carry_their_format_and_other_formats_are_refused(tmp_path):
    folder = _write(tmp_path / "Instruments" / "cpu", {"w/o Graph": _metrics(0.1, 0.1, 0.1, 0.1)})
    path = folder / "results" / "decode.json"
    d = json.loads(path.read_text())
    assert d["format"] == DECODE_RESULTS_FORMAT == 1
    assert list(d) == ["format", "n_users", "chosen", "seconds", "rows", "significance_test", "row_alpha",
                       "significance_parts"]
    # written before the layout had a number (the committed reports of earlier versions): read as format 1
    del d["format"]
    path.write_text(json.dumps(d))
    update_manifest(path.parent, ["decode.json"], RESULTS_KIND)
    assert read_run(folder).rows["w/o Graph"]["HR@10"] == 0.1
    for fmt, message in [(2, r"decode results format 2 was written by a newer agrec \(this one reads up to 1\)"),
                         ("1", r"decode results format '1' is not a positive integer; rerun the stages"),
                         (0, r"decode results format 0 is not a positive integer")]:
        path.write_text(json.dumps({**d, "format": fmt}))
        update_manifest(path.parent, ["decode.json"], RESULTS_KIND)
        with pytest.raises(AgrecError, match=message):
            read_run(folder)
    with pytest.raises(ValueError, match="the writer stamps it"):
        Report(folder).record("decode", {"format": 3}, DECODE_RESULTS_FORMAT)


def test_analysis_results_layout(tmp_path):
    comp = {"overall": {"LLM only": 1, "GNN only": 2, "both": 3, "neither": 4}, "by_activity": None}
    homog = pd.DataFrame([{"setting": "α=0", "users": 9, "mean distinct L1": 2.0, "sd": 1.0},
                          {"setting": "α=0.4", "users": 9, "mean distinct L1": 1.5, "sd": 0.5}])
    case = {"user": 7, "target_title": "Toy Story", "hit_lm": False, "hit_agrec": True, "figure": None}
    assert analysis_results(comp, homog, case, ["a/b"]) == {
        "complementarity": {"LLM only": 1, "GNN only": 2, "both": 3, "neither": 4},
        "homogeneity": {"α=0": {"mean distinct L1": 2.0}, "α=0.4": {"mean distinct L1": 1.5}},
        "case_study": {"user": 7, "target": "Toy Story", "hit_lm": False, "hit_agrec": True},
        "runs_with_alpha_curve": ["a/b"],
    }


def test_bound_violations_from_ranks():
    from agrec.analysis.table2 import bound_violations

    # one ranking, worked out by hand: 10 users, hits at ranks 1, 1, 3 and 7
    h5, h10 = 3 / 10, 4 / 10
    n5 = (1 + 1 + 1 / math.log2(4)) / 10
    n10 = n5 + 1 / math.log2(8) / 10
    assert bound_violations(_metrics(h5, n5, h10, n10), None) == []
    assert bound_violations(_metrics(0.2, 0.3, 0.4, 0.36), None) == ["N@5 <= H@5"]
    assert bound_violations(_metrics(0.3, 0.1, 0.3, 0.1), None) == ["N@5 >= H@5/log2 6"]
    assert bound_violations(_metrics(0.3, 0.2, 0.25, 0.2), None) == ["H@5 <= H@10", "N@10-N@5 <= (H@10-H@5)/log2 7"]
    assert bound_violations(_metrics(0.1, 0.08, 0.2, 0.08), None) == ["N@10-N@5 >= (H@10-H@5)/log2 11"]
    # within the rounding of 4 printed decimals a row on the bound passes; the paper's Games AGRec row does not
    edge = 0.0300 / math.log2(7)                           # .010688...
    assert bound_violations(_metrics(0.1000, 0.0800, 0.1300, round(0.0800 + edge + 0.00005, 4)), 4) == []
    assert bound_violations(_metrics(0.0815, 0.0572, 0.1064, 0.0671), 4) == ["N@10-N@5 <= (H@10-H@5)/log2 7"]
    assert bound_violations({"HR@5": None, "NDCG@5": 0.1, "HR@10": 0.2, "NDCG@10": 0.1}) == []


def test_a_profile_that_keeps_history_items_gets_its_protocol_note(tmp_path):
    from agrec.analysis.table2 import write_table2

    reports = tmp_path / "reports"
    configs = []
    for dataset, name, keep in (("Instruments", "cpu", ""), ("Yelp", "cpu", "evaluation: {exclude_history: false}\n"),
                                ("Yelp", "big", "evaluation: {exclude_history: false}\n")):
        _write(reports / dataset / name, {"w/o Graph": _metrics(0.1, 0.1, 0.1, 0.1)})
        prof = tmp_path / f"{dataset}-{name}.yaml"
        prof.write_text(f"name: {name}\nseed: 1\ndata: {{dataset: {dataset}, format: lcrec, path: x}}\n{keep}"
                        f"pipeline: {{reports_dir: {reports}, runs_dir: {tmp_path / 'runs'}}}\n")
        configs.append(prof)
    md = write_table2(configs).read_text()
    assert md.count("- ours, Yelp: history items are **not** excluded (evaluation.exclude_history: false") == 1
    assert "- ours, Instruments:" not in md
    assert "with each user's history excluded (unless a note below names the dataset)" in md


def test_every_scorer_of_a_run_gets_its_own_row_and_its_agrec_row_in_table_order():
    from agrec.analysis.table2 import RunRows, ours_rows, part_rows

    names = ["w/o Graph", "GNN only (lightgcn)", "SASRec only", "LM items only", "AGRec (lightgcn)", "AGRec (sasrec)",
             "AGRec (lm)", "AGRec (lightgcn+sasrec)", "AGRec (selected)"]
    run = RunRows(dataset="D", profile="p", folder=Path("."), rows={n: {"NDCG@10": 0.1} for n in names},
                  p_values={}, chosen={}, n_users=1, scorer="lightgcn")
    assert ours_rows(run) == [
        ("w/o Graph", "ours: LM alone (w/o Graph)"), ("GNN only (lightgcn)", "ours: LightGCN alone"),
        ("SASRec only", "ours: SASRec (full-softmax CE)"), ("AGRec (lightgcn)", "ours: AGRec (LightGCN)"),
        ("AGRec (sasrec)", "ours: AGRec (SASRec)"), ("LM items only", "ours: LM items alone"),
        ("AGRec (lm)", "ours: AGRec (LM items)"), ("AGRec (lightgcn+sasrec)", "ours: AGRec (LightGCN + SASRec)"),
        ("AGRec (selected)", "ours: AGRec (selected)"),
    ]
    assert part_rows(run, "AGRec (lm)") == {"LM": "w/o Graph", "scorer": "LM items only"}
    main_lm = dataclasses.replace(run, scorer="lm")  # the LM's head as the main scorer: its rows come first
    assert [n for n, _ in ours_rows(main_lm)][:5] == ["w/o Graph", "LM items only", "SASRec only", "AGRec (lm)",
                                                     "AGRec (sasrec)"]
