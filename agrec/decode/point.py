"""Where one table row is decoded: a typed point from the profile's grids to ``results.json`` and back.

A :class:`DecodePoint` holds the mixing weight α (one number, or one per code level for a per-level decode
variant), the temperature τ, the scorer whose FSM steers the beam search (None: the LM alone), and the other
:class:`~agrec.decode.config.DecodeConfig` fields the row changes (a decode variant's settings, the released
code's ``mix``/``state``/``agg``). A table row may also say where its point came from: the two scorers and the
weight of a fused scorer, or the AGRec row a selected configuration was taken from.

The decode stage builds every row from one (:meth:`agrec.decode.evaluate.Evaluator.new_row`), decodes with
:meth:`DecodePoint.config`, records :meth:`DecodePoint.to_json` as the row's ``settings`` and reads it back with
:meth:`DecodePoint.from_json` (the analysis stage rebuilds the chosen decoder from it).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from agrec.decode.config import DecodeConfig
from agrec.errors import AgrecError

# DecodeConfig fields of a whole decoding pass, not of one row: every row of a pass shares its batches (batch_size),
# its KV cache (kv, share_prefixes) and its device, so a row cannot change them (the pass would refuse to run)
PASS_KEYS = frozenset({"batch_size", "kv", "share_prefixes", "device"})
# DecodeConfig fields a point may override besides alpha and tau (everything a row can change)
OVERRIDABLE = frozenset(f.name for f in dataclasses.fields(DecodeConfig)) - {"alpha", "tau"} - PASS_KEYS
# what a table row records about its origin, beside the decoding settings
ORIGIN_KEYS = ("fused", "weight", "source")


@dataclass(frozen=True)
class DecodePoint:
    """One row's decoding settings (see the module docstring). Immutable: derive others with :meth:`with_`."""

    alpha: float | tuple[float, ...] = 0.0
    tau: float = 1.0
    scorer: str | None = None  # the rankings that steer the FSM; None with α = 0 (the LM alone)
    overrides: tuple[tuple[str, Any], ...] = ()  # (DecodeConfig field, value), sorted by field
    fused: tuple[str, ...] | None = None  # a fused scorer's two parts
    weight: float | None = None  # a fused scorer's weight of its first part
    source: str | None = None  # the AGRec row a selected configuration comes from

    def __post_init__(self) -> None:
        if isinstance(self.alpha, list):
            object.__setattr__(self, "alpha", tuple(float(a) for a in self.alpha))
        _check_overrides([k for k, _ in self.overrides], "decode point")
        object.__setattr__(self, "overrides", tuple(sorted(dict(self.overrides).items())))

    @classmethod
    def of(cls, alpha: float | list[float] | tuple[float, ...], tau: float, scorer: str | None, **overrides: Any):
        """A point at ``alpha``/``tau`` steered by ``scorer`` with DecodeConfig ``overrides``; the scorer is
        dropped where α is 0 everywhere (no FSM is built there)."""
        alphas = alpha if isinstance(alpha, (list, tuple)) else (alpha,)
        steer = scorer if any(a > 0 for a in alphas) else None
        return cls(
            alpha=tuple(alpha) if isinstance(alpha, list) else alpha,
            tau=tau,
            scorer=steer,
            overrides=tuple(overrides.items()),
        )

    @property
    def settings(self) -> dict[str, Any]:
        """The DecodeConfig fields this point sets (α, τ and the overrides)."""
        alpha = list(self.alpha) if isinstance(self.alpha, tuple) else self.alpha
        return {"alpha": alpha, "tau": self.tau, **dict(self.overrides)}

    def config(self, base: DecodeConfig) -> DecodeConfig:
        """``base`` (the profile's decoding settings) with this point's α, τ and overrides."""
        return dataclasses.replace(base, **self.settings)

    def with_(self, **changes: Any) -> DecodePoint:
        """This point with some fields changed (``overrides`` given as a dict are merged into this point's)."""
        if isinstance(changes.get("overrides"), dict):
            changes["overrides"] = tuple({**dict(self.overrides), **changes["overrides"]}.items())
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The row's ``settings`` in ``results.json``: ``scorer``, ``alpha`` (a list per level), ``tau``, the
        overrides, and ``fused``/``weight``/``source`` where set."""
        out: dict[str, Any] = {"scorer": self.scorer, **self.settings}
        if self.fused is not None:
            out["fused"] = list(self.fused)
        if self.weight is not None:
            out["weight"] = self.weight
        if self.source is not None:
            out["source"] = self.source
        return out

    @classmethod
    def from_json(cls, d: Any, where: str = "settings") -> DecodePoint:
        """The point :meth:`to_json` wrote (``where`` names it in errors). A row recorded before points carried
        τ (the LM-alone row of older results) reads as τ = 1."""
        if not isinstance(d, dict):
            raise AgrecError(f"{where}: a decode point is an object, got {type(d).__name__}")
        alpha = d.get("alpha", 0.0)
        alphas = alpha if isinstance(alpha, list) else [alpha]
        if not alphas or not all(_is_number(a) and 0 <= a <= 1 for a in alphas):
            raise AgrecError(f"{where}.alpha: a number in [0, 1] or a non-empty list of them, got {alpha!r}")
        tau = d.get("tau", 1.0)
        if not _is_number(tau) or tau <= 0:
            raise AgrecError(f"{where}.tau: a positive number, got {tau!r}")
        scorer = d.get("scorer")
        if scorer is not None and not isinstance(scorer, str):
            raise AgrecError(f"{where}.scorer: a name or null, got {scorer!r}")
        rest = {k: v for k, v in d.items() if k not in ("alpha", "tau", "scorer", *ORIGIN_KEYS)}
        _check_overrides(list(rest), where)
        fused = d.get("fused")
        return cls(
            alpha=tuple(float(a) for a in alpha) if isinstance(alpha, list) else float(alpha),
            tau=float(tau),
            scorer=scorer,
            overrides=tuple(rest.items()),
            fused=tuple(fused) if fused is not None else None,
            weight=d.get("weight"),
            source=d.get("source"),
        )


def _check_overrides(keys: list[str], where: str) -> None:
    """Refuse keys a row cannot set: settings of the whole pass (:data:`PASS_KEYS`), and anything that is not a
    :class:`~agrec.decode.config.DecodeConfig` field."""
    per_pass = sorted(k for k in keys if k in PASS_KEYS)
    if per_pass:
        raise AgrecError(
            f"{where}: {per_pass} are settings of the whole decoding pass (every row of a pass shares them), "
            f"not of one row; set them in the profile's decode section"
        )
    unknown = sorted(k for k in keys if k not in OVERRIDABLE)
    if unknown:
        raise AgrecError(f"{where}: {unknown} are not decode settings (known: {sorted(OVERRIDABLE)})")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
