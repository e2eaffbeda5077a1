"""GNN-augmented, trie-constrained beam search (paper Eq. 4-5, docs/design.md §4.5), batched over users.

Per batch of users:

1. Each prompt is encoded **once** (left padding, ``logits_to_keep=1``). With ``kv="shared"`` (default) the
   beams never copy the prompt's KV cache: every decoding step feeds the beams' last tokens of a user as extra
   query positions of that user's row, with a 4-D attention mask that lets each beam see the prompt, its own
   ancestors and itself (tree attention). ``kv="expand"`` instead repeats the prompt cache per beam and
   reorders it, like Hugging Face does after its prefill; it is the fallback for attention kernels that
   reject custom 4-D masks (e.g. flash-attention-2).
2. At step ``t`` each beam's candidates are its trie children (a gather, see :class:`ItemTrie`), minus the
   items excluded for that user. ``p_LLM`` is the LM's softmax over the whole vocabulary taken at those
   tokens -- masked, not renormalised, as Hugging Face's constrained beam search does it (``renormalize``
   divides by the candidates' total instead).
3. ``p̂ = (1-α)·p_LLM + α·p_G`` while the beam's prefix is on the user's FSM (``mix="prob"``, Eq. 4), and
   ``p̂ = p_LLM`` when it is off; the score is ``Σ log p̂`` (Eq. 5). ``p_G``'s floor can only lift trie
   children: a token outside the trie is never a candidate. ``mix="logit"`` is the released code instead:
   ``softmax((1-α)·z + α·g)`` over the vocabulary, with ``g`` on every code token, ``g = floor`` off the FSM.
4. The top ``beam_size`` candidates over all beams of a user survive (a stable sort: ties go to the lower
   beam, then the lower token id, so results are deterministic). Beams without candidates die: they are
   dropped, never padded with junk tokens. After ``L`` steps every live beam is exactly one item.

No Python runs per token or per beam: the trie, the exclusion masks and the FSM are tensors.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from agrec.decode.config import DecodeConfig
from agrec.decode.fsm import RankableFSM
from agrec.decode.trie import ItemTrie
from agrec.errors import AgrecError
from agrec.lm.prompts import left_pad
from agrec.progress import Task


@dataclass
class DecodeTrace:
    """Token-level record of each returned item's path (``[U, K, L]`` each; entries of missing items are 0/NaN).

    ``p_llm`` is the LM's probability of the token as it enters Eq. 4 (the softmax over the whole vocabulary,
    or over the candidates with ``renormalize``; the unmixed one for ``mix="logit"``), ``p_g`` the FSM's ``p_G``
    (``mix="prob"``) or the graph logit ``g`` (``mix="logit"``), NaN while off the FSM; ``p_hat`` the mixed
    probability whose log entered the score; ``on`` whether the prefix before the token was on the FSM.
    """

    tokens: torch.Tensor
    p_llm: torch.Tensor
    p_g: torch.Tensor
    p_hat: torch.Tensor
    on: torch.Tensor


@dataclass
class DecodeResult:
    """Top-K items of each user.

    Attributes:
        items: ``[U, K]`` int64 item ids, best first; -1 where fewer than K items were reachable.
        scores: ``[U, K]`` float32 beam scores ``Σ log p̂`` (-inf where ``items`` is -1).
        trace: the token-level trace when asked for, else None.
    """

    items: torch.Tensor
    scores: torch.Tensor
    trace: DecodeTrace | None = None


# -- the per-step scoring rule (pure; tested with hand-computed numbers) ---------------------------------------
def mixed_log_probs(
    log_p_llm: torch.Tensor,
    p_g: torch.Tensor,
    on: torch.Tensor,
    valid: torch.Tensor,
    alpha: float | torch.Tensor,
    renormalize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4 in log space for candidate tokens.

    Args:
        log_p_llm: ``[..., C]`` LM log-probabilities of the candidates (log-softmax over the whole vocabulary).
        p_g: ``[..., C]`` the FSM's ``p_G`` of the candidates (``floor`` for tokens outside the state).
        on: ``[...]`` whether the beam's prefix is on the FSM.
        valid: ``[..., C]`` False for padding slots / excluded candidates.
        alpha: the mixing weight in [0, 1]: one number, or ``[...]`` one per beam (a gated α, see
            :func:`entropy_gate`).
        renormalize: renormalise ``p_LLM`` over the valid candidates first.
    Returns:
        ``(log p̂, log p_LLM)``, both ``[..., C]``, -inf at invalid slots. ``log p̂`` equals ``log p_LLM``
        bit for bit when ``alpha == 0`` or the beam is off the FSM.
    """
    lp = _mask(log_p_llm, valid, renormalize)
    if isinstance(alpha, torch.Tensor):
        a = alpha.to(lp.dtype).unsqueeze(-1)
        # log(0) = -inf and log1p(-1) = -inf: logaddexp then returns the other term exactly
        mixed = torch.logaddexp(lp + torch.log1p(-a), torch.log(p_g) + torch.log(a))
        return torch.where(valid & on.unsqueeze(-1) & (a > 0), mixed, lp), lp
    if alpha <= 0.0:
        return lp, lp
    # logaddexp keeps tiny probabilities exact and is the identity for the alpha = 0 / 1 edge terms.
    log_a = math.log(alpha)
    log_1ma = math.log1p(-alpha) if alpha < 1.0 else float("-inf")
    mixed = torch.logaddexp(lp + log_1ma, torch.log(p_g) + log_a)
    return torch.where(valid & on.unsqueeze(-1), mixed, lp), lp


