"""The canonical (recorded) and keyed (hashed) forms of a configuration dataclass tree: the one cache-key policy.

Two field markers say how a config key enters the keys that decide whether a cached stage is current:

* :func:`neutral` — an option added after runs existed, whose default reproduces the old behaviour exactly.
  While it holds that default it is left out of both forms, so runs recorded before the option existed stay
  current; a profile that sets it to anything else gets a new key (and recomputes).
* :func:`runtime` — a key that never changes a result: progress bars, logging cadence, checkpoint
  bookkeeping, caches and output locations, evaluation batch sizes, and the starting values of interactive
  widgets. It is recorded (:func:`canonical` keeps it: a record says how the run was made) but never hashed
  (:func:`keyed` drops it), so toggling it never recomputes a stage.

Every other field is part of the key. Every key in the project is :func:`agrec.fingerprint.short_hash` of a
:func:`keyed` form (see ``docs/design.md``, "Run directory and cache keys").
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

NEUTRAL = "neutral"
RUNTIME = "runtime"


def neutral(default: Any) -> Any:
    """A dataclass field whose default is the behaviour that existed before it was added (immutable
    defaults only): absent from :func:`canonical` and :func:`keyed` while it holds that default."""
    return dataclasses.field(default=default, metadata={NEUTRAL: True})


def runtime(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that never changes what a stage computes: recorded, never part of a cache key."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={RUNTIME: True})


def is_runtime(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get(RUNTIME))


def _form(obj: Any, keyed_form: bool) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            if f.metadata.get("internal") or (keyed_form and is_runtime(f)):
                continue
            v = getattr(obj, f.name)
            if f.metadata.get(NEUTRAL) and f.default is not dataclasses.MISSING and v == f.default:
                continue
            out[f.name] = _form(v, keyed_form)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_form(v, keyed_form) for v in obj)
    if isinstance(obj, dict):
        return {k: _form(v, keyed_form) for k, v in obj.items()}
    return copy.deepcopy(obj)


def canonical(obj: Any) -> Any:
    """``dataclasses.asdict(obj)`` without the :func:`neutral` fields that hold their default; fields with
    ``metadata={"internal": True}`` are left out too. Non-dataclass values are returned as deep copies.
    This is the form a stage records as its config."""
    return _form(obj, keyed_form=False)


def keyed(obj: Any) -> Any:
    """:func:`canonical` without the :func:`runtime` fields: the form every cache key is a hash of."""
    return _form(obj, keyed_form=True)


def runtime_paths(cls: type, prefix: str = "") -> list[str]:
    """The dotted names of every :func:`runtime` field below the dataclass ``cls`` (e.g. ``lm.progress``)."""
    out: list[str] = []
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        if is_runtime(f):
            out.append(name)
        sub = field_dataclass(f)
        if sub is not None:
            out.extend(runtime_paths(sub, name + "."))
    return out


def keyed_record(cls: type, data: Any) -> Any:
    """A recorded config mapping (the :func:`canonical` form of an instance of ``cls``) without the
    :func:`runtime` keys: what to compare a record's config with :func:`keyed` of the current one."""
    if not isinstance(data, dict) or not dataclasses.is_dataclass(cls):
        return data
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for k, v in data.items():
        f = fields.get(k)
        if f is not None and is_runtime(f):
            continue
        sub = field_dataclass(f) if f is not None else None
        out[k] = keyed_record(sub, v) if sub is not None else v
    return out


def field_dataclass(f: dataclasses.Field) -> type | None:
    """The dataclass a field holds (its default factory's product), else None."""
    if f.default_factory is not dataclasses.MISSING:
        try:
            value = f.default_factory()
        except TypeError:
            return None
        return type(value) if dataclasses.is_dataclass(value) else None
    return None
