import json
import os
import subprocess
import sys

import nbformat
import pytest

from agrec.cli import main
from agrec.errors import StageError
from agrec.io import writer_tag
from agrec.run.pipeline import run_pipeline

from conftest import CI_PROFILE


def _dirs(tmp_path):
    return {"pipeline.runs_dir": str(tmp_path / "runs"), "pipeline.reports_dir": str(tmp_path / "reports")}


def test_run_executes_data_stage_into_report_dir(tmp_path):
    logs = []
    prof = run_pipeline(CI_PROFILE, stages=["data", "semantic_ids"], overrides=_dirs(tmp_path), log=logs.append)
    rep = tmp_path / "reports" / "ml-100k" / "ci"
    assert prof.report_dir == rep
    assert (rep / "01_data.ipynb").is_file()
    for f in ("figures/seq_length_hist.png", "figures/item_popularity.png",
              "tables/dataset_statistics.md", "tables/dataset_statistics.csv", "tables/split_sizes.csv"):
        assert (rep / f).is_file(), f
    res = json.loads((rep / "results" / "data.json").read_text())
    assert (res["users"], res["items"], res["interactions"]) == (943, 1682, 100000)
    assert res["split"] == {"train": 98114, "valid": 943, "test": 943}
    assert any("data: done" in line for line in logs)
    assert any("semantic_ids: done" in line for line in logs)  # the stage after data
    assert (rep / "02_tokenization.ipynb").is_file()
    sem = json.loads((rep / "results" / "semantic_ids.json").read_text())
    assert sem["collision_free"] and sem["collision_rate_after"] == 0.0 and sem["n_items"] == 1682
    rec = json.loads((tmp_path / "runs" / "ml-100k" / "ci" / "data" / "stage.json").read_text())
    assert rec["seed"] == 2024 and rec["versions"]["torch"] and rec["config"]["data"]["dataset"] == "ml-100k"
    # nothing temporary left in the report folder
    assert not [p for p in rep.rglob("*") if p.name.startswith(".")]


def test_failed_stage_names_stage_and_cell_and_leaves_no_output(tmp_path):
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("config_path = None\noverrides = {}", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("raise ValueError('boom in cell')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, nb_dir / "01_data.ipynb")
    with pytest.raises(StageError, match=r"stage 'data' failed in 01_data\.ipynb, cell \d+ .*ValueError: boom in cell"):
        run_pipeline(CI_PROFILE, overrides=_dirs(tmp_path), notebooks_dir=nb_dir, log=lambda s: None)
    rep = tmp_path / "reports" / "ml-100k" / "ci"
    assert not (rep / "01_data.ipynb").exists()
    assert (rep / "01_data.FAILED.ipynb").is_file()
    assert sorted(p.name for p in rep.iterdir()) == ["01_data.FAILED.ipynb"]


def test_cli_reports_bad_profile_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata:\n  formatt: lcrec\n")
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"agrec: error: {bad}: unknown key(s) data.formatt"


def test_cli_set_overrides_are_typed(tmp_path, capsys):
    assert main(["run", "--config", str(CI_PROFILE), "--set", "data.min_seq_len=two"]) == 2
    assert "key 'data.min_seq_len' expects int, got 'two'" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "agrec", "--help"], capture_output=True, text=True, check=True)
    assert "run" in out.stdout


def test_sweep_runs_a_stage_per_grid_point(tmp_path):
    from agrec.run.pipeline import run_sweep

    summary = run_sweep(CI_PROFILE, "data", {"data.min_seq_len": [3, 100]}, overrides=_dirs(tmp_path),
                        log=lambda s: None)
    assert summary["data.min_seq_len"].tolist() == [3, 100]
    assert summary["users"].tolist()[0] == 943
    assert summary["users"].tolist()[1] == summary["users"].tolist()[0] - summary["filtered_users"].tolist()[1]
    sweep = tmp_path / "reports" / "ml-100k" / "ci" / "sweeps" / "data"
    assert (sweep / "data.min_seq_len=100" / "01_data.ipynb").is_file()
    assert (sweep / "data.min_seq_len=100" / "figures" / "seq_length_hist.png").is_file()
    assert (sweep / "summary.csv").is_file()


