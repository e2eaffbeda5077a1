from pathlib import Path

import pytest

from agrec.config import load_profile, profile_from_dict
from agrec.errors import ConfigError

from conftest import CI_PROFILE, ROOT


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


def test_shipped_profiles_load():
    for p in sorted((ROOT / "configs").glob("*.yaml")):
        prof = load_profile(p)
        assert prof.name and prof.seed is not None


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
