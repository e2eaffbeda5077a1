"""Configuration of the GNN-steered, trie-constrained beam search (docs/design.md §3, §4.5)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from agrec.canonical import neutral
from agrec.devices import check_device
from agrec.errors import ConfigError
from agrec.gnn.config import GNN_MODELS

# Top-n scorers that can drive the FSM (agrec/scorers.py): the gnn stage's GNNs and SASRec (agrec/baselines).
# "lm": the LM's own item head (agrec/lm/item_scorer.py; needs lm.tiny.item_loss), built by the decode stage
SCORERS: tuple[str, ...] = (*GNN_MODELS, "sasrec", "lm")
# Keys of earlier versions, with the key that replaced them (profile loading names the new key).
DEFAULT_FUSION_WEIGHTS = (0.25, 0.5, 0.75)
RENAMED_KEYS: dict[str, str] = {
    "evaluation.gnn": "evaluation.scorer",
    "evaluation.compare_gnns": "evaluation.scorers",
    # α and τ are chosen per row on validation from these grids
    "decode.alpha": "evaluation.alpha_grid",
    "decode.tau": "evaluation.tau_grid",
}

# The paper's alpha per dataset (paper §5 / the authors' test.sh comment); MovieLens-100k is not in the paper,
# there alpha is chosen on validation.
PAPER_ALPHA: dict[str, float] = {"Instruments": 0.4, "Arts": 0.2, "Games": 0.7, "Yelp": 0.7}


@dataclass
class DecodeConfig:
    """How the decoder mixes the LM with the GNN's rankable FSM.

    ``alpha`` is Eq. 4's mixing weight: one number, or one per code level (level 0 = first code).
    ``mix="prob"`` is the paper (Eq. 4 on probabilities); ``mix="logit"`` is the authors' released code
    (WangXFng/AGRec ``model/modeling_trie.py``: ``(1-α)·z + α·g`` on the raw logits of the code tokens, then
    one softmax). ``state="prefix"`` keys FSM states by the whole generated prefix (paper); ``"last_token"``
    by the last generated code only, as the released code does (``LightGCN_embeddings.py`` keys ``logists`` by
    token). ``agg`` combines the weights of the top-n items that share a token: ``"sum"`` (the path product of
    p_G is then exactly the item's softmax weight) or ``"max"`` (released code).
    """

    # alpha and tau are set per row by the decode stage (each row's point of evaluation.alpha_grid x tau_grid,
    # chosen on validation) and by the explorers; they are not profile keys (a profile that sets decode.alpha
    # is told to use evaluation.alpha_grid), so they are in no cache key. Library callers set them directly.
    alpha: float | list[float] = field(
        default=0.4, metadata={"internal": True}
    )  # paper: 0.4 Instruments, see PAPER_ALPHA
    top_n: int = 10  # paper §4: n = 10 GNN items; released LightGCN_embeddings.py top_k = 10
    # temperature of w = softmax(top-n scores / tau); 1 = plain softmax
    tau: float = field(default=1.0, metadata={"internal": True})
    agg: Literal["sum", "max"] = "sum"  # p_G of a token from its top-n items: sum (paper) or max (released code)
    mix: Literal["prob", "logit"] = "prob"  # Eq. 4 on probabilities (paper) or on raw logits (released code)
    state: Literal["prefix", "last_token"] = "prefix"  # FSM state: the whole prefix (paper) or the last code
    floor: float = 1e-5  # paper: tokens outside the FSM state score 1e-5 (modeling_trie.py init)
    beam_size: int = 20  # paper / released test.sh --num_beams 20
    renormalize: bool = False  # False: p_LLM is masked, not renormalised (Hugging Face's behaviour)
    batch_size: int = 16  # users per forward pass
    kv: Literal["shared", "expand"] = "shared"  # prompt KV shared by all beams (tree mask) or copied per beam
    # Not in the paper (an option of this project, issue 20): when one pass decodes several rows (an α grid, a
    # table's rows), run every distinct prefix among all rows' beams through the LM once per step, instead of
    # once per row (agrec/decode/beam.py). The rankings are the same up to float rounding (the LM sees the
    # prefixes in differently shaped batches), so it is part of the stage's key; needs kv="shared".
    share_prefixes: bool = neutral(False)
    # Not in the paper (an option of this project, issue 12): "entropy" scales α per beam and step by the LM's
    # normalised entropy over the state's candidates, α·H/log(n): the graph weighs most where the LM is unsure,
    # not at all where it is certain. "none": the paper's one α.
    alpha_gate: Literal["none", "entropy"] = neutral("none")
    # Where the LM decodes: "cpu" (the default, and the behaviour before the option existed), "cuda" (under
    # torchrun: this process's GPU), "cuda:N", or "auto" (cuda when available). Part of the stage's key: GPU
    # kernels may order equal-probability beams differently.
    device: str = neutral("cpu")

    def __post_init__(self) -> None:
        alphas = self.alpha if isinstance(self.alpha, (list, tuple)) else [self.alpha]
        if isinstance(self.alpha, (list, tuple)):
            self.alpha = [float(a) for a in self.alpha]
            if not self.alpha:
                raise ConfigError("decode.alpha: an empty per-level list; give one number or one per level")
        for a in alphas:
            if not (0.0 <= float(a) <= 1.0) or math.isnan(float(a)):
                raise ConfigError(f"decode.alpha must be in [0, 1], got {self.alpha}")
        if self.top_n < 1:
            raise ConfigError(f"decode.top_n must be >= 1, got {self.top_n}")
        if not (self.tau > 0) or math.isinf(self.tau):
            raise ConfigError(f"decode.tau must be a positive number, got {self.tau}")
        for name, value, allowed in (
            ("agg", self.agg, ("sum", "max")),
            ("mix", self.mix, ("prob", "logit")),
            ("state", self.state, ("prefix", "last_token")),
            ("kv", self.kv, ("shared", "expand")),
            ("alpha_gate", self.alpha_gate, ("none", "entropy")),
        ):
            if value not in allowed:
                raise ConfigError(f"decode.{name} must be one of {list(allowed)}, got {value!r}")
        if not (0.0 < self.floor < 1.0):
            raise ConfigError(f"decode.floor must be in (0, 1), got {self.floor}")
        if self.beam_size < 1:
            raise ConfigError(f"decode.beam_size must be >= 1, got {self.beam_size}")
        if self.batch_size < 1:
            raise ConfigError(f"decode.batch_size must be >= 1, got {self.batch_size}")
        check_device(self.device, "decode.device")
        if self.share_prefixes and self.kv != "shared":
            raise ConfigError(
                "decode.share_prefixes runs the rows' common prefixes as extra queries of one tree-masked cache, so "
                f"it needs decode.kv='shared' (got {self.kv!r})"
            )
        if self.alpha_gate != "none" and self.mix != "prob":
            raise ConfigError(
                f"decode.alpha_gate={self.alpha_gate!r} scales Eq. 4's α, so it needs mix='prob' (got mix={self.mix!r})"
            )

    def alpha_at(self, level: int) -> float:
        """Alpha of code level ``level`` (the last entry of a per-level list repeats for deeper levels)."""
        if isinstance(self.alpha, list):
            return float(self.alpha[min(level, len(self.alpha) - 1)])
        return float(self.alpha)

    @property
    def uses_graph(self) -> bool:
        """Whether any level mixes in the GNN (alpha > 0); with alpha = 0 everywhere no FSM is needed."""
        alphas = self.alpha if isinstance(self.alpha, list) else [self.alpha]
        return any(a > 0 for a in alphas)


@dataclass
class EvalConfig:
    """How the decode stage evaluates AGRec and its ablations (docs/design.md §4.6, issue "the heart").

    α (and τ) are chosen on the validation item, by ``select_metric``; test numbers are computed for
    every grid point too (for the α curve) but never used to choose.

    At scale (issue 12, "Evaluation that scales") two options cut the decoding: ``select_users: N`` evaluates
    the validation item of a subsample of N of the evaluated users (drawn from the profile's seed; every
    row's validation metrics are then over that subsample, the test metrics over all evaluated users), and
    ``test_curve: false`` decodes the test item only where a table row needs it (``w/o Graph``, the chosen
    α, α = 1, the scorer and variant rows, and the whole grid of the selected row for its selection regret), so
    the α curve has test metrics only at those points.

    ``scorer`` is the top-n scorer (a GNN, ``sasrec`` or ``lm``, see :mod:`agrec.scorers`) of the main AGRec row
    and of the analysis; every name in ``scorers`` gets its own-ranking row (``GNN only (<gnn>)`` / ``SASRec only``
    / ``LM items only``) and
    an ``AGRec (<name>)`` row whose α/τ is chosen on validation from its own curve over ``alpha_grid`` x
    ``tau_grid``. The grid must hold 0 (the LM alone) and 1 (with ``decode.agg: sum``, the scorer alone on
    HR/NDCG@K for K <= top_n), so that no chosen row can be below either of its parts on validation. Of all
    AGRec rows (each scorer's and each decode variant's), the best on validation is ``AGRec (selected)``: the
    configuration the profile ships, reported with its selection regret on test. (``scorer`` and ``scorers``
    replace ``gnn`` and ``compare_gnns`` of earlier versions.)
    """

    # α candidates of every AGRec row (must hold 0 and 1; a decode variant may set its own); each row picks its
    # α on validation
    alpha_grid: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0])
    tau_grid: list[float] = field(default_factory=lambda: [1.0])  # τ candidates (top-n softmax temperature)
    # HR@K or NDCG@K, K in ks: the validation metric that chooses α, τ, fusion weights and the selected row
    select_metric: str = "NDCG@10"
    ks: list[int] = field(default_factory=lambda: [5, 10])  # cut-offs of HR@K / NDCG@K in every table
    scorer: str = "lightgcn"  # the scorer of the main AGRec row and of the α curve
    # rows per scorer: a GNN, "sasrec", or "lm" (the LM's own item head, needs lm.tiny.item_loss > 0)
    scorers: list[str] = field(default_factory=lambda: ["lightgcn", "sgl", "xsimgcl"])
    released_code_variants: bool = True  # rows with mix="logit" and state="last_token" at the main row's α
    exclude_history: bool = True  # False keeps history items (repeat consumption, e.g. Yelp)
    max_users: int | None = None  # evaluate the first N users only (CI); None = all
    # Issue 12 item 4; both defaults are the behaviour before they existed (every user, test on every point).
    select_users: int | None = neutral(None)  # validation on a seeded subsample of N evaluated users; None = all
    test_curve: bool = neutral(True)  # False: the test item is decoded only at the table's points
    # Issue 12 item 3: other ways of letting the graph steer (per-level α, τ, top-n, entropy gate ...), each with
    # its α chosen on validation and its own row "AGRec [<name>]" (agrec/decode/variants.py). None: none.
    decode_variants: dict[str, Any] | None = neutral(None)
    # Steering by two scorers at once (issue 20): one FSM from the mixture weight * p_A + (1 - weight) * p_B of
    # their top-n softmax distributions (agrec/decode/fusion.py), row "AGRec (<a>+<b>)", its weight chosen on
    # validation with its α/τ from fusion_weights (None: 0.25, 0.5, 0.75). None: no fused row (the behaviour
    # before it existed).
    fuse: list[str] | None = neutral(None)
    # candidate weights of fuse's first scorer: distinct numbers in (0, 1); None = 0.25, 0.5, 0.75
    fusion_weights: list[float] | None = neutral(None)

    def weights_of_fusion(self) -> list[float]:
        """The weights of the first fused scorer to choose from (``fusion_weights``, default 0.25, 0.5, 0.75)."""
        return list(DEFAULT_FUSION_WEIGHTS if self.fusion_weights is None else self.fusion_weights)

    def __post_init__(self) -> None:
        if not self.alpha_grid or any(not (0.0 <= a <= 1.0) for a in self.alpha_grid):
            raise ConfigError(
                f"evaluation.alpha_grid must be a non-empty list of values in [0, 1], got {self.alpha_grid}"
            )
        if 0.0 not in self.alpha_grid or 1.0 not in self.alpha_grid:
            raise ConfigError(
                f"evaluation.alpha_grid must hold 0 (the LM alone) and 1 (the scorer alone), so that "
                f"the α chosen on validation is never below either part there; got {self.alpha_grid}"
            )
        if not self.tau_grid or any(not (t > 0) for t in self.tau_grid):
            raise ConfigError(f"evaluation.tau_grid must be a non-empty list of positive values, got {self.tau_grid}")
        if not self.ks or any(k < 1 for k in self.ks):
            raise ConfigError(f"evaluation.ks must be positive cut-offs, got {self.ks}")
        name, _, k = self.select_metric.partition("@")
        if name not in ("HR", "NDCG") or not k.isdigit() or int(k) not in self.ks:
            raise ConfigError(
                f"evaluation.select_metric must be HR@K or NDCG@K with K in evaluation.ks {self.ks}, "
                f"got {self.select_metric!r}"
            )
        for key, names in (("scorer", [self.scorer]), ("scorers", self.scorers)):
            unknown = [n for n in names if n not in SCORERS]
            if unknown:
                raise ConfigError(f"evaluation.{key}: unknown scorer(s) {unknown}; known: {list(SCORERS)}")
        if len(set(self.scorers)) != len(self.scorers):
            raise ConfigError(f"evaluation.scorers lists a scorer twice: {self.scorers}")
        if self.fuse is not None:
            if (
                not isinstance(self.fuse, list)
                or len(self.fuse) != 2
                or len(set(self.fuse)) != 2
                or any(n not in [self.scorer, *self.scorers] for n in self.fuse)
            ):
                raise ConfigError(
                    f"evaluation.fuse must name two different scorers of evaluation.scorer / "
                    f"evaluation.scorers {[self.scorer, *self.scorers]}, got {self.fuse!r}"
                )
        weights = self.weights_of_fusion()
        if (
            not weights
            or any(isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w < 1 for w in weights)
            or len(set(weights)) != len(weights)
        ):
            raise ConfigError(
                f"evaluation.fusion_weights must be distinct numbers in (0, 1) (the weight of the "
                f"first scorer of evaluation.fuse), got {self.fusion_weights!r}"
            )
        if self.max_users is not None and self.max_users < 1:
            raise ConfigError(f"evaluation.max_users must be >= 1 or null, got {self.max_users}")
        if self.select_users is not None and (isinstance(self.select_users, bool) or self.select_users < 1):
            raise ConfigError(f"evaluation.select_users must be >= 1 or null, got {self.select_users}")
        if not isinstance(self.test_curve, bool):
            raise ConfigError(f"evaluation.test_curve must be true or false, got {self.test_curve!r}")