def test_sweep_validates_every_point_first(tmp_path):
    from agrec.errors import ConfigError
    from agrec.run.pipeline import run_sweep

    with pytest.raises(ConfigError, match="data.min_seq_len must be >= 3"):
        run_sweep(CI_PROFILE, "data", {"data.min_seq_len": [3, 1]}, overrides=_dirs(tmp_path), log=lambda s: None)
    assert not (tmp_path / "reports").exists()


# -- reuse, status, interrupts (content-keyed runs) ------------------------------------------------------------

TOY_PROFILE = """name: toy
seed: 7
data: {{dataset: Toy, format: lcrec, path: {data}, min_seq_len: 3}}
pipeline:
  stages: [data]
  runs_dir: {root}/runs
  reports_dir: {root}/reports
"""


@pytest.fixture
def toy_profile(tmp_path, lcrec_dir):
    p = tmp_path / "toy.yaml"
    p.write_text(TOY_PROFILE.format(data=lcrec_dir, root=tmp_path))
    return p


def test_untouched_rerun_reuses_the_stage_and_its_report_and_a_data_edit_recomputes(toy_profile, lcrec_dir, capsys):
    logs = []
    run_pipeline(toy_profile, log=logs.append)
    rep = toy_profile.parent / "reports" / "Toy" / "toy"
    nb = rep / "01_data.ipynb"
    stamp = nb.stat().st_mtime_ns
    first = (rep / "results" / "pipeline.json").read_bytes()
    assert "    loading Toy: phase 2/2 (100%)" in capsys.readouterr().out   # the stage's progress, under its line
    assert main(["status", "--config", str(toy_profile)]) == 0
    assert capsys.readouterr().out == "data          current\n"

    logs.clear()
    run_pipeline(toy_profile, log=logs.append)
    assert "[1/1] data: current, reused (01_data.ipynb)" in logs
    assert nb.stat().st_mtime_ns == stamp  # not executed again
    # nothing ran, so the record of the run that made the report is kept as it was (its wall time, nothing reused)
    assert (rep / "results" / "pipeline.json").read_bytes() == first
    assert any("nothing executed; pipeline.json kept" in line for line in logs)
    assert json.loads(first)["reused"] == [] and json.loads(first)["total_s"] > 0

    inter = json.loads((lcrec_dir / "Toy.inter.json").read_text())
    inter["7"] = [1, 2, 3]
    (lcrec_dir / "Toy.inter.json").write_text(json.dumps(inter))
    assert main(["status", "--config", str(toy_profile)]) == 1
    assert capsys.readouterr().out == "data          stale (data: Toy.inter.json changed)\n"
    assert main(["run", "--config", str(toy_profile), "--reuse-only"]) == 2
    err = capsys.readouterr().err
    assert "--reuse-only: these stages are not current" in err and "data: Toy.inter.json changed" in err
    logs.clear()
    run_pipeline(toy_profile, log=logs.append)
    assert "[1/1] data: stale (data: Toy.inter.json changed): recomputing" in logs
    assert json.loads((rep / "results" / "data.json").read_text())["users"] == 4
    assert main(["status", "--config", str(toy_profile)]) == 0


def test_report_notebook_edited_by_hand_is_regenerated(toy_profile):
    run_pipeline(toy_profile, log=lambda s: None)
    nb = toy_profile.parent / "reports" / "Toy" / "toy" / "01_data.ipynb"
    nb.write_text("{}")
    logs = []
    run_pipeline(toy_profile, log=logs.append)
    assert "[1/1] data: artefacts current; the report is refreshed" in logs
    assert nbformat.read(nb, as_version=4).metadata["agrec"]["report_key"]
    # its seconds are those of loading the data stage's artefacts, and the run record says so
    record = json.loads((nb.parent / "results" / "pipeline.json").read_text())
    assert record["refreshed"] == ["data"] and record["reused"] == []


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_orphan_partials_are_the_temp_notebooks_of_gone_writers_of_that_output(tmp_path):
    from agrec.run.pipeline import orphan_partials

    out = tmp_path / "04_finetune.ipynb"
    dead = _dead_pid()
    host = writer_tag().split("@")[1]
    names = {
        f".04_finetune.pid{dead}@{host}.k2j4_x9a.tmp.ipynb": True,  # its writer is gone
        f".04_finetune.pid{dead}@{'0' * 8 if host != '0' * 8 else '1' * 8}.k2j4_x9a.tmp.ipynb": False,  # another host
        f".04_finetune.{writer_tag()}.k2j4_x9a.tmp.ipynb": False,    # this process, alive
        f".04_finetune.pid{dead}.k2j4_x9b.tmp.ipynb": True,         # before the host was recorded
        ".04_finetune.ilur4sm5.tmp.ipynb": True,                   # a version that did not record the pid
        f".04_finetune.pid{os.getpid()}.abcd1234.tmp.ipynb": False,  # a live writer
        f".05_decode.pid{dead}.abcd1234.tmp.ipynb": False,           # another stage's
        ".04_finetune.FAILED.ipynb": False,                          # kept for the user on purpose
        ".04_finetune.progress.jsonl": False,
        "04_finetune.ipynb": False,
    }
    for n in names:
        (tmp_path / n).write_text("{}")
    assert [p.name for p in orphan_partials(out)] == sorted(n for n, orphan in names.items() if orphan)


