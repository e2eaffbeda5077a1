import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agrec.config import load_profile, profile_from_dict
from agrec.errors import ConfigError

from conftest import CI_PROFILE, ROOT


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


def test_shipped_profiles_load(tmp_path):
    names = []
    for p in sorted((ROOT / "configs").glob("*.yaml")):
        prof = load_profile(p)
        names.append(prof.run_dir)
        # a profile is its file: written back and reloaded, it has the same keys for every stage
        copy = tmp_path / p.name
        copy.write_text(yaml.safe_dump(prof.to_dict(), sort_keys=False))
        again = load_profile(copy)
        assert again.key_dict() == prof.key_dict(), p.name
        assert prof.seed is not None and prof.run_dir.parts[-2:] == (prof.data.dataset, prof.name)
    assert len(names) == len(set(names)) >= 12   # every shipped profile has its own run folder


def test_unknown_top_level_key_is_named(tmp_path):
    p = write(tmp_path, "name: x\nsede: 3\n")
    with pytest.raises(ConfigError, match=r"p\.yaml: unknown key\(s\) sede"):
        load_profile(p)


def test_unknown_nested_key_is_named_with_its_section(tmp_path):
    p = write(tmp_path, "name: x\ndata:\n  min_seq_lenn: 5\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) data\.min_seq_lenn"):
        load_profile(p)


def test_wrong_type_names_key_and_value(tmp_path):
    p = write(tmp_path, "name: x\ndata:\n  min_seq_len: five\n")
    with pytest.raises(ConfigError, match=r"p\.yaml: key 'data\.min_seq_len' expects int, got 'five'"):
        load_profile(p)


def test_literal_choice_is_checked(tmp_path):
    p = write(tmp_path, "name: x\ndata:\n  format: parquet\n")
    with pytest.raises(ConfigError, match=r"data\.format"):
        load_profile(p)


def test_range_check_names_key_and_file(tmp_path):
    p = write(tmp_path, "name: x\ndata:\n  min_seq_len: 2\n")
    with pytest.raises(ConfigError, match=r"p\.yaml: data\.min_seq_len must be >= 3"):
        load_profile(p)


