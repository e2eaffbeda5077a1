from pathlib import Path

from agrec.cli import main
from agrec.config import load_profile
from agrec.io import temp_prefix
from conftest import CI_PROFILE


def test_clean_removes_only_gone_writers_leftovers_of_this_profile_and_lists_them_first(
    tmp_path, killed_writer, capsys
):
    sets = ["--set", f"pipeline.runs_dir={tmp_path / 'runs'}", "--set", f"pipeline.reports_dir={tmp_path / 'rep'}"]
    profile = load_profile(
        CI_PROFILE, {"pipeline.runs_dir": str(tmp_path / "runs"), "pipeline.reports_dir": str(tmp_path / "rep")}
    )
    run, report = profile.run_dir, profile.report_dir
    # a stage folder, a seed variant's stage folder (a sub-folder of the run) and the report's figures
    places = [run / "lm", run / "seeds" / "7" / "decode", report / "figures"]
    pids = [killed_writer(p) for p in places]
    left = sorted(p for place in places for p in place.rglob(".*") if ".tmp" in p.name)
    assert len(left) == 6  # per place: a checkpoint folder (3 MiB) and a table
    sibling = run.parent / "other-profile"  # another profile's run folder: not this command's business
    killed_writer(sibling)
    live = run / "lm" / f"{temp_prefix('epoch-2')}a1b2c3d4.tmp"  # a writer that is alive: this process
    live.mkdir()
    keep = [live, *sorted(sibling.rglob(".*")), run / "lm" / ".notes.txt"]
    keep[-1].write_text("not a temporary name of ours")

    assert main(["clean", "--config", str(CI_PROFILE), "--dry-run", *sets]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(p.exists() for p in left + keep)
    assert out[-1] == f"agrec clean: would remove 6 temporaries of writers that are gone under {run} and {report}"
    assert sorted(out[:-1]) == sorted(
        f"would remove {p} ({3.0 if p.is_dir() else 0.0:.1f} MiB): left by process {pid}, which is gone"
        for p in left
        for pid in pids
        if f".pid{pid}@" in p.name
    )

    assert main(["clean", "--config", str(CI_PROFILE), *sets]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"agrec clean: removed 6 temporaries of writers that are gone under {run} and {report}"
    assert len(out) == 7 and all(line.startswith("removed ") for line in out[:-1])
    assert not any(p.exists() for p in left) and all(p.exists() for p in keep)
    assert (run / "lm" / "ckpt").is_dir() and not any((run / "lm" / "ckpt").iterdir())

    assert main(["clean", "--config", str(CI_PROFILE), *sets]) == 0
    assert capsys.readouterr().out == (
        f"agrec clean: removed 0 temporaries of writers that are gone under {run} and {report}\n"
    )


def test_clean_of_a_profile_that_never_ran_removes_nothing_and_creates_nothing(tmp_path, capsys):
    sets = ["--set", f"pipeline.runs_dir={tmp_path / 'runs'}", "--set", f"pipeline.reports_dir={tmp_path / 'rep'}"]
    assert main(["clean", "--config", str(CI_PROFILE), *sets]) == 0
    assert capsys.readouterr().out.startswith("agrec clean: removed 0 temporaries")
    assert list(Path(tmp_path).iterdir()) == []


def test_a_report_folder_inside_the_run_folder_is_swept_once(tmp_path, killed_writer, capsys):
    runs, reports = tmp_path / "runs", tmp_path / "runs" / "ml-100k" / "ci" / "rep"  # inside the CI profile's run
    sets = ["--set", f"pipeline.runs_dir={runs}", "--set", f"pipeline.reports_dir={reports}"]
    profile = load_profile(CI_PROFILE, {"pipeline.runs_dir": str(runs), "pipeline.reports_dir": str(reports)})
    run, report = profile.run_dir, profile.report_dir
    assert report.is_relative_to(run)
    pid = killed_writer(report / "figures")
    assert main(["clean", "--config", str(CI_PROFILE), "--dry-run", *sets]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(f"left by process {pid}, which is gone" in line for line in out[:2])
    assert out[-1] == f"agrec clean: would remove 2 temporaries of writers that are gone under {run}"