def test_a_killed_executions_partial_notebook_is_removed_by_the_next_and_named(toy_profile):
    rep = toy_profile.parent / "reports" / "Toy" / "toy"
    rep.mkdir(parents=True)
    left = rep / f".01_data.pid{_dead_pid()}@{writer_tag().split('@')[1]}.q1w2e3r4.tmp.ipynb"
    left.write_text("{}")
    figure = rep / "figures" / f".alpha.png.pid{_dead_pid()}@{writer_tag().split('@')[1]}.q1w2e3r4.tmp.png"
    figure.parent.mkdir()
    figure.write_bytes(b"half a figure")
    logs = []
    run_pipeline(toy_profile, log=logs.append)
    assert not left.exists() and (rep / "01_data.ipynb").is_file()
    assert f"    removed {left.name}: the partial notebook of an execution that was killed" in logs
    assert [p.name for p in rep.iterdir() if p.name.endswith(".tmp.ipynb")] == []
    assert not figure.exists() and any(m.startswith(f"    removed {figure} (0.0 MiB): left by process") for m in logs)


def _sleeping_notebooks(folder):
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("config_path = None\noverrides = {}", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import pathlib, time\npathlib.Path('started').write_text('1')\n"
                                          "for i in range(600):\n    time.sleep(0.1)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "01_data.ipynb")
    return folder


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupt_leaves_one_line_no_temp_files_no_record(tmp_path, toy_profile, sig):
    import os
    import signal
    import time

    nbs = _sleeping_notebooks(tmp_path / "nbs")
    # A foreground run, as in a terminal: a shell starts background jobs with SIGINT ignored, and pytest started by
    # one (`pytest &` in a script) would hand that on, so the runner would rightly ignore Ctrl-C and finish.
    code = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "import sys; from pathlib import Path; import agrec.run.pipeline as p\n"
            f"p.default_notebooks_dir = lambda: Path({str(nbs)!r})\n"
            f"from agrec.cli import main; sys.exit(main(['run', '--config', {str(toy_profile)!r}]))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while not (nbs / "started").exists() and time.time() < deadline:
        time.sleep(0.2)
    assert (nbs / "started").exists(), "the stage never started"
    os.killpg(proc.pid, getattr(signal, sig))  # the whole process group, like Ctrl-C in a terminal
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == (130 if sig == "SIGINT" else 143)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("agrec: ") and "rerun the same command" in lines[0], err
    rep = toy_profile.parent / "reports" / "Toy" / "toy"
    assert not rep.exists()  # the interrupted first stage created the report folder; nothing, not even it, is left
    assert not (toy_profile.parent / "runs" / "Toy" / "toy" / "data" / "stage.json").exists()


def test_sweep_point_folders_never_leave_the_sweep_folder(tmp_path, monkeypatch):
    """Grid values holding '..', '/' or NUL become encoded folder names under sweeps/<stage>/."""
    import agrec.run.pipeline as pipeline
    from agrec.paths import is_under

    outputs = []
    monkeypatch.setattr(pipeline, "execute_notebook", lambda nb, out, *a, **k: outputs.append(out))
    values = ["../../../../x", "/abs/path", "a\0b", "../a", ".._a", "plain"]
    pipeline.run_sweep(CI_PROFILE, "data", {"pipeline.kernel_name": values}, overrides=_dirs(tmp_path),
                       log=lambda s: None)
    sweep = tmp_path / "reports" / "ml-100k" / "ci" / "sweeps" / "data"
    folders = [o.parent for o in outputs]
    assert all(f.parent == sweep and is_under(f, sweep) for f in folders)
    assert len(set(folders)) == len(values)
    assert folders[-1].name == "pipeline.kernel_name=plain"
    assert folders[0].name.startswith("pipeline.kernel_name=.._.._.._.._x-")
    # besides the run folder's writer lock, every file is under the sweep's report folder
    assert sorted(p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")
                  if p.is_file() and p.name != ".lock") == ["reports"]
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob(".lock")] == ["runs/ml-100k/ci/.lock"]


