"""The configuration reference is generated from the dataclass fields' comments: every profile key is
documented, docs/config.md is what the generator writes, and every module has an API page."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agrec.canonical import canonical, neutral, runtime, runtime_paths
from agrec.config import Profile, profile_from_dict
from agrec.config_docs import DOC_PATH, collect, field_comments, main, render, undocumented

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class _Inner:
    """Inner section.

    Second paragraph, not shown."""

    # two lines
    # above the field
    depth: int = 3  # and a trailing one
    width: float = runtime(0.5)  # runtime width


@dataclass
class _Toy:
    """A toy section."""

    # -- a ruler, not documentation --
    plain: int = 1
    # a block above

    separated: str = "x"  # a blank line ends the block above
    flags: list[int] = field(default_factory=lambda: [1, 2])  # a list
    added: bool = neutral(False)  # added later
    inner: _Inner = field(default_factory=_Inner)
    hidden: str | None = field(default=None, metadata={"internal": True})  # not a YAML key


def test_field_comments_reads_blocks_above_and_trailing_comments():
    assert field_comments(_Toy) == {
        "plain": "",
        "separated": "a blank line ends the block above",
        "flags": "a list",
        "added": "added later",
        "inner": "",
        "hidden": "not a YAML key",
    }
    assert field_comments(_Inner) == {"depth": "two lines above the field; and a trailing one", "width": "runtime width"}


def test_collect_walks_sections_and_marks_keys():
    sections, keys = collect(_Toy)
    assert [(s.prefix, s.doc) for s in sections] == [("", "A toy section."), ("inner", "Inner section.")]
    got = [(k.key, k.type, k.default, k.marker) for k in keys]
    assert got == [
        ("plain", "int", "1", ""),
        ("separated", "str", '"x"', ""),
        ("flags", "list[int]", "[1, 2]", ""),
        ("added", "bool", "false", "neutral"),
        ("inner.depth", "int", "3", ""),
        ("inner.width", "float", "0.5", "runtime"),
    ]
    assert undocumented(keys) == ["plain"]


def test_every_profile_key_is_documented():
    missing = undocumented()
    assert not missing, f"profile keys without a comment beside their field: {missing}"


def test_reference_lists_every_yaml_key_of_the_profile_once():
    _, keys = collect()
    names = [k.key for k in keys]
    assert len(names) == len(set(names))

    def leaves(d: dict, prefix: str = "") -> list[str]:
        out = []
        for k, v in d.items():
            out += leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
        return out

    # the keys a default profile records (its canonical form: no internal fields, no neutral key at its
    # default) are the documented ones but the neutral keys
    recorded = leaves(canonical(Profile(name="x")))
    neutral_keys = {k.key for k in keys if k.marker == "neutral"}
    assert neutral_keys and not neutral_keys & set(recorded)
    assert sorted(recorded) == sorted(set(names) - neutral_keys)
    # every documented key can be set in a profile (a key the loader refuses would be documented in vain)
    assert {k.key for k in keys if k.marker == "runtime"} == set(runtime_paths(Profile))
    for k in keys:
        if k.key == "name":
            continue
        *parents, leaf = k.key.split(".")
        section: dict = {leaf: json.loads(k.default)}
        for part in reversed(parents):
            section = {part: section}
        assert profile_from_dict({"name": "x", **section}).to_dict() == Profile(name="x").to_dict(), k.key


def test_committed_reference_is_current():
    assert DOC_PATH.read_text(encoding="utf-8") == render() + "\n", "run: python -m agrec.config_docs"


def test_check_mode_fails_on_a_stale_reference(tmp_path, capsys):
    stale = tmp_path / "config.md"
    stale.write_text("# old\n", encoding="utf-8")
    assert main(["--check", "--out", str(stale)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert main(["--out", str(stale)]) == 0
    assert main(["--check", "--out", str(stale)]) == 0


def test_reference_renders_markers_and_escapes_pipes():
    text = render(*collect(_Toy))
    assert "| `inner.width` | `float` | `0.5` | runtime width (runtime) |" in text
    assert "| `added` | `bool` | `false` | added later (neutral) |" in text
    assert "| `hidden`" not in text


@pytest.mark.parametrize("key", ["lm.progress", "gnn.train.device", "lm.batching"])
def test_markers_of_real_keys(key):
    _, keys = collect()
    k = next(k for k in keys if k.key == key)
    assert k.marker == ("neutral" if key == "lm.batching" else "runtime")


def test_loaded_profile_and_reference_agree_on_defaults():
    # a profile that sets nothing but its name has the documented defaults
    p = profile_from_dict({"name": "x"})
    _, keys = collect()
    for k in keys:
        if k.default == "(required)":
            continue
        value = p
        for part in k.key.split("."):
            value = getattr(value, part)
        assert json.dumps(value) == k.default, k.key


def test_every_module_has_an_api_page():
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs" / "api").glob("*.md"))
    documented = set(re.findall(r"^::: (agrec[\w.]*)", pages, flags=re.M))
    modules = {
        "agrec." + ".".join(p.relative_to(ROOT / "agrec").with_suffix("").parts)
        for p in (ROOT / "agrec").rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    }
    assert sorted(modules - documented) == []
    assert sorted(documented - modules - {f"agrec.{p.name}" for p in (ROOT / "agrec").iterdir() if p.is_dir()}) == []
