"""One writer per run directory (agrec.run.runlock) and what `agrec run` does with it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from agrec.run import runlock
from agrec.run.runlock import RunLockedError

HOLD = """
import sys, time
from agrec.run import runlock
runlock.acquire(sys.argv[1], command="holder-for-test --flag")
print("held", flush=True)
time.sleep(120)
"""


def _holder(folder: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != runlock.ENV_VAR}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_is_refused_with_the_holder_named_and_a_killed_holder_frees_the_folder(tmp_path):
    folder = tmp_path / "run"
    proc = _holder(folder)
    try:
        with pytest.raises(RunLockedError) as e:
            runlock.acquire(folder)
        msg = str(e.value)
        assert f"pid {proc.pid}" in msg and "(holder-for-test --flag)" in msg and "since 20" in msg
        assert str(folder) in msg
        info = runlock.holder(folder)
        assert info["pid"] == proc.pid and info["command"] == "holder-for-test --flag"
    finally:
        proc.kill()   # SIGKILL: no cleanup code runs in the holder
        proc.wait()
    # the system released the dead holder's lock: no stale lock to clear by hand
    with runlock.locked(folder):
        assert runlock.holder(folder)["pid"] == os.getpid()
    assert runlock.holder(folder) is None   # released: the description of a gone holder is wiped


def test_lock_is_reentrant_and_inherited_by_children(tmp_path):
    folder = tmp_path / "run"
    with runlock.locked(folder, command="outer"):
        with runlock.locked(folder, command="inner"):
            assert runlock.holder(folder)["command"] == "outer"
        assert runlock.is_held(folder)
        # a child process (a notebook kernel of this run) works under the parent's lock
        code = ("import sys; from agrec.run import runlock; runlock.acquire(sys.argv[1]); "
                "print(runlock.is_held(sys.argv[1]))")
        out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "True"
    assert not runlock.is_held(folder)
    assert str(folder.resolve()) not in os.environ.get(runlock.ENV_VAR, "")
    # an unrelated process (no inherited lock) gets it once we are done
    code = "import sys; from agrec.run import runlock; runlock.acquire(sys.argv[1]); print('ok')"
    env = {k: v for k, v in os.environ.items() if k != runlock.ENV_VAR}
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "ok", out.stderr


def test_holder_description_stays_short_whatever_the_command(tmp_path):
    folder = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != runlock.ENV_VAR}
    code = HOLD.replace('command="holder-for-test --flag"', 'command="x" * 100000')
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError) as e:
            runlock.acquire(folder)
        assert len(str(e.value)) < 600
    finally:
        proc.kill()
        proc.wait()


# -- agrec run -------------------------------------------------------------------------------------------------

TOY = """name: toy
seed: 1
data: {{dataset: Toy, format: lcrec, path: {data}, min_seq_len: 3}}
pipeline:
  stages: [data]
  runs_dir: {runs}
  reports_dir: {reports}
"""


def _profile(tmp_path: Path, lcrec_dir: Path, name: str, root: Path) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(TOY.format(data=lcrec_dir, runs=root / "runs", reports=root / "reports"))
    return p


def _slow_notebooks(folder: Path) -> Path:
    """A data notebook that says it started, then waits for a file (so that a second run can be started while
    the first one holds the run folder)."""
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("config_path = None\noverrides = {}", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import pathlib, time\npathlib.Path('started').write_text('1')\n"
                                          "while not pathlib.Path('go').exists():\n    time.sleep(0.1)\n"
                                          "print(overrides)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "01_data.ipynb")
    return folder


def _agrec(args: list[str], cwd: Path, notebooks: Path | None = None) -> subprocess.Popen:
    patch = (f"import agrec.run.pipeline as p; from pathlib import Path; "
             f"p.default_notebooks_dir = lambda: Path({str(notebooks)!r}); ") if notebooks else ""
    code = f"import sys; {patch}from agrec.cli import main; sys.exit(main({args!r}))"
    env = {k: v for k, v in os.environ.items() if k != runlock.ENV_VAR}
    return subprocess.Popen([sys.executable, "-c", code], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)


def test_two_runs_on_one_run_dir_one_is_refused_and_nothing_is_mixed(tmp_path, lcrec_dir):
    root = tmp_path / "shared"
    first = _profile(tmp_path, lcrec_dir, "first", root)
    second = tmp_path / "second.yaml"   # the same run folder (same dataset and profile name), another seed
    second.write_text(first.read_text().replace("seed: 1", "seed: 2"))
    nbs = _slow_notebooks(tmp_path / "nbs")
    a = _agrec(["run", "--config", str(first), "--set", "data.min_seq_len=3"], tmp_path, nbs)
    try:
        deadline = time.time() + 120
        while not (nbs / "started").exists() and time.time() < deadline:
            time.sleep(0.1)
        assert (nbs / "started").exists(), a.stderr.read() if a.poll() is not None else "never started"
        b = _agrec(["run", "--config", str(second)], tmp_path, nbs)
        out, err = b.communicate(timeout=120)
        assert b.returncode == 2, (out, err)
        assert err.startswith("agrec: error: ") and "is in use by another agrec writer" in err
        assert f"pid {a.pid}" in err and "--set data.min_seq_len=3" in err, err
        assert len(err.strip().splitlines()) == 1
    finally:
        (nbs / "go").write_text("1")
    out, err = a.communicate(timeout=120)
    assert a.returncode == 0, err
    report = root / "reports" / "Toy" / "toy"
    executed = nbformat.read(report / "01_data.ipynb", as_version=4)
    assert "'data.min_seq_len': 3" in executed.cells[-1].outputs[0]["text"]   # the first run's notebook
    assert json.loads((report / "results" / "pipeline.json").read_text())["stages_s"].keys() == {"data"}
    assert runlock.holder(root / "runs" / "Toy" / "toy") is None


def test_two_runs_on_different_run_dirs_from_one_working_directory_both_succeed(tmp_path, lcrec_dir):
    work = tmp_path / "work"
    work.mkdir()
    profiles = [_profile(tmp_path, lcrec_dir, f"p{i}", tmp_path / f"root{i}") for i in range(2)]
    procs = [_agrec(["run", "--config", str(p)], work) for p in profiles]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err
    for i in range(2):
        res = json.loads((tmp_path / f"root{i}" / "reports" / "Toy" / "toy" / "results" / "data.json").read_text())
        assert res["users"] == 3
    # the kernels' connection files and sockets lived in private folders, not in the working directory
    assert list(work.iterdir()) == []
    assert not list((Path(__file__).resolve().parents[1] / "notebooks").glob("kernel-ipc*"))


def test_interrupted_holder_releases_the_folder(tmp_path, lcrec_dir):
    prof = _profile(tmp_path, lcrec_dir, "p", tmp_path / "root")
    nbs = _slow_notebooks(tmp_path / "nbs")
    a = _agrec(["run", "--config", str(prof)], tmp_path, nbs)
    deadline = time.time() + 120
    while not (nbs / "started").exists() and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(a.pid, signal.SIGKILL)   # no handler runs: the system must release the lock
    a.wait()
    (nbs / "started").unlink()
    (nbs / "go").write_text("1")
    b = _agrec(["run", "--config", str(prof)], tmp_path, nbs)
    out, err = b.communicate(timeout=300)
    assert b.returncode == 0, err