@pytest.mark.parametrize("grid, sets, message", [
    ({"seed": [1, 2]}, {"seed": 3}, r"key\(s\) \['seed'\] are both overridden \(--set\) and swept \(--grid\)"),
    ({"seed": [1, 1]}, {}, r"sweep point seed=1 occurs twice in the grid"),
    ({"name": ["a", ".."]}, {}, r"name must be a plain folder name"),
])
def test_sweep_refuses_ambiguous_or_escaping_grids_before_running(tmp_path, grid, sets, message):
    from agrec.errors import ConfigError
    from agrec.run.pipeline import run_sweep

    with pytest.raises(ConfigError, match=message):
        run_sweep(CI_PROFILE, "data", grid, overrides={**_dirs(tmp_path), **sets}, notebooks_dir=tmp_path / "nb",
                  log=lambda s: None)
    assert list(tmp_path.iterdir()) == []


def _hungry_notebooks(folder, mib, cpu_s):
    """A data-stage notebook that keeps ``mib`` MiB resident, burns ``cpu_s`` CPU seconds and writes its kernel's
    pid to ``kernel.pid``."""
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("config_path = None\noverrides = {}", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(f"import os, pathlib, time\nimport numpy as np\na = np.ones({mib} * 2**20 // 8)\n"
                                          "pathlib.Path('kernel.pid').write_text(str(os.getpid()))\n"
                                          f"t = time.process_time()\nwhile time.process_time() - t < {cpu_s}:\n"
                                          "    pass")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "01_data.ipynb")
    return folder


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's usage is read from Linux /proc")
def test_the_run_records_each_stage_kernels_peak_memory_and_cpu_time(tmp_path, toy_profile, monkeypatch):
    from agrec.run.resources import StageMeter

    sampled = []
    sample = StageMeter.sample_kernel
    monkeypatch.setattr(StageMeter, "sample_kernel", lambda self, pid: (sampled.append(pid), sample(self, pid)))
    logs = []
    nbs = _hungry_notebooks(tmp_path / "nbs", mib=256, cpu_s=1.5)
    run_pipeline(toy_profile, notebooks_dir=nbs, log=logs.append)
    # the process sampled is the kernel that ran the cells, not this one
    assert sampled == [int((nbs / "kernel.pid").read_text())] and sampled[0] != os.getpid()
    rep = toy_profile.parent / "reports" / "Toy" / "toy"
    record = json.loads((rep / "results" / "pipeline.json").read_text())
    used = record["resources"]["data"]
    assert 256 <= used["peak_rss_mib"] < 2048 and record["peak_rss_mib"] == used["peak_rss_mib"]
    assert used["cpu_s"] >= 1.5 and used["cpu_s"] <= record["stages_s"]["data"] * os.cpu_count() + 1
    assert used["others_cpu_s"] is not None and used["steal_s"] is not None and used["steal_s"] >= 0
    # the log line says it, and the notebook carries it for a later run that reuses the report
    line = next(x for x in logs if "data: done in" in x)
    assert "GiB" in line and "CPU s" in line and "other work" in line, line
    assert nbformat.read(rep / "01_data.ipynb", as_version=4).metadata["agrec"]["resources"] == used