def test_unknown_stage(tmp_path):
    p = write(tmp_path, "name: x\npipeline:\n  stages: [data, dance]\n")
    with pytest.raises(ConfigError, match=r"pipeline\.stages: unknown stage\(s\) \['dance'\]"):
        load_profile(p)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="profile file not found"):
        load_profile(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_profile(write(tmp_path, "name: [x\n"))
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_profile(write(tmp_path, "- a\n- b\n"))


def test_missing_required_name(tmp_path):
    with pytest.raises(ConfigError, match="missing required key 'name'"):
        load_profile(write(tmp_path, "seed: 1\n"))


def test_overrides_and_paths_relative_to_profile(tmp_path):
    prof = load_profile(CI_PROFILE, {"seed": 7, "data.min_seq_len": 5})
    assert prof.seed == 7 and prof.data.min_seq_len == 5
    assert prof.run_dir == ROOT / "runs" / "ml-100k" / "ci"
    with pytest.raises(ConfigError, match=r"unknown key\(s\) data\.bogus"):
        load_profile(CI_PROFILE, {"data.bogus": 1})


def test_section_hash_tracks_content():
    a = profile_from_dict({"name": "x"})
    b = profile_from_dict({"name": "x", "data": {"min_seq_len": 5}})
    c = profile_from_dict({"name": "x", "seed": 9})
    assert a.section_hash("data") != b.section_hash("data")
    assert a.section_hash("data") != c.section_hash("data")
    assert a.section_hash("data", seed=False) == c.section_hash("data", seed=False)


# -- strict YAML -----------------------------------------------------------------------------------

def test_duplicate_key_names_file_key_and_lines(tmp_path):
    p = write(tmp_path, "name: x\nseed: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"p\.yaml: line 3: duplicate key 'seed' \(first given on line 2\)$"):
        load_profile(p)


def test_duplicate_nested_key_and_section(tmp_path):
    with pytest.raises(ConfigError, match=r"p\.yaml: line 4: duplicate key 'min_seq_len' \(first given on line 3\)"):
        load_profile(write(tmp_path, "name: x\ndata:\n  min_seq_len: 3\n  min_seq_len: 5\n"))
    with pytest.raises(ConfigError, match=r"p\.yaml: line 3: duplicate key 'data' \(first given on line 2\)"):
        load_profile(write(tmp_path, "name: x\ndata: {min_seq_len: 4}\ndata: {min_seq_len: 5}\n"))


def test_merge_key_may_be_overridden(tmp_path):
    prof = load_profile(write(tmp_path, "name: x\ndata:\n  <<: {min_seq_len: 4, require_text: false}\n  min_seq_len: 5\n"))
    assert prof.data.min_seq_len == 5 and prof.data.require_text is False


@pytest.mark.parametrize("yaml_text, message", [
    ("seed: true", r"key 'seed' expects int, got True \(bool\)"),
    ("data:\n  min_seq_len: false", r"key 'data\.min_seq_len' expects int, got False \(bool\)"),
    ("evaluation:\n  alpha_grid: [0.1, true]", r"key 'evaluation\.alpha_grid\[1\]' expects float, got True \(bool\)"),
    ("decode:\n  floor: true", r"key 'decode\.floor' expects float, got True \(bool\)"),
    ("semantic_ids:\n  cpu_threads: true", r"key 'semantic_ids\.cpu_threads' expects int, got True \(bool\)"),
    ("gnn:\n  train:\n    learning_rate: .nan", r"key 'gnn\.train\.learning_rate' expects a finite number, got nan"),
    ("gnn:\n  train:\n    learning_rate: -.inf", r"key 'gnn\.train\.learning_rate' expects a finite number, got -inf"),
    ("analysis:\n  tsne_perplexity: .inf", r"key 'analysis\.tsne_perplexity' expects a finite number, got inf"),
])
def test_bool_or_non_finite_where_a_number_is_expected(tmp_path, yaml_text, message):
    with pytest.raises(ConfigError, match=r"p\.yaml: " + message):
        load_profile(write(tmp_path, "name: x\n" + yaml_text + "\n"))


def test_ints_still_allowed_for_floats(tmp_path):
    prof = load_profile(write(tmp_path, "name: x\nevaluation:\n  tau_grid: [2]\n  alpha_grid: [0, 1]\n"))
    assert prof.evaluation.tau_grid == [2] and prof.evaluation.alpha_grid == [0, 1]
    assert load_profile(write(tmp_path, "name: x\ngnn:\n  train:\n    learning_rate: 1\n")).gnn.train.learning_rate == 1


@pytest.mark.parametrize("key, grid", [("alpha", "alpha_grid"), ("tau", "tau_grid")])
def test_decode_alpha_and_tau_are_not_profile_keys(tmp_path, key, grid):
    # Every AGRec row chooses its α/τ on validation; a fixed decode.alpha would be read by nothing.
    with pytest.raises(ConfigError, match=rf"p\.yaml: unknown key\(s\) decode\.{key} \(decode\.{key} is now "
                                          rf"evaluation\.{grid}\)"):
        load_profile(write(tmp_path, f"name: x\ndecode:\n  {key}: 0.5\n"))


def test_bom_and_non_utf8_profiles(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_bytes(b"\xef\xbb\xbfname: x\nseed: 3\n")
    assert load_profile(p).seed == 3
    p.write_bytes(b"name: x\xe9\n")
    with pytest.raises(ConfigError, match=r"p\.yaml: not UTF-8 text \(invalid continuation byte at byte 7\)"):
        load_profile(p)


def test_yaml_value_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"p\.yaml: not valid YAML: month must be in 1\.\.12"):
        load_profile(write(tmp_path, "name: x\nseed: 2001-13-45\n"))


def test_override_key_with_an_empty_part(tmp_path):
    with pytest.raises(ConfigError, match=r"override key 'data\.\.min_seq_len' is not a dotted key"):
        load_profile(CI_PROFILE, {"data..min_seq_len": 5})


def test_name_override_cannot_escape(tmp_path):
    with pytest.raises(ConfigError, match=r"ml100k-ci\.yaml: name must be a plain folder name .* got '\.\.'"):
        load_profile(CI_PROFILE, {"name": ".."})


def test_user_item_time_columns_must_differ():
    with pytest.raises(ConfigError, match=r"data\.user_col, data\.item_col and data\.time_col must be three "
                                          r"different columns"):
        profile_from_dict({"name": "x", "data": {"user_col": "id", "item_col": "id"}})


def test_a_mapping_where_a_list_is_expected_is_a_named_config_error(tmp_path):
    # found by tests/test_config_property.py: dacite raised a bare ValueError for {'': None}
    from agrec.config import profile_from_dict

    for raw in ({"name": "x", "data": {"text_cols": {"": None}}},
                {"name": "x", "evaluation": {"alpha_grid": {"a": 0.1}}}):
        key = "data.text_cols" if "data" in raw else "evaluation.alpha_grid"
        with pytest.raises(ConfigError, match=rf"key '{key}' expects a list, got a mapping"):
            profile_from_dict(raw)


def test_loading_a_profile_does_not_import_torch():
    # `agrec status`, `agrec data check` and the config reference load profiles; torch costs seconds to import
    code = (
        "import sys; from agrec.config import load_profile; "
        "[load_profile(p) for p in sys.argv[1:]]; "
        "import agrec.decode, agrec.decode.config; "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    profiles = sorted(str(p) for p in (ROOT / "configs").glob("*.yaml"))
    out = subprocess.run([sys.executable, "-c", code, *profiles], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_loading_a_profile_imports_configuration_only():
    # config parsing sits below the stages: it imports each stage's config module and nothing else of a stage
    # (agrec.decode.variants parses the profile's decode variants), and neither numpy nor pandas
    code = (
        "import sys, json; from agrec.config import load_profile; load_profile(sys.argv[1]); "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('agrec', 'numpy', 'pandas'))))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(CI_PROFILE)], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    stage_packages = ("data", "semantic_ids", "gnn", "baselines", "lm", "decode", "analysis")
    assert loaded == {"agrec", "agrec.canonical", "agrec.config", "agrec.devices", "agrec.errors",
                      "agrec.fingerprint", "agrec.io", "agrec.paths", "agrec.decode.variants",
                      *(f"agrec.{p}" for p in stage_packages), *(f"agrec.{p}.config" for p in stage_packages)}
