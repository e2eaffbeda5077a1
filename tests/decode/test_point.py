"""agrec.decode.point: a row's decode point from the grids to results.json and back."""

import dataclasses
import json

import pytest

from agrec.decode.config import DecodeConfig
from agrec.decode.point import DecodePoint
from agrec.errors import AgrecError


def test_a_point_is_the_profile_config_at_its_alpha_tau_and_overrides():
    base = DecodeConfig(top_n=10, beam_size=20, agg="sum", mix="prob")
    p = DecodePoint.of(0.3, 2.0, "sasrec", top_n=30, mix="logit")
    assert p.config(base) == dataclasses.replace(base, alpha=0.3, tau=2.0, top_n=30, mix="logit")
    assert p.scorer == "sasrec" and p.overrides == (("mix", "logit"), ("top_n", 30))   # sorted by field
    # α = 0 everywhere builds no FSM, so the point names no scorer; a per-level α with one level > 0 does
    assert DecodePoint.of(0.0, 1.0, "lightgcn").scorer is None
    assert DecodePoint.of([0.0, 0.0], 1.0, "lightgcn").scorer is None
    lv = DecodePoint.of([0.4, 0.0], 1.0, "lightgcn")
    assert lv.scorer == "lightgcn" and lv.alpha == (0.4, 0.0) and lv.config(base).alpha == [0.4, 0.0]


def test_json_round_trip_keeps_every_field():
    points = [
        DecodePoint(),
        DecodePoint.of(0.2, 1.0, "lightgcn"),
        DecodePoint.of([0.4, 0.0, 0.1], 0.5, "lightgcn", state="last_token", agg="max"),
        DecodePoint.of(0.6, 1.0, "lightgcn+sasrec").with_(fused=("lightgcn", "sasrec"), weight=0.25),
        DecodePoint.of(0.6, 1.0, "lightgcn+sasrec@0.25").with_(source="AGRec (lightgcn+sasrec)"),
    ]
    for p in points:
        d = json.loads(json.dumps(p.to_json()))
        assert DecodePoint.from_json(d) == p
        assert DecodePoint.from_json(d).to_json() == d
    assert points[2].to_json() == {"scorer": "lightgcn", "alpha": [0.4, 0.0, 0.1], "tau": 0.5, "agg": "max",
                                   "state": "last_token"}
    assert points[3].to_json() == {"scorer": "lightgcn+sasrec", "alpha": 0.6, "tau": 1.0,
                                   "fused": ["lightgcn", "sasrec"], "weight": 0.25}


def test_with_merges_overrides_and_keeps_the_rest():
    p = DecodePoint.of(0.2, 1.0, "lightgcn", top_n=30)
    q = p.with_(alpha=0.5, overrides={"state": "last_token"})
    assert q.alpha == 0.5 and q.scorer == "lightgcn" and dict(q.overrides) == {"top_n": 30, "state": "last_token"}
    assert p.alpha == 0.2 and dict(p.overrides) == {"top_n": 30}       # immutable


def test_older_rows_and_bad_points():
    # the LM-alone row of results written before points carried τ
    assert DecodePoint.from_json({"scorer": None, "alpha": 0.0}) == DecodePoint(alpha=0.0, tau=1.0)
    for d, message in [
        ([0.2], r"row 'x': a decode point is an object, got list"),
        ({"alpha": 1.5}, r"row 'x'.alpha: a number in \[0, 1\]"),
        ({"alpha": []}, r"row 'x'.alpha: a number in \[0, 1\] or a non-empty list"),
        ({"alpha": True}, r"row 'x'.alpha"),
        ({"alpha": 0.2, "tau": 0}, r"row 'x'.tau: a positive number, got 0"),
        ({"alpha": 0.2, "scorer": 3}, r"row 'x'.scorer: a name or null, got 3"),
        ({"alpha": 0.2, "beams": 3}, r"row 'x': \['beams'\] are not decode settings"),
        ({"alpha": 0.2, "kv": "expand"}, r"row 'x': \['kv'\] are settings of the whole decoding pass"),
    ]:
        with pytest.raises(AgrecError, match=message):
            DecodePoint.from_json(d, "row 'x'")
    with pytest.raises(AgrecError, match=r"\['colour'\] are not decode settings"):
        DecodePoint(overrides=(("colour", 1),))
    # a row cannot change what every row of its pass shares: the pass would refuse to run
    for key, value in (("batch_size", 8), ("kv", "expand"), ("share_prefixes", True), ("device", "cuda")):
        with pytest.raises(AgrecError, match=rf"\['{key}'\] are settings of the whole decoding pass"):
            DecodePoint.of(0.2, 1.0, "lightgcn", **{key: value})
    assert DecodePoint.of(0.2, 1.0, "lightgcn", top_n=30).config(DecodeConfig()).top_n == 30