def test_a_refreshed_stage_stays_refreshed_when_a_later_run_reuses_its_report(tmp_path, toy_profile):
    import shutil

    from agrec.run.pipeline import default_notebooks_dir

    nbs = tmp_path / "nbs"
    nbs.mkdir()
    shutil.copy(default_notebooks_dir() / "01_data.ipynb", nbs)
    # a second stage that executes on every run (it keeps no record), so the runner writes pipeline.json each time
    second = nbformat.v4.new_notebook()
    second.cells = [nbformat.v4.new_code_cell("config_path = None\noverrides = {}", metadata={"tags": ["parameters"]})]
    second.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(second, nbs / "02_tokenization.ipynb")
    rep = toy_profile.parent / "reports" / "Toy" / "toy"

    def record():
        run_pipeline(toy_profile, stages=["data", "semantic_ids"], notebooks_dir=nbs, log=lambda s: None)
        d = json.loads((rep / "results" / "pipeline.json").read_text())
        return d["reused"], d["refreshed"]

    assert record() == ([], [])  # data computed
    (rep / "01_data.ipynb").write_text("{}")  # a report edited by hand: the next run only refreshes it
    assert record() == ([], ["data"])
    assert record() == (["data"], ["data"])  # its report's seconds are still those of loading


def _writing_notebooks(folder, rep, flag, fail):
    """A data stage that writes ``tables/keep`` always and ``tables/extra``, ``tables/shared`` and
    ``results/extra.json`` while ``flag`` exists (raising first while ``fail`` exists), and a tokenization stage
    that writes ``figures/tok.png`` and ``tables/shared``."""
    folder.mkdir()
    data = ("from pathlib import Path\nimport pandas as pd\n"
            "from agrec.run.report import Report\n"
            f"rep = Report({str(rep)!r})\n"
            f"if Path({str(fail)!r}).exists():\n    raise RuntimeError('stage fails')\n"
            "rep.table('keep', pd.DataFrame({'a': [1]}))\n"
            f"if Path({str(flag)!r}).exists():\n"
            "    rep.table('extra', pd.DataFrame({'a': [2]}))\n    rep.record('extra', {'x': 1}, 1)\n"
            "    rep.table('shared', pd.DataFrame({'a': [3]}))\n"
            "rep.record('data', {'y': 2}, 1)\n")
    tok = ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nimport pandas as pd\n"
           "from agrec.run.report import Report\n"
           f"rep = Report({str(rep)!r})\nrep.figure('tok', plt.figure())\n"
           "rep.table('shared', pd.DataFrame({'a': [4]}))\n")
    for name, code in (("01_data.ipynb", data), ("02_tokenization.ipynb", tok)):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("config_path = None\noverrides = {}", metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell(code)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / name)
    return folder


def test_a_rerun_removes_the_report_files_its_stage_no_longer_writes_and_only_those(tmp_path, toy_profile):
    from agrec.run.report import read_results

    rep = toy_profile.parent / "reports" / "Toy" / "toy"
    flag, fail = tmp_path / "flag", tmp_path / "fail"
    nbs = _writing_notebooks(tmp_path / "nbs", rep, flag, fail)
    (rep / "tables").mkdir(parents=True)
    (rep / "tables" / "stray.md").write_text("from a run made before the runner recorded outputs\n")
    (rep / "seeds" / "2025" / "tables").mkdir(parents=True)
    (rep / "seeds" / "2025" / "tables" / "a.md").write_text("another report folder\n")
    (rep / "index.md").write_text("the runner's\n")

    def run(stages=("data", "semantic_ids")):
        logs = []
        run_pipeline(toy_profile, stages=list(stages), notebooks_dir=nbs, log=logs.append)
        return [line for line in logs if "removed" in line]

    def files():
        return sorted(p.relative_to(rep).as_posix() for p in rep.rglob("*") if p.is_file() and p.suffix != ".ipynb")

    # a stage notebook without a record of its outputs (made before the record existed): nothing unclaimed goes
    legacy = nbformat.v4.new_notebook()
    nbformat.write(legacy, rep / "03_gnn.ipynb")
    flag.touch()
    assert run() == []
    assert "tables/stray.md" in files()
    # once every stage notebook records what it wrote, the file none of them claims goes, with a log line naming it
    (rep / "03_gnn.ipynb").unlink()
    assert run() == ["  removed 1 report file(s) that no stage of this report wrote (left from an earlier run): "
                     "tables/stray.md"]
    assert files() == ["figures/tok.png", "index.md", "results/data.json", "results/extra.json",
                       "results/manifest.json", "results/pipeline.json", "seeds/2025/tables/a.md",
                       "tables/extra.csv", "tables/extra.md", "tables/keep.csv", "tables/keep.md", "tables/shared.csv",
                       "tables/shared.md"]
    assert nbformat.read(rep / "01_data.ipynb", as_version=4).metadata["agrec"]["outputs"] == [
        "results/data.json", "results/extra.json", "tables/extra.csv", "tables/extra.md", "tables/keep.csv",
        "tables/keep.md", "tables/shared.csv", "tables/shared.md"]
    assert nbformat.read(rep / "02_tokenization.ipynb", as_version=4).metadata["agrec"]["outputs"] == [
        "figures/tok.png", "tables/shared.csv", "tables/shared.md"]

    # a failed execution removes nothing
    flag.unlink()
    fail.touch()
    with pytest.raises(StageError, match="stage fails"):
        run()
    assert "tables/extra.md" in files() and "results/extra.json" in files()

    # data alone: what it no longer writes goes, except the table tokenization (not executed) still claims
    fail.unlink()
    assert run(["data"]) == ["  removed 3 report file(s) that the previous execution of data wrote and this one did "
                             "not: results/extra.json, tables/extra.csv, tables/extra.md"]
    assert files() == ["figures/tok.png", "index.md", "results/data.json", "results/manifest.json",
                       "results/pipeline.json", "seeds/2025/tables/a.md", "tables/keep.csv", "tables/keep.md",
                       "tables/shared.csv", "tables/shared.md"]
    # the results manifest forgets the removed file, so the report's other results still read
    manifest = json.loads((rep / "results" / "manifest.json").read_text())
    assert sorted(manifest["files"]) == ["data.json"]
    assert read_results(rep, "data", 1)["y"] == 2
    # a rerun that writes the same files removes nothing
    assert run() == []


