"""agrec.canonical: the form every config hash is taken over."""

import dataclasses
from dataclasses import dataclass, field

from agrec.canonical import canonical, neutral
from agrec.config import load_profile
from agrec.run.lineage import config_key


@dataclass
class Inner:
    a: int = 1
    new: str = neutral("old")


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    xs: list = field(default_factory=lambda: [1, 2])
    hidden: str = field(default="h", metadata={"internal": True})


def test_equals_asdict_without_neutral_defaults():
    o = Outer()
    full = dataclasses.asdict(o)
    assert canonical(o) == {"inner": {"a": 1}, "xs": [1, 2]}
    assert full["inner"]["new"] == "old"
    o.inner.new = "changed"
    assert canonical(o) == {"inner": {"a": 1, "new": "changed"}, "xs": [1, 2]}


def test_copies_values():
    o = Outer()
    c = canonical(o)
    c["xs"].append(3)
    assert o.xs == [1, 2]


def test_profile_hash_ignores_a_neutral_option_at_its_default(tmp_path, monkeypatch):
    # A neutral field added to a stage config keeps every recorded hash; setting it changes the hash.
    from agrec.lm import config as lm_config

    p = load_profile("configs/ml100k-ci.yaml")
    before = {s: config_key(p, s) for s in ("lm", "decode")}
    fields = [(f.name, f.type, f) for f in dataclasses.fields(lm_config.LMConfig)]
    Extended = dataclasses.make_dataclass("LMConfigX", [*fields, ("extra_option", str, neutral("off"))])
    p.lm = Extended(**{f.name: getattr(p.lm, f.name) for f in dataclasses.fields(lm_config.LMConfig)})
    assert {s: config_key(p, s) for s in ("lm", "decode")} == before
    p.lm.extra_option = "on"
    after = {s: config_key(p, s) for s in ("lm", "decode")}
    assert after["lm"] != before["lm"] and after["decode"] != before["decode"]
