"""Decode variants: other ways of letting the graph steer the beam, each kept as an option with its own row.

The paper mixes the LM and the GNN's FSM with one global α (Eq. 4). Issue 12 asks what else makes graph
reasoning pay off on short Amazon sequences — per-level α, τ, top-n, an α gated by the LM's confidence — and
to keep every such variant as an option with its own table row. A profile lists them under
``evaluation.decode_variants`` (name -> settings)::

    evaluation:
      decode_variants:
        entropy gate: {alpha_gate: entropy}
        top-n 50: {top_n: 50}
        level-0 alpha: {alpha_grid: [[0.2, 0], [0.4, 0], [0.7, 0], [1.0, 0]]}

A variant's settings override :class:`~agrec.decode.config.DecodeConfig` fields (those in
:data:`VARIANT_KEYS`); ``alpha_grid`` (numbers, or per-level lists whose last entry repeats for deeper
levels) and ``tau_grid`` default to ``evaluation.alpha_grid`` / ``evaluation.tau_grid``. Its α (and τ) is
chosen on the validation item exactly like the main row's (same users, same metric; ties go to the earlier grid
point), and only the chosen point is decoded on test: the row ``AGRec [<name>]``. A fixed ``alpha`` is refused
— it would be a choice made without validation.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agrec.decode.config import DecodeConfig, EvalConfig
from agrec.errors import ConfigError

if TYPE_CHECKING:  # pandas is imported where a frame is built: loading a profile stays light
    import pandas as pd


def slug(name: str) -> str:
    """File-name form of a row name: ``AGRec (lightgcn)`` -> ``agrec_lightgcn`` (the rankings file of a row)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


# DecodeConfig fields a variant may set; beam_size (the ranking depth of every row), batch_size and kv (no
# effect on the result) stay the profile's.
VARIANT_KEYS: tuple[str, ...] = ("top_n", "tau", "agg", "mix", "state", "floor", "renormalize", "alpha_gate")
# Fields that only matter where the FSM is used: with α = 0 on every level such a variant decodes exactly
# like "w/o Graph", which is then reused instead of decoded again.
GRAPH_ONLY_KEYS: frozenset[str] = frozenset({"top_n", "tau", "agg", "mix", "state", "alpha_gate"})
GRID_KEYS: tuple[str, ...] = ("alpha_grid", "tau_grid")


@dataclass(frozen=True)
class DecodeVariant:
    """One parsed entry of ``evaluation.decode_variants``.

    Attributes:
        name: the user's name; the table row is :attr:`row`.
        settings: DecodeConfig overrides (keys of :data:`VARIANT_KEYS` except ``tau``).
        alpha_grid: the α candidates, each a number or a per-level list.
        tau_grid: the τ candidates.
    """

    name: str
    settings: dict[str, Any]
    alpha_grid: tuple[float | tuple[float, ...], ...]
    tau_grid: tuple[float, ...]

    @property
    def row(self) -> str:
        return variant_row(self.name)

    def points(self) -> list[tuple[float | list[float], float]]:
        """The ``(alpha, tau)`` grid in choice order (τ outer, α inner, as the main curve)."""
        return [(list(a) if isinstance(a, tuple) else a, t) for t in self.tau_grid for a in self.alpha_grid]

    def is_plain(self, alpha: float | list[float]) -> bool:
        """Whether the point decodes exactly like ``w/o Graph`` (α = 0 everywhere, only graph settings changed)."""
        zero = all(a == 0 for a in alpha) if isinstance(alpha, list) else alpha == 0
        return zero and set(self.settings) <= GRAPH_ONLY_KEYS


def variant_row(name: str) -> str:
    """The table row of a decode variant: ``AGRec [<name>]`` (:mod:`agrec.analysis.table2` picks such rows up)."""
    return f"AGRec [{name}]"


def alpha_label(alpha: float | list[float]) -> str:
    """``0.2`` or ``[0.2,0]``: how a grid point is named in row names and logs."""
    if isinstance(alpha, (list, tuple)):
        return "[" + ",".join(f"{a:g}" for a in alpha) + "]"
    return f"{alpha:g}"


