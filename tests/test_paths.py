from pathlib import Path

import pytest

from agrec.config import profile_from_dict
from agrec.errors import ConfigError
from agrec.paths import check_name, check_path, is_under, safe_component, safe_join


@pytest.mark.parametrize("value, message", [
    ("..", r"name must be a plain folder name \(not '\.', '\.\.'"),
    (".", r"name must be a plain folder name"),
    ("", r"name must be a non-empty name, got ''"),
    ("a/b", r"name must be a single folder name without '/'"),
    ("/tmp/x", r"name must be a single folder name without '/'"),
    ("a\\b", r"name must be a single folder name without '/' or '\\'"),
    ("a\0b", r"name contains the control character '\\x00'"),
    ("a\nb", r"name contains the control character '\\n'"),
    ("a\u2028b", r"name contains the control character '\\u2028'"),
    (" x", r"no leading or trailing blanks"),
    ("x" * 201, r"name is too long for a folder name \(201 bytes, at most 200\)"),
])
def test_check_name_refuses_and_names_the_key(value, message):
    with pytest.raises(ConfigError, match=message):
        check_name(value, "name")


@pytest.mark.parametrize("value", ["ml-100k", "Instruments", "a.b", "x..y", "ünï", "..x", "a b"])
def test_check_name_accepts_plain_names(value):
    assert check_name(value, "name") == value


def test_check_path_allows_absolute_and_relative_roots_but_not_control_characters():
    assert check_path("/abs/runs", "pipeline.runs_dir") == "/abs/runs"
    assert check_path("../runs", "pipeline.runs_dir") == "../runs"
    with pytest.raises(ConfigError, match=r"pipeline\.runs_dir contains the control character '\\x00'"):
        check_path("r\0", "pipeline.runs_dir")
    with pytest.raises(ConfigError, match=r"pipeline\.runs_dir must be a non-empty path, got ''"):
        check_path("", "pipeline.runs_dir")


def test_safe_component_keeps_readable_names_and_encodes_the_rest():
    assert safe_component("decode.top_n=10,decode.beam_size=20") == "decode.top_n=10,decode.beam_size=20"
    enc = safe_component("k=../../x")
    assert enc.startswith("k=.._.._x-") and len(enc) == len("k=.._.._x-") + 8
    assert safe_component("../a") != safe_component(".._a")      # distinct texts, distinct folders
    assert safe_component("..").startswith("_..-")               # never '..' or a hidden folder
    assert safe_component(".hidden").startswith("_.hidden-")
    assert len(safe_component("x" * 500)) == 80 + 9
    for text in ["../..", "/", "a\0b", "\n", "", "..", ".", "a/../../b"]:
        name = safe_component(text)
        check_name(name, "point")  # every encoding is a valid single component


def test_safe_join_stays_under_root(tmp_path):
    assert safe_join(tmp_path, "a", "b", key="name") == tmp_path / "a" / "b"
    with pytest.raises(ConfigError, match=r"data\.dataset must be a plain folder name"):
        safe_join(tmp_path, "..", key="data.dataset")
    with pytest.raises(ConfigError, match=r"sweep must be a single folder name"):
        safe_join(tmp_path, "a/../..", key="sweep")
    assert is_under(tmp_path / "a" / ".." / "b", tmp_path) and not is_under(tmp_path / ".." / "b", tmp_path)


def test_profile_paths_are_under_their_roots(tmp_path):
    prof = profile_from_dict({"name": "p", "data": {"dataset": "d"},
                              "pipeline": {"runs_dir": str(tmp_path / "runs"), "reports_dir": "rel"}})
    assert prof.run_dir == tmp_path / "runs" / "d" / "p"
    assert prof.report_dir == Path.cwd().resolve() / "rel" / "d" / "p"


@pytest.mark.parametrize("raw, key", [
    ({"name": ".."}, "name"),
    ({"name": "x", "data": {"dataset": ".."}}, "data.dataset"),
    ({"name": "x", "data": {"dataset": "../../etc"}}, "data.dataset"),
    ({"name": "x", "data": {"dataset": "a\x1bb"}}, "data.dataset"),
    ({"name": "x", "pipeline": {"reports_dir": "r\0"}}, "pipeline.reports_dir"),
    ({"name": "x", "pipeline": {"runs_dir": ""}}, "pipeline.runs_dir"),
    ({"name": "x", "data": {"path": "d\x01"}}, "data.path"),
    ({"name": "x", "semantic_ids": {"embedding_cache": "c\0"}}, "semantic_ids.embedding_cache"),
])
def test_profile_refuses_names_that_leave_the_roots(raw, key):
    with pytest.raises(ConfigError, match="^" + key.replace(".", r"\.") + " "):
        profile_from_dict(raw)
