import pytest

from agrec.cli import _parse_grid, _parse_sets, main
from agrec.errors import ConfigError

from conftest import CI_PROFILE


def test_sets_are_typed():
    assert _parse_sets(["seed=7", "data.require_text=false", " decode.alpha =[0.1, 0.2]"]) == {
        "seed": 7, "data.require_text": False, "decode.alpha": [0.1, 0.2]}


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
        _parse_sets(items)


def test_grid_values():
    assert _parse_grid(["decode.alpha=0, 0.5,1", "seed=1"]) == {"decode.alpha": [0, 0.5, 1], "seed": [1]}


@pytest.mark.parametrize("items, message", [
    (["decode.alpha="], r"^--grid decode\.alpha: no values \(expected decode\.alpha=V1,V2,…\)$"),
    (["decode.alpha=0,0"], r"^--grid decode\.alpha: value '0' is listed twice$"),
    (["decode.alpha=[0"], r"^--grid decode\.alpha: not valid YAML"),
    (["=1,2"], r"^--grid '=1,2': '' is not a profile key"),
    (["decode.alpha"], r"^--grid expects KEY=V1,V2,…"),
    (["decode.alpha=0", "decode.alpha=1"], r"^--grid: key 'decode\.alpha' is given twice"),
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