def parse_variants(ev: EvalConfig, decode: DecodeConfig) -> list[DecodeVariant]:
    """``evaluation.decode_variants`` checked against ``decode`` (every grid point must be a valid
    DecodeConfig); raises :class:`ConfigError` naming the variant and key."""
    raw = ev.decode_variants
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise ConfigError(f"evaluation.decode_variants must map a name to its settings, got {raw!r}")
    out: list[DecodeVariant] = []
    slugs: dict[str, str] = {}

    for name, spec in raw.items():
        where = f"evaluation.decode_variants.{name}"
        if not isinstance(name, str) or not name.strip() or any(c in name for c in "[]\n"):
            raise ConfigError(
                f"evaluation.decode_variants: a name must be a non-empty string without '[', ']' or "
                f"newlines, got {name!r}"
            )
        s = slug(variant_row(name))
        if s in slugs:
            raise ConfigError(f"{where}: its rankings file name {s!r} equals that of variant {slugs[s]!r}; rename one")
        slugs[s] = name
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise ConfigError(f"{where} must be a mapping of decode settings, got {spec!r}")
        if "alpha" in spec:
            raise ConfigError(
                f"{where}.alpha: a variant's α is chosen on validation; give alpha_grid (numbers or "
                f"per-level lists) instead"
            )
        unknown = sorted(set(spec) - set(VARIANT_KEYS) - set(GRID_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; a variant may set {list(VARIANT_KEYS + GRID_KEYS)}")
        if "tau" in spec and "tau_grid" in spec:
            raise ConfigError(f"{where}: give tau or tau_grid, not both")
        settings = {k: v for k, v in spec.items() if k in VARIANT_KEYS and k != "tau"}
        alpha_grid = _alpha_grid(spec.get("alpha_grid", ev.alpha_grid), f"{where}.alpha_grid")
        tau_raw = [spec["tau"]] if "tau" in spec else spec.get("tau_grid", ev.tau_grid)
        tau_grid = _tau_grid(tau_raw, f"{where}.tau_grid" if "tau_grid" in spec else f"{where}.tau")
        if "top_n" in settings and (isinstance(settings["top_n"], bool) or not isinstance(settings["top_n"], int)):
            raise ConfigError(f"{where}.top_n must be an integer, got {settings['top_n']!r}")
        if "renormalize" in settings and not isinstance(settings["renormalize"], bool):
            raise ConfigError(f"{where}.renormalize must be true or false, got {settings['renormalize']!r}")
        if "floor" in settings:
            _number(settings["floor"], f"{where}.floor")
        variant = DecodeVariant(name=name, settings=settings, alpha_grid=alpha_grid, tau_grid=tau_grid)
        for alpha, tau in variant.points():
            try:
                dataclasses.replace(decode, alpha=alpha, tau=tau, **settings)
            except ConfigError as e:
                raise ConfigError(f"{where} (α={alpha_label(alpha)}, τ={tau:g}): {e}") from None
            except TypeError as e:  # a wrong type dataclasses cannot compare (e.g. top_n: "ten")
                raise ConfigError(f"{where}: {e}") from None
        out.append(variant)
    return out


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        raise ConfigError(f"{where}: expected a number, got {v!r}")
    return float(v)


def _alpha_grid(raw: Any, where: str) -> tuple[float | tuple[float, ...], ...]:
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"{where} must be a non-empty list of α values (numbers or per-level lists), got {raw!r}")
    grid: list[float | tuple[float, ...]] = []
    for i, a in enumerate(raw):
        if isinstance(a, (list, tuple)):
            if not a:
                raise ConfigError(f"{where}[{i}]: an empty per-level list")
            grid.append(tuple(_number(x, f"{where}[{i}]") for x in a))
        else:
            grid.append(_number(a, f"{where}[{i}]"))
    if len(set(grid)) != len(grid):
        raise ConfigError(f"{where} lists a point twice: {raw!r}")
    return tuple(grid)


def _tau_grid(raw: Any, where: str) -> tuple[float, ...]:
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"{where} must be a non-empty list of positive numbers, got {raw!r}")
    grid = tuple(_number(t, where) for t in raw)
    if len(set(grid)) != len(grid):
        raise ConfigError(f"{where} lists a value twice: {raw!r}")
    return grid


def choose_point(curve: list[dict[str, Any]], metric: str) -> int:
    """Index of the best validation ``metric`` in a variant's curve; ties go to the earlier point (the grid
    is written simplest first), so the choice is deterministic."""
    if not curve:
        raise ValueError("empty variant grid")
    return max(range(len(curve)), key=lambda i: (curve[i]["valid"][metric], -i))


def variant_curves(records: dict[str, dict[str, Any]], metric: str) -> "pd.DataFrame":
    """The decode variants' grids (a decode report's ``variants``) as one frame: variant, alpha (label), tau,
    validation ``metric``, and whether the point was chosen."""
    import pandas as pd

    recs = [
        {
            "variant": name,
            "alpha": alpha_label(p["alpha"]),
            "tau": p["tau"],
            f"valid {metric}": p["valid"][metric],
            "chosen": p["alpha"] == r["chosen"]["alpha"] and p["tau"] == r["chosen"]["tau"],
        }
        for name, r in records.items()
        for p in r["curve"]
    ]
    return pd.DataFrame(recs, columns=["variant", "alpha", "tau", f"valid {metric}", "chosen"])
