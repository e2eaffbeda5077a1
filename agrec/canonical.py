"""The canonical (hashable) form of a configuration dataclass tree.

Every config hash (stage records, model keys, LM checkpoints) is taken over this form. It equals
:func:`dataclasses.asdict` except that a field declared with :func:`neutral` is left out while it holds its
default. That is how an option is added to a stage after runs exist: when its default reproduces the old
behaviour exactly, runs recorded before the option existed stay current, and only a profile that sets it
to something else gets a new hash (and recomputes).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

NEUTRAL = "neutral"


def neutral(default: Any) -> Any:
    """A dataclass field whose default is the behaviour that existed before it was added (immutable
    defaults only): absent from :func:`canonical` while it holds that default."""
    return dataclasses.field(default=default, metadata={NEUTRAL: True})


def canonical(obj: Any) -> Any:
    """``dataclasses.asdict(obj)`` without the :func:`neutral` fields that hold their default; fields with
    ``metadata={"internal": True}`` are left out too. Non-dataclass values are returned as deep copies."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            if f.metadata.get("internal"):
                continue
            v = getattr(obj, f.name)
            if f.metadata.get(NEUTRAL) and f.default is not dataclasses.MISSING and v == f.default:
                continue
            out[f.name] = canonical(v)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(canonical(v) for v in obj)
    if isinstance(obj, dict):
        return {k: canonical(v) for k, v in obj.items()}
    return copy.deepcopy(obj)