def mixed_logit_log_probs(
    logits: torch.Tensor,
    ctok: torch.Tensor,
    g_code: torch.Tensor,
    code_tokens: torch.Tensor,
    valid: torch.Tensor,
    alpha: float,
    renormalize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The released code's mixing (``mix="logit"``) for candidate tokens: ``(1-α)·z + α·g`` on the raw logits
    of the code tokens, then one softmax over the whole vocabulary (other tokens keep their logits).

    Args:
        logits: ``[..., V]`` the LM's raw logits.
        ctok: ``[..., C]`` the candidates' vocabulary ids.
        g_code: ``[..., n_code]`` the graph logit ``g`` of every code token, in ``code_tokens`` order.
        code_tokens: ``[n_code]`` the vocabulary ids of the code tokens.
        valid: ``[..., C]`` False for padding slots / excluded candidates.
        alpha: the mixing weight in [0, 1].
        renormalize: renormalise both distributions over the valid candidates.
    Returns:
        ``(log p̂, log p_LLM)``, both ``[..., C]``, -inf at invalid slots; ``log p_LLM`` is the unmixed one.
    """
    lp_llm = torch.log_softmax(logits, dim=-1).gather(-1, ctok)
    z = logits.clone()
    z[..., code_tokens] = (1.0 - alpha) * z[..., code_tokens] + alpha * g_code
    lhat = _mask(torch.log_softmax(z, dim=-1).gather(-1, ctok), valid, renormalize)
    return lhat, _mask(lp_llm, valid, renormalize)


def entropy_gate(log_p_llm: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The LM's normalised entropy over each beam's valid candidates, ``H / log n`` in [0, 1].

    Args:
        log_p_llm: ``[..., C]`` LM log-probabilities of the candidates.
        valid: ``[..., C]`` which candidates exist.
    Returns:
        ``[...]``: 1 where the LM spreads its mass evenly over the candidates, 0 where it puts all of it on one
        (or where fewer than two candidates exist).
    """
    lp = _mask(log_p_llm, valid, renormalize=True)
    p = lp.exp()
    h = -(p * torch.where(valid, lp, 0.0)).sum(-1)
    n = valid.sum(-1)
    return torch.where(n > 1, h / torch.log(n.clamp_min(2).to(h.dtype)), torch.zeros_like(h)).clamp(0.0, 1.0)


def _mask(log_p: torch.Tensor, valid: torch.Tensor, renormalize: bool) -> torch.Tensor:
    """-inf at invalid slots; with ``renormalize`` the valid slots are renormalised to sum to one."""
    lp = torch.where(valid, log_p, float("-inf"))
    if renormalize:
        lp = torch.where(valid, lp - torch.logsumexp(lp, dim=-1, keepdim=True), float("-inf"))
    return lp


# -- public entry points -----------------------------------------------------------------------------------
@torch.no_grad()
def generate_items(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    trie: ItemTrie,
    fsm_inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
    cfg: DecodeConfig | None = None,
    exclude: Sequence[np.ndarray | Sequence[int] | None] | None = None,
    k: int | None = None,
    trace: bool = False,
    pad_token_id: int = 0,
) -> DecodeResult:
    """Decode the top-``k`` items of each user.

    Args:
        model: a Hugging Face causal LM (e.g. ``LlamaForCausalLM``, possibly peft-wrapped) whose vocabulary
            holds the code tokens; used in eval mode (restored afterwards).
        prompts: one list of token ids per user (no padding; batched internally with left padding).
        trie: :class:`ItemTrie` of all items (the same vocabulary ids as the model's code tokens).
        fsm_inputs: ``(top_items [U, n], top_scores [U, n])`` from the GNN (-1 pads short lists; with
            ``n > cfg.top_n`` each user's ``top_n`` best-scored are kept), or None when ``cfg.alpha`` is 0
            (then it is ignored).
        cfg: :class:`DecodeConfig` (paper defaults when None).
        exclude: per user, item ids that must not be returned (their history, docs/design.md §4.6), or None. They are
            removed from that user's search, not filtered afterwards (see docs/decoding.md "History exclusion").
        k: items to return per user, at most ``cfg.beam_size`` (default: ``beam_size``).
        trace: also return the token-level :class:`DecodeTrace` of each returned item.
        pad_token_id: the id used to left-pad prompts (never attended to).
    Returns:
        :class:`DecodeResult` with ``items [U, k]`` and ``scores [U, k]`` on the CPU.
    """
    return generate_items_multi(
        model,
        prompts,
        trie,
        [(cfg or DecodeConfig(), fsm_inputs)],
        exclude=exclude,
        k=k,
        trace=trace,
        pad_token_id=pad_token_id,
    )[0]


@torch.no_grad()
def generate_items_multi(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    trie: ItemTrie,
    runs: Sequence[tuple[DecodeConfig, tuple[torch.Tensor, torch.Tensor] | None]],
    exclude: Sequence[np.ndarray | Sequence[int] | None] | None = None,
    k: int | None = None,
    trace: bool = False,
    pad_token_id: int = 0,
) -> list[DecodeResult]:
    """Several decodings of the same users, one per ``(cfg, fsm_inputs)`` of ``runs`` (an α grid, a table's
    rows), sharing each batch's prompt encoding.

    Each result equals ``generate_items(model, prompts, trie, fsm_inputs, cfg, exclude, k, trace, pad_token_id)``
    bit for bit: a batch's prompt is encoded once (its KV cache and last-position logits), every run's beam
    search extends that cache and then cuts its own tokens off again before the next run starts. The prompt is
    ~20-35 % of a beam search's LM work on short sequences (Instruments' prompts: 31-46 tokens against 80 beam
    tokens), all of which is saved for every run after the first. With ``kv="expand"`` (the cache is reordered
    per beam, so it cannot be shared) each run encodes the prompt itself, as :func:`generate_items` does.

    With ``share_prefixes`` (every run's config must agree) the runs search in lockstep and each step's distinct
    prefixes go through the LM once for all of them (:func:`_decode_batch_shared_prefixes`). Results then equal
    the single-run decodes up to float rounding, not bit for bit, and a run's scores depend (at that level) on
    which other runs share its pass, since they change the shape of the LM's batch.

    Args:
        runs: per decoding, its :class:`DecodeConfig` and FSM inputs (see :func:`generate_items`). All runs
            must have the same ``batch_size`` (the batches, hence each prompt's padding, are the same).
        k: items per user of every run, at most each run's ``beam_size`` (default: each run's ``beam_size``).

    The other arguments are as in :func:`generate_items`.

    Returns:
        one :class:`DecodeResult` per run, in ``runs``' order.
    """
    if not runs:
        return []
    n_users = len(prompts)
    vocab = _vocab_size(model)
    if int(trie.code_tokens.max()) >= vocab:
        raise AgrecError(
            f"the trie uses token id {int(trie.code_tokens.max())} but the model's vocabulary has "
            f"{vocab} tokens: were the code tokens added to the model?"
        )
    for u, p in enumerate(prompts):
        if len(p) == 0:
            raise AgrecError(f"prompts[{u}] is empty")
        lo, hi = min(p), max(p)
        if lo < 0 or hi >= vocab:
            raise AgrecError(
                f"prompts[{u}] holds token id {lo if lo < 0 else hi}, outside the vocabulary 0..{vocab - 1}"
            )
    if exclude is not None and len(exclude) != n_users:
        raise AgrecError(f"exclude has {len(exclude)} entries for {n_users} prompts")
    prepared = [_prepare_run(model, cfg, fsm, n_users, k) for cfg, fsm in runs]
    batch_size = prepared[0].cfg.batch_size
    if any(r.cfg.batch_size != batch_size for r in prepared):
        raise AgrecError(
            f"the runs of one decode must share batch_size (the batches and their padding), got "
            f"{sorted({r.cfg.batch_size for r in prepared})}"
        )
    share = all(r.cfg.kv == "shared" for r in prepared)
    # asked of the callers' settings: a run that fell back to kv="expand" (flash attention) decodes row by row
    lockstep = runs[0][0].share_prefixes
    if any(cfg.share_prefixes != lockstep for cfg, _ in runs):
        raise AgrecError("the runs of one decode must agree on share_prefixes (it decides how the pass is run)")

    device = _device(model)
    trie = trie.to(device)
    L = trie.n_levels
    outs = []
    for r in prepared:
        items = torch.full((n_users, r.k), -1, dtype=torch.int64)
        scores = torch.full((n_users, r.k), float("-inf"))
        tr = None
        if trace:
            tr = DecodeTrace(
                tokens=torch.zeros(n_users, r.k, L, dtype=torch.int64),
                p_llm=torch.zeros(n_users, r.k, L),
                p_g=torch.full((n_users, r.k, L), float("nan")),
                p_hat=torch.zeros(n_users, r.k, L),
                on=torch.zeros(n_users, r.k, L, dtype=torch.bool),
            )
        outs.append(DecodeResult(items=items, scores=scores, trace=tr))
    # Longest prompts first, so a batch pads little; results go back to the caller's order.
    order = length_order(prompts)
    was_training = model.training
    model.eval()
    task = Task("decode", n_users, "user")  # the CLI's view (agrec.progress); a no-op in an interactive kernel
    try:
        for start in range(0, n_users, batch_size):
            rows = order[start : start + batch_size]
            idx = torch.tensor(rows)
            batch_prompts = [prompts[u] for u in rows]
            ex = [exclude[u] for u in rows] if exclude is not None else None
            shared = _Prefill(model, batch_prompts, trie, ex, pad_token_id) if share else None
            fsms = [_batch_fsm(trie, r, rows, device) for r in prepared]
            if lockstep and shared is not None:
                found = _decode_batch_shared_prefixes(
                    shared, trie, [(f, r.cfg, r.k) for f, r in zip(fsms, prepared, strict=True)], trace, pad_token_id
                )
                shared.rewind()
            else:
                found = []
                for r, fsm in zip(prepared, fsms, strict=True):
                    pre = shared if shared is not None else _Prefill(model, batch_prompts, trie, ex, pad_token_id)
                    found.append(_decode_batch(pre, trie, fsm, r.cfg, r.k, trace, pad_token_id))
                    if shared is not None:
                        shared.rewind()
            for res, out in zip(outs, found, strict=True):
                res.items[idx], res.scores[idx] = out.items.cpu(), out.scores.cpu()
                if trace:
                    for f in ("tokens", "p_llm", "p_g", "p_hat", "on"):
                        getattr(res.trace, f)[idx] = getattr(out.trace, f).cpu()
            task.update(start + len(rows))
        alphas = [r.cfg.alpha for r in prepared]
        task.close(alpha=alphas[0] if len(alphas) == 1 else alphas)
    finally:
        model.train(was_training)
    return outs


def _batch_fsm(trie: ItemTrie, r: "_Run", rows: list[int], device: torch.device) -> RankableFSM | None:
    """The FSM of run ``r`` for the batch's users ``rows`` (None when the run does not use the graph)."""
    if r.top_items is None or r.top_scores is None:
        return None
    return RankableFSM.build(
        trie,
        r.top_items[rows].to(device),
        r.top_scores[rows].to(device),
        tau=r.cfg.tau,
        agg=r.cfg.agg,
        state=r.cfg.state,
        floor=r.cfg.floor,
    )


@dataclass
class _Run:
    cfg: DecodeConfig
    k: int
    top_items: torch.Tensor | None
    top_scores: torch.Tensor | None


def _prepare_run(model, cfg: DecodeConfig, fsm_inputs, n_users: int, k: int | None) -> _Run:
    """A run's checked settings: its k, its FSM inputs cut to ``top_n``, the kv mode the model allows."""
    k = cfg.beam_size if k is None else int(k)
    if not 1 <= k <= cfg.beam_size:
        raise AgrecError(
            f"k must be in 1..beam_size={cfg.beam_size} (a beam search of width B returns at most B items), got k={k}"
        )
    top_items = top_scores = None
    if cfg.uses_graph:
        if fsm_inputs is None:
            raise AgrecError(f"alpha={cfg.alpha} mixes in the GNN, so fsm_inputs=(top_items, top_scores) is needed")
        top_items, top_scores = (torch.as_tensor(x) for x in fsm_inputs)
        if top_items.ndim != 2 or top_items.shape[0] != n_users or top_scores.shape != top_items.shape:
            raise AgrecError(
                f"fsm_inputs must be ([{n_users}, n], [{n_users}, n]) tensors, got "
                f"{tuple(top_items.shape)} and {tuple(top_scores.shape)}"
            )
        if top_items.shape[1] > cfg.top_n:  # keep each user's top_n best-scored candidates
            key = torch.where(top_items >= 0, top_scores.float(), float("-inf"))
            keep = torch.sort(key, dim=1, descending=True, stable=True).indices[:, : cfg.top_n]
            top_items, top_scores = top_items.gather(1, keep), top_scores.gather(1, keep)
    if cfg.kv == "shared" and "flash" in str(getattr(getattr(model, "config", None), "_attn_implementation", "")):
        # flash-attention kernels take no custom 4-D mask: fall back to one KV cache copy per beam
        warnings.warn(
            "flash attention cannot take the tree mask of kv='shared'; decoding with kv='expand'", stacklevel=2
        )
        cfg = dataclasses.replace(cfg, kv="expand", share_prefixes=False)
    return _Run(cfg=cfg, k=k, top_items=top_items, top_scores=top_scores)


def length_order(prompts: Sequence[Sequence[int]]) -> list[int]:
    """The order in which :func:`generate_items` batches ``prompts``: longest first, ties by position (a stable
    sort). :mod:`agrec.decode.shard` cuts its shards from the same order."""
    return sorted(range(len(prompts)), key=lambda u: -len(prompts[u]))


# -- one batch ---------------------------------------------------------------------------------------------
class _Prefill:
    """One batch's encoded prompts: the KV cache after the prompt, the last position's logits, and what every
    beam search of the batch needs besides (padding, exclusion counts). :meth:`rewind` cuts the tokens a beam
    search appended (kv="shared"), so that the next run starts from exactly the same cache."""

    def __init__(self, model, prompts, trie: ItemTrie, exclude, pad_token_id: int):
        device = trie.device
        input_ids, attn = left_pad(prompts, pad_token_id)
        U, P = input_ids.shape
        input_ids, attn = input_ids.to(device), attn.to(device)
        self.U, self.P, self.attn = U, P, attn
        self.n_real = attn.sum(1)  # [U] real prompt tokens
        self.lm = _LM(model)
        self.cache = self.lm.new_cache()
        position_ids = (attn.cumsum(1) - 1).clamp_min(0)
        self.logits = self.lm(
            input_ids=input_ids, attention_mask=attn, position_ids=position_ids, cache=self.cache, last_only=True
        )[:, -1:, :]  # [U, 1, V]
        self.remaining = (
            trie.remaining_counts(list(exclude))
            if exclude is not None and any(e is not None and len(e) for e in exclude)
            else None
        )
        self.kv_len = P  # the cache's length now

    def extend(self, tokens: torch.Tensor, anc: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``kv="shared"``: append ``tokens [U, M]`` (step ``t``'s beam tokens) to the cache as new slots, each
        seeing the prompt, the slots ``anc [U, M, t-1]`` of its ancestors and itself. Returns the logits
        ``[U, M, V]`` and the new slots ``[U, M]``."""
        U, M = tokens.shape
        own = self.kv_len + torch.arange(M, device=tokens.device).expand(U, M)
        mask = _tree_mask(self.attn, anc, own, self.kv_len, self.lm.dtype)
        pos = (self.n_real.unsqueeze(1) + (t - 1)).expand(U, M)
        logits = self.lm(input_ids=tokens, attention_mask=mask, position_ids=pos, cache=self.cache)
        self.kv_len += M
        return logits, own

    def rewind(self) -> None:
        """Back to the prompt's cache (the beam tokens appended since are removed)."""
        extra = self.kv_len - self.P
        if extra > 0:  # crop(-n) removes the last n tokens (in every transformers version we support)
            self.cache.crop(-extra)
            self.kv_len = self.P


class _Beams:
    """One run's beams during a batch's search: ``node``, ``score``, ``alive`` ``[U, M]`` (``M`` = 1 before the
    first token), the FSM state, the last chosen tokens and, with ``trace``, each step's record."""

    def __init__(self, U: int, fsm: RankableFSM | None, cfg: DecodeConfig, k: int, device: torch.device):
        self.fsm, self.cfg, self.k = fsm, cfg, k
        self.node = torch.zeros(U, 1, dtype=torch.int64, device=device)
        self.score = torch.zeros(U, 1, device=device)
        self.alive = torch.ones(U, 1, dtype=torch.bool, device=device)
        self.fstate = fsm.initial_state(1) if fsm is not None else None
        self.token = torch.empty(0, dtype=torch.int64, device=device)  # set at the end of step 0, read from step 1
        self.steps: list[tuple] = []  # per step: parent, token, p_llm, p_g, p_hat, on

    def step(
        self, t: int, logits: torch.Tensor, trie: ItemTrie, remaining: torch.Tensor | None, trace: bool
    ) -> torch.Tensor:
        """Extend every beam by its trie children scored with Eq. 4 and keep the best ``beam_size``.
        ``logits [U, M, V]``: the LM's logits after each beam's prefix. Returns each new beam's parent ``[U, M']``."""
        fsm, cfg = self.fsm, self.cfg
        node, score, alive, fstate = self.node, self.score, self.alive, self.fstate
        U, M = node.shape
        device = node.device
        C = int(trie.max_children[t])
        child, ctok, cvalid = trie.children(node, C)  # [U, M, C]
        cvalid = cvalid & alive.unsqueeze(-1)
        if remaining is not None:
            cvalid = cvalid & (remaining.gather(1, child.view(U, -1)).view(U, M, C) > 0)

        alpha = cfg.alpha_at(t)
        logits = logits.float()
        on = (fstate >= 0) if fstate is not None else torch.zeros(U, M, dtype=torch.bool, device=device)
        if cfg.mix == "logit" and fsm is not None and fstate is not None and alpha > 0:
            g_code = _graph_logit_vectors(fsm, fstate, t, trie)  # [U, M, n_code]
            # released code: mixed on and off the FSM (off: g = floor on every code token)
            lhat, lp_llm = mixed_logit_log_probs(logits, ctok, g_code, trie.code_tokens, cvalid, alpha, cfg.renormalize)
            p_g = fsm.graph_logits(fstate, t, ctok)
        else:
            lp_all = torch.log_softmax(logits, dim=-1).gather(-1, ctok)
            if fsm is not None and fstate is not None:
                p_g = fsm.weights(fstate, t, ctok)
            else:
                p_g = torch.full_like(lp_all, float("nan"))
            a_t = alpha * entropy_gate(lp_all, cvalid) if (cfg.alpha_gate == "entropy" and alpha > 0) else alpha
            lhat, lp_llm = mixed_log_probs(lp_all, p_g, on, cvalid, a_t, cfg.renormalize)

        cand = (score.unsqueeze(-1) + lhat).view(U, M * C)
        width = min(cfg.beam_size, M * C)
        top, flat = torch.sort(cand, dim=1, descending=True, stable=True)
        top, flat = top[:, :width], flat[:, :width]
        parent = flat // C
        self.alive = top > float("-inf")

        def pick(x: torch.Tensor) -> torch.Tensor:
            return x.view(U, M * C).gather(1, flat)

        self.node, self.token, self.score = pick(child), pick(ctok), top
        if trace:
            self.steps.append(
                (parent, self.token, pick(lp_llm).exp(), pick(p_g), pick(lhat).exp(), on.gather(1, parent))
            )
        if fsm is not None and fstate is not None:
            self.fstate = fsm.next_state(fstate.gather(1, parent), t, self.token)
        return parent

    def result(self, trie: ItemTrie, trace: bool) -> DecodeResult:
        """The finished search: each live beam is one item, best first."""
        U, device, k = self.node.shape[0], self.node.device, self.k
        item = torch.where(self.alive, trie.leaf_item[self.node], -1)
        kk = min(k, item.shape[1])
        items = torch.full((U, k), -1, dtype=torch.int64, device=device)
        scores = torch.full((U, k), float("-inf"), device=device)
        items[:, :kk] = item[:, :kk]
        scores[:, :kk] = torch.where(self.alive[:, :kk], self.score[:, :kk], float("-inf"))
        tr = _backtrack(self.steps, U, k, kk, self.alive, device) if trace else None
        return DecodeResult(items=items, scores=scores, trace=tr)


def _tree_mask(attn: torch.Tensor, anc: torch.Tensor, own: torch.Tensor, kv_len: int, dtype: torch.dtype):
    """The 4-D additive attention mask of ``kv="shared"``: query ``m`` of user ``u`` sees the prompt's real tokens,
    the cache slots ``anc[u, m]`` of its ancestors and its own new slot ``own[u, m]``. ``[U, 1, M, kv_len + M]``."""
    U, M = own.shape
    P = attn.shape[1]
    allowed = torch.zeros(U, M, kv_len + M, dtype=torch.bool, device=own.device)
    allowed[:, :, :P] = attn.bool().unsqueeze(1)
    allowed.scatter_(2, torch.cat([anc, own.unsqueeze(-1)], dim=-1), True)
    return (
        torch.zeros(allowed.shape, dtype=dtype, device=own.device)
        .masked_fill_(~allowed, torch.finfo(dtype).min)
        .unsqueeze(1)
    )


def _decode_batch(
    pre: _Prefill, trie: ItemTrie, fsm: RankableFSM | None, cfg: DecodeConfig, k: int, trace: bool, pad_token_id: int
) -> DecodeResult:
    device = trie.device
    U, L = pre.U, trie.n_levels
    lm, cache, attn, n_real, logits, remaining = pre.lm, pre.cache, pre.attn, pre.n_real, pre.logits, pre.remaining
    ar_u = torch.arange(U, device=device)
    beams = _Beams(U, fsm, cfg, k, device)
    anc = torch.zeros(U, 1, 0, dtype=torch.int64, device=device)  # kv="shared": cache slots of each beam's path

    for t in range(L):
        if t > 0:
            tok_in = torch.where(beams.alive, beams.token, pad_token_id)  # dead beams feed a harmless pad token
            M = tok_in.shape[1]
            if cfg.kv == "shared":
                logits, own = pre.extend(tok_in, anc, t)  # [U, M, V]
                anc = torch.cat([anc, own.unsqueeze(-1)], dim=-1)
            else:
                pos = (n_real.unsqueeze(1) + (t - 1)).expand(U, M)
                mask2d = torch.cat(
                    [attn.repeat_interleave(M, 0), torch.ones(U * M, t, dtype=attn.dtype, device=device)], dim=1
                )
                logits = lm(
                    input_ids=tok_in.reshape(U * M, 1),
                    attention_mask=mask2d,
                    position_ids=pos.reshape(U * M, 1),
                    cache=cache,
                ).view(U, M, -1)
        M = beams.node.shape[1]
        parent = beams.step(t, logits, trie, remaining, trace)
        width = parent.shape[1]
        if t + 1 < L:
            if cfg.kv == "shared":
                anc = anc.gather(1, parent.unsqueeze(-1).expand(U, width, anc.shape[-1]))
            else:  # rows u*M + beam; at t = 0 (M = 1) this repeats each prompt's cache once per beam
                cache.reorder_cache((ar_u.unsqueeze(1) * M + parent).reshape(-1))
    return beams.result(trie, trace)


def _decode_batch_shared_prefixes(
    pre: _Prefill,
    trie: ItemTrie,
    runs: Sequence[tuple[RankableFSM | None, DecodeConfig, int]],
    trace: bool,
    pad_token_id: int,
) -> list[DecodeResult]:
    """Several runs' searches over one batch in lockstep (``decode.share_prefixes``): at each step the distinct
    prefixes among all runs' live beams go through the LM once, as extra query positions of the tree-masked
    cache (``kv="shared"``), and every beam reads the logits of its prefix. An α grid's rows keep most of their
    beams in common, so the LM sees a fraction of the ``runs × beam_size`` queries per step. Each run's scoring
    and selection is :meth:`_Beams.step`, as in :func:`_decode_batch`; the logits of a prefix are the same
    function of it, computed in a differently shaped batch, so they equal that path's up to float rounding."""
    device = trie.device
    U, L = pre.U, trie.n_levels
    beams = [_Beams(U, fsm, cfg, k, device) for fsm, cfg, k in runs]
    none = trie.n_nodes  # sorts after every node: padding of the per-user prefix lists
    prefixes = own = anc = torch.empty(U, 0, dtype=torch.int64, device=device)
    for t in range(L):
        if t > 0:
            nodes = torch.cat([torch.where(b.alive, b.node, none) for b in beams], dim=1)  # [U, N]
            srt = torch.sort(nodes, dim=1).values
            first = torch.ones_like(srt, dtype=torch.bool)
            first[:, 1:] = srt[:, 1:] != srt[:, :-1]
            first &= srt != none
            Q = max(int(first.sum(1).max()), 1)
            slot = torch.where(first, first.cumsum(1) - 1, Q)  # column Q collects the repeats and the padding
            new = (
                torch.full((U, Q + 1), none, dtype=torch.int64, device=device)
                .scatter_(1, slot, srt)[:, :Q]
                .contiguous()
            )
            real = new != none
            node_ = new.clamp_max(none - 1)
            tok_in = torch.where(real, trie.node_token[node_], pad_token_id)
            if t == 1:  # children of the root: no ancestor besides the prompt
                new_anc = torch.zeros(U, Q, 0, dtype=torch.int64, device=device)
            else:  # a prefix's ancestors are its parent's, and the parent's own slot
                pidx = torch.searchsorted(prefixes, trie.node_parent[node_]).clamp_max(prefixes.shape[1] - 1)
                new_anc = torch.cat(
                    [anc.gather(1, pidx.unsqueeze(-1).expand(U, Q, anc.shape[-1])), own.gather(1, pidx).unsqueeze(-1)],
                    dim=-1,
                )
            logits, own = pre.extend(tok_in, new_anc, t)  # [U, Q, V]
            prefixes, anc = new, new_anc
        for b in beams:
            if t == 0:  # every search starts at the prompt
                lg = pre.logits
            else:  # each beam's prefix's row; dead beams read some row, their candidates are invalid anyway
                at = torch.searchsorted(prefixes, b.node.contiguous()).clamp_max(prefixes.shape[1] - 1)
                lg = logits.gather(1, at.unsqueeze(-1).expand(*at.shape, logits.shape[-1]))
            b.step(t, lg, trie, pre.remaining, trace)
    return [b.result(trie, trace) for b in beams]


def _graph_logit_vectors(fsm: RankableFSM, state: torch.Tensor, depth: int, trie: ItemTrie) -> torch.Tensor:
    """``g`` over all code tokens ``[U, M, n_code]`` (released code: floor, then each edge's aggregate)."""
    tokens, _, g = fsm.allowed(state, depth)  # [U, M, n]
    U, M, n = tokens.shape
    K = trie.code_tokens.numel()
    col = torch.searchsorted(trie.code_tokens, tokens.clamp_min(0))
    col = torch.where(tokens >= 0, col, K)  # K = a dump column
    out = torch.full((U, M, K + 1), fsm.floor, device=tokens.device)
    out.scatter_(2, col, torch.where(tokens >= 0, g, fsm.floor))
    return out[..., :K]


def _backtrack(steps, U: int, k: int, kk: int, alive: torch.Tensor, device) -> DecodeTrace:
    L = len(steps)
    shape = (U, k, L)
    tr = DecodeTrace(
        tokens=torch.zeros(shape, dtype=torch.int64, device=device),
        p_llm=torch.zeros(shape, device=device),
        p_g=torch.full(shape, float("nan"), device=device),
        p_hat=torch.zeros(shape, device=device),
        on=torch.zeros(shape, dtype=torch.bool, device=device),
    )
    beam = torch.arange(kk, device=device).expand(U, kk)
    ok = alive[:, :kk]
    for t in range(L - 1, -1, -1):
        parent, token, p_llm, p_g, p_hat, on = steps[t]
        tr.tokens[:, :kk, t] = torch.where(ok, token.gather(1, beam), 0)
        tr.p_llm[:, :kk, t] = torch.where(ok, p_llm.gather(1, beam), 0.0)
        o = on.gather(1, beam) & ok
        tr.on[:, :kk, t] = o
        tr.p_g[:, :kk, t] = torch.where(o, p_g.gather(1, beam), float("nan"))
        tr.p_hat[:, :kk, t] = torch.where(ok, p_hat.gather(1, beam), 0.0)
        beam = parent.gather(1, beam)
    return tr


# -- model plumbing ----------------------------------------------------------------------------------------
class _LM:
    """A thin adapter over a Hugging Face causal LM: the cache keyword (``cache`` in transformers >= 5.2x,
    ``past_key_values`` before), ``logits_to_keep`` when the model has it, and the compute dtype."""

    def __init__(self, model: Any):  # a Hugging Face causal LM (or its peft wrapper)
        self.model = model
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(type(base).forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.has_keep = "logits_to_keep" in params
        self.dtype = next(model.parameters()).dtype
        if not self.dtype.is_floating_point:
            self.dtype = torch.float32

    def new_cache(self):
        from transformers import DynamicCache

        return DynamicCache()

    def __call__(self, *, input_ids, attention_mask, position_ids, cache, last_only: bool = False):
        kw = {self.cache_kw: cache, "use_cache": True}
        if last_only and self.has_keep:
            kw["logits_to_keep"] = 1
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kw)
        return out.logits


def _vocab_size(model: Any) -> int:
    emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if emb is not None and hasattr(emb, "weight"):
        return int(emb.weight.shape[0])
    return int(model.config.vocab_size)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
