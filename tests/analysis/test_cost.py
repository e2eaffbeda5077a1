"""agrec.analysis.cost: the cost section of table2.md, read from report folders' results/pipeline.json."""

import json

import pytest

from agrec.analysis.cost import cost_markdown, cost_table, read_cost
from agrec.errors import AgrecError


def _record(folder, stages, total, reused=(), refreshed=None, resources=None, peak=None):
    (folder / "results").mkdir(parents=True)
    d = {"stages_s": stages, "reused": list(reused), "total_s": total}
    if refreshed is not None:
        d["refreshed"] = refreshed
    if resources is not None:
        d["resources"] = resources
        d["peak_rss_mib"] = peak
    (folder / "results" / "pipeline.json").write_text(json.dumps(d))


def test_cost_rows_per_run_and_seed_with_other_work_summed_over_executed_stages(tmp_path):
    main = tmp_path / "Games" / "cpu"
    # a rerun that reused data and lm: its wall time is decode's and a little, its stages add up to 4,206 s
    _record(main, {"data": 6.0, "lm": 3000.0, "decode": 1200.0}, 1212.0, reused=["data", "lm"], refreshed=["lm"],
            resources={"data": None,
                       "lm": {"peak_rss_mib": 900.0, "cpu_s": 5000.0, "others_cpu_s": 30.0},
                       "decode": {"peak_rss_mib": 2048.0, "cpu_s": 2000.0, "others_cpu_s": 60.0, "steal_s": 90.0}},
            peak=2048.0)
    _record(main / "seeds" / "2025", {"data": 12.0, "lm": 1800.0}, 1812.0)  # from before resources were recorded
    (main / "seeds" / "manifest.json").write_text("{}")  # not a seed folder
    (main / "seeds" / "vs_agrec_sasrec").mkdir()  # neither
    _record(tmp_path / "Beauty" / "cpu" / "seeds" / "7", {"data": 60.0}, 60.0)  # the main run has no record

    df = cost_table([("Games", 2024, main), ("Beauty", 2024, tmp_path / "Beauty" / "cpu")])
    assert df[["dataset", "seed"]].values.tolist() == [["Games", 2024], ["Games", 2025], ["Beauty", 7]]
    first = df.iloc[0]
    assert (first["lm"], first["total_s"], first["stages_sum_s"], first["peak_rss_mib"]) == (3000.0, 1212.0, 4206.0,
                                                                                            2048.0)
    assert first["others_cpu_s"] == 60.0  # decode's: data and lm were not executed in this run
    assert first["steal_s"] == 90.0
    assert first["reused"] == "data, lm (refreshed)"  # lm once, as refreshed: its minutes are loading
    assert df.iloc[1][["peak_rss_mib", "others_cpu_s", "steal_s"]].isna().all()  # not recorded, not 0

    md = cost_markdown(df)
    assert "| Games | 2024 | 0.1 |  |  | 50.0 | 20.0 |  | 20.2 | 70.1 | 2.00 | 1.0 | 1.5 | data, lm (refreshed) |" in md
    assert "| Games | 2025 | 0.2 |  |  | 30.0 |  |  | 30.2 | 30.2 |  |  |  |  |" in md
    assert "| Beauty | 7 | 1.0 |" in md


def test_other_work_is_unknown_unless_every_executed_stage_measured_it(tmp_path):
    _record(tmp_path, {"data": 1.0, "lm": 2.0}, 3.0,
            resources={"data": {"peak_rss_mib": 1.0, "cpu_s": 1.0, "others_cpu_s": 5.0}, "lm": None}, peak=1.0)
    assert read_cost(tmp_path)["others_cpu_s"] is None
    # steal recorded by the stages of a run made before it was: unknown for that run, not 0
    assert read_cost(tmp_path)["steal_s"] is None


def test_the_sum_of_stages_is_unknown_where_a_stage_has_no_seconds(tmp_path):
    _record(tmp_path, {"data": 1.0, "lm": None}, 3.0)
    assert read_cost(tmp_path)["stages_sum_s"] is None


def test_no_record_is_no_row_and_a_damaged_record_is_a_named_error(tmp_path):
    assert read_cost(tmp_path) is None
    assert cost_markdown(cost_table([("X", 1, tmp_path)])) == ""
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "pipeline.json").write_text('{"stages": 1}')
    with pytest.raises(AgrecError, match=r"pipeline.json: expected an object with a 'stages_s'"):
        read_cost(tmp_path)
    (tmp_path / "results" / "pipeline.json").write_text("{")
    with pytest.raises(AgrecError, match="pipeline.json: not valid JSON"):
        read_cost(tmp_path)
