"""Property tests of the profile loader: random YAML profiles and random ``--set`` strings.

Every example gives a :class:`Profile` whose run and report folders lie under their roots, or an
:class:`AgrecError` subclass — never another exception — and loading writes nothing.
"""
import dataclasses
import os
import tempfile
import typing
from pathlib import Path

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agrec.run.launch import parse_sets
from agrec.config import Profile, load_profile
from agrec.errors import AgrecError
from agrec.paths import is_under

from conftest import CI_PROFILE

SETTINGS = settings(max_examples=int(os.environ.get("AGREC_PROPERTY_EXAMPLES", 150)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow], database=None)


def dotted_keys(cls: type, prefix: str = "") -> list[str]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        key = prefix + f.name
        out.append(key)
        if dataclasses.is_dataclass(hints[f.name]):
            out.extend(dotted_keys(hints[f.name], key + "."))
    return out


KEYS = dotted_keys(Profile)
NAMES = ["x", "..", ".", "/abs", "a/b", "a\\b", "a\0b", "a\nb", " x", "", "ok-name", "ünï", "n" * 250]
scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(), st.sampled_from(NAMES),
                   st.text(max_size=8))
value = st.recursive(scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                     max_leaves=6)


def load_and_check(path: Path, overrides: dict | None = None) -> None:
    cwd_before = sorted(os.listdir("."))
    folder_before = sorted(os.listdir(path.parent))
    try:
        prof = load_profile(path, overrides)
    except AgrecError as e:
        event(f"refused: {type(e).__name__}")
    else:
        event("loaded")
        assert is_under(prof.run_dir, prof._resolve(prof.pipeline.runs_dir))
        assert is_under(prof.report_dir, prof.reports_root)
        assert prof.run_dir.name == prof.name and prof.run_dir.parent.name == prof.data.dataset
    assert sorted(os.listdir(path.parent)) == folder_before and sorted(os.listdir(".")) == cwd_before


def nest(flat: dict[str, object]) -> dict:
    raw: dict = {}
    for dotted, v in flat.items():
        node = raw
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node[last] = v
    return raw


@SETTINGS
@given(flat=st.one_of(st.just({}), st.dictionaries(st.sampled_from(["seed", "data.min_seq_len", "data.dataset"]),
                                                 st.one_of(st.integers(0, 9), st.sampled_from(NAMES)), max_size=2),
                     st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), value, max_size=6)),
       name=st.one_of(st.sampled_from(NAMES), st.text(max_size=6)), text_damage=st.integers(0, 5), data=st.data())
def test_random_profiles(flat, name, text_damage, data):
    raw = nest(flat)
    raw.setdefault("name", name)
    text = yaml.safe_dump(raw, allow_unicode=True)
    if text_damage == 0:  # a random edit of the text: duplicate a line, cut it, insert characters
        lines = text.splitlines()
        i = data.draw(st.integers(0, len(lines) - 1))
        how = data.draw(st.sampled_from(["dup", "cut", "insert"]))
        if how == "dup":
            lines.insert(i, lines[i])
        elif how == "cut":
            lines[i] = lines[i][:data.draw(st.integers(0, len(lines[i])))]
        else:
            lines[i] = lines[i] + data.draw(st.text(max_size=4))
        text = "\n".join(lines) + "\n"
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "cfg").mkdir()
        path = Path(d) / "cfg" / "p.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        load_and_check(path)


set_item = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["seed", "name", "data.dataset", "data.min_seq_len"]),
              st.one_of(st.sampled_from(NAMES + ["5", "true", ".nan", "[1", "'x"]), st.integers(0, 9).map(str))),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), st.one_of(st.sampled_from(NAMES), st.text(max_size=8))),
    st.text(max_size=12),
)


@SETTINGS
@given(items=st.lists(set_item, max_size=4))
def test_random_set_strings(items):
    try:
        overrides = parse_sets(items)
    except AgrecError as e:
        event(f"refused by --set parsing: {type(e).__name__}")
        return
    with tempfile.TemporaryDirectory() as d:
        # a copy of the CI profile whose roots are inside the temporary folder
        (Path(d) / "cfg").mkdir()
        path = Path(d) / "cfg" / "ci.yaml"
        path.write_text(CI_PROFILE.read_text())
        load_and_check(path, overrides)
