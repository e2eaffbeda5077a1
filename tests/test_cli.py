import pytest

from agrec.cli import _parse_grid, main
from agrec.run.launch import parse_sets
from agrec.errors import ConfigError

from conftest import CI_PROFILE


def test_sets_are_typed():
    assert parse_sets(["seed=7", "data.require_text=false", " decode.top_n =[5, 10]"]) == {
        "seed": 7, "data.require_text": False, "decode.top_n": [5, 10]}


@pytest.mark.parametrize("items, message", [
    (["seed=[1"], r"^--set seed: not valid YAML: while parsing a flow sequence"),
    (["seed=@x"], r"^--set seed: not valid YAML: while scanning for the next token"),
    (["seed='x"], r"^--set seed: not valid YAML"),
    (["seed=!!python/object/apply:os.system ['true']"], r"^--set seed: not valid YAML: could not determine a constructor"),
    (["=5"], r"^--set '=5': '' is not a profile key"),
    (["data..min_seq_len=5"], r"^--set 'data\.\.min_seq_len=5': 'data\.\.min_seq_len' is not a profile key"),
    (["a b=1"], r"^--set 'a b=1': 'a b' is not a profile key"),
    (["seed"], r"^--set expects KEY=VALUE \(e\.g\. data\.min_seq_len=5\), got 'seed'"),
    (["seed=1", "seed=2"], r"^--set: key 'seed' is given twice$"),
    (["data={a: 1, a: 2}"], r"^--set data: line 1: duplicate key 'a' \(first given on line 1\)$"),
])
def test_malformed_set_is_a_config_error(items, message):
    with pytest.raises(ConfigError, match=message):
        parse_sets(items)


def test_grid_values():
    assert _parse_grid(["decode.top_n=5, 10,20", "seed=1"]) == {"decode.top_n": [5, 10, 20], "seed": [1]}


@pytest.mark.parametrize("items, message", [
    (["decode.top_n="], r"^--grid decode\.top_n: no values \(expected decode\.top_n=V1,V2,…\)$"),
    (["decode.top_n=0,0"], r"^--grid decode\.top_n: value '0' is listed twice$"),
    (["decode.top_n=[0"], r"^--grid decode\.top_n: not valid YAML"),
    (["=1,2"], r"^--grid '=1,2': '' is not a profile key"),
    (["decode.top_n"], r"^--grid expects KEY=V1,V2,…"),
    (["decode.top_n=0", "decode.top_n=1"], r"^--grid: key 'decode\.top_n' is given twice"),
])
def test_malformed_grid_is_a_config_error(items, message):
    with pytest.raises(ConfigError, match=message):
        _parse_grid(items)


@pytest.mark.parametrize("argv, message", [
    (["run", "--config", str(CI_PROFILE), "--set", "seed=[1"], "agrec: error: --set seed: not valid YAML"),
    (["run", "--config", str(CI_PROFILE), "--set", "name=.."], "name must be a plain folder name"),
    (["run", "--config", str(CI_PROFILE), "--set", "seed=true"], "key 'seed' expects int, got True (bool)"),
    (["sweep", "--config", str(CI_PROFILE), "--stage", "data", "--grid", "seed=[1"],
     "agrec: error: --grid seed: not valid YAML"),
])
def test_cli_prints_one_line_and_exits_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["run", "status", "seeds"])
@pytest.mark.parametrize("stages, message", [
    ("", "--stages '': expected stage names separated by commas"),
    (",,", "--stages ',,': expected stage names separated by commas"),
    ("data,,gnn", "an empty name is not one"),
    ("data,data", "--stages 'data,data': a stage is named twice"),
    ("data,fsm", "--stages: unknown stage(s) ['fsm']; known stages: data, semantic_ids, gnn, lm, decode, analysis"),
])
def test_stage_lists_are_checked_before_anything_runs(command, stages, message, capsys, tmp_path):
    extra = ["--seeds", "2"] if command == "seeds" else []
    argv = [command, "--config", str(CI_PROFILE), "--stages", stages, *extra,
            "--set", f"pipeline.runs_dir={tmp_path / 'runs'}", "--set", f"pipeline.reports_dir={tmp_path / 'rep'}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"agrec: error: {message}\n" or (message in err and err.count("\n") == 1), err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "rep").exists()


@pytest.mark.parametrize("seeds, message", [
    ("100000000", "--seeds: a count must be in [1, 1000], got 100000000"),
    ("0", "--seeds: a count must be in [1, 1000], got 0"),
    (",".join(str(i) for i in range(1001)), "--seeds: 1001 seeds listed, at most 1000"),
    ("-1,", "--seeds: seeds must be in [0, 2**32) (NumPy's range), got [-1]"),
    ("x" * 100000, "--seeds expects a count (5) or a comma-separated list of seeds (2024,7,11), got 'xxxx"),
])
def test_seed_counts_and_lists_are_bounded_and_messages_short(seeds, message, capsys):
    assert main(["seeds", "--config", str(CI_PROFILE), f"--seeds={seeds}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"agrec: error: {message}") and len(err) < 300, err


@pytest.mark.parametrize("seed", ["-1", "4294967296", "100000000000000000000"])
def test_a_seed_outside_numpys_range_is_refused_at_load(seed, capsys):
    assert main(["status", "--config", str(CI_PROFILE), "--set", f"seed={seed}"]) == 2
    assert f"seed must be in [0, 2**32) (NumPy's seed range), got {seed}" in capsys.readouterr().err


def test_a_huge_bad_value_gives_a_short_message(capsys):
    assert main(["status", "--config", str(CI_PROFILE), "--set", "x" * 100000]) == 2
    err = capsys.readouterr().err
    assert "--set expects KEY=VALUE" in err and "(100002 characters)" in err and len(err) < 300


def test_output_to_a_closed_pipe_ends_quietly(tmp_path):
    import subprocess
    import sys

    # a status of 100,000 lines into `head -2`: the pipe closes while agrec still writes
    script = tmp_path / "flood.py"
    script.write_text("import sys\nfrom agrec import cli\n"
                      "def _status(*a, **k):\n"
                      "    class R:\n"
                      "        current = True\n"
                      "        def line(self):\n"
                      "            return 'x' * 200\n"
                      "    return [R() for _ in range(100000)]\n"
                      "import agrec.run.pipeline\nagrec.run.pipeline.status = _status\n"
                      f"sys.exit(cli.main(['status', '--config', {str(CI_PROFILE)!r}]))\n")
    proc = subprocess.run(f"{sys.executable} {script} | head -2", shell=True, capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.count("\n") == 2
    assert proc.stderr == ""   # no BrokenPipeError traceback, no "Exception ignored" at exit


@pytest.mark.parametrize("port, message", [("80", "a port must be in [1024, 65535] (unprivileged), got 80"),
                                           ("70000", "got 70000"), ("x" * 5000, "expected a port number, got 'xxx")])
def test_lab_port_is_checked(port, message, capsys):
    from agrec.run.lab import main as lab_main

    with pytest.raises(SystemExit) as e:
        lab_main(["--config", str(CI_PROFILE), "--port", port])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()[-1]) < 200