def test_removal_takes_only_stage_written_files_of_the_folder_whatever_the_record_says(tmp_path):
    from agrec.run.outputs import remove, snapshot

    rep, outside = tmp_path / "rep", tmp_path / "outside"
    for d in (rep / "tables", rep / "results", outside):
        d.mkdir(parents=True)
    for rel in ("tables/a.md", "results/manifest.json", "results/pipeline.json", "notes.md"):
        (rep / rel).write_text("x")
    (outside / "victim.md").write_text("not ours")
    (rep / "figures").symlink_to(outside, target_is_directory=True)   # a linked stage folder is not scanned
    (rep / "tables" / "link").symlink_to(outside, target_is_directory=True)
    assert sorted(snapshot(rep)) == ["tables/a.md"]
    logs = []
    names = ["results/./manifest.json", "results//pipeline.json", "figures/victim.md", "tables/link/victim.md",
             "../outside/victim.md", "notes.md", "tables/a.md", "tables/absent.md"]
    assert remove(rep, names, logs.append, "as a test") == ["tables/a.md"]
    assert logs == ["  removed 1 report file(s) as a test: tables/a.md"]
    assert (outside / "victim.md").is_file() and (rep / "results" / "manifest.json").is_file()
    assert (rep / "results" / "pipeline.json").is_file() and (rep / "notes.md").is_file()


def test_a_stopped_writer_removes_only_the_empty_folders_it_created_below_the_dataset_folder(tmp_path):
    from agrec.run.pipeline import _missing_folders, _remove_if_empty

    reports = tmp_path / "reports"
    (reports / "Games").mkdir(parents=True)
    report = reports / "Games" / "cpu" / "seeds" / "2026"
    created = _missing_folders(report, within=reports / "Games")
    assert created == [report, report.parent, report.parent.parent]  # deepest first, never the dataset folder
    # the dataset folder itself missing (a first run of the dataset): still not listed, other profiles share it
    assert _missing_folders(tmp_path / "x" / "D" / "p", within=tmp_path / "x" / "D") == [tmp_path / "x" / "D" / "p"]
    # a report folder outside the dataset folder: only itself
    assert _missing_folders(tmp_path / "else" / "r", within=reports / "Games") == [tmp_path / "else" / "r"]
    report.mkdir(parents=True)
    (report.parent / "other.txt").write_text("another writer's file")
    report.rmdir()  # gone already: its parents are still visited
    _remove_if_empty(created)
    assert not report.exists() and report.parent.exists() and (reports / "Games" / "cpu").exists()
    (report.parent / "other.txt").unlink()
    _remove_if_empty(created)
    assert not (reports / "Games" / "cpu").exists() and (reports / "Games").is_dir()
