import dataclasses
import math
import types

import numpy as np
import pytest
import torch
from tiny_lm import EOS, make_tiny

from agrec.decode import DecodeConfig, ItemTrie, generate_items, generate_items_multi, mixed_log_probs
from agrec.decode.beam import mixed_logit_log_probs
from agrec.decode.hf import hf_generate_items
from agrec.errors import AgrecError, ConfigError


@pytest.fixture(scope="module")
def tiny():
    return make_tiny()


def lm_probs(model, prompt, item_tokens):
    """Teacher-forced next-token distributions ``[L, V]`` of one item after one prompt (no cache, no padding)."""
    ids = torch.tensor([list(prompt) + list(item_tokens[:-1])])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1:].float()
    return logits


def gnn_inputs(tiny, n=5, seed=0):
    """Deterministic 'GNN' top-n per user: random distinct items with decreasing scores."""
    g = torch.Generator().manual_seed(seed)
    U = len(tiny.prompts)
    items = torch.stack([torch.randperm(tiny.trie.n_items, generator=g)[:n] for _ in range(U)])
    scores = torch.sort(torch.randn(U, n, generator=g) * 2, dim=1, descending=True).values
    return items, scores


# -- Eq. 4 in isolation ---------------------------------------------------------------------------------------
def test_mixed_log_probs_hand_computed():
    lp = torch.log(torch.tensor([[0.5, 0.2, 0.1], [0.5, 0.2, 0.1]]))
    pg = torch.tensor([[0.7, 1e-5, 0.3], [0.7, 1e-5, 0.3]])
    valid = torch.tensor([[True, True, False], [True, True, False]])
    on = torch.tensor([True, False])
    lhat, lpl = mixed_log_probs(lp, pg, on, valid, alpha=0.4)
    assert lhat[0].exp().tolist()[:2] == pytest.approx([0.6 * 0.5 + 0.4 * 0.7, 0.6 * 0.2 + 0.4 * 1e-5], rel=1e-6)
    assert lhat[0, 2] == float("-inf") and lhat[1, 2] == float("-inf")     # the floor never revives a masked token
    assert torch.equal(lhat[1], lpl[1])                                       # off the FSM: p_LLM, bit for bit
    r, _ = mixed_log_probs(lp, pg, on, valid, alpha=0.4, renormalize=True)
    assert r[1].exp().tolist()[:2] == pytest.approx([0.5 / 0.7, 0.2 / 0.7], rel=1e-6)
    a0, _ = mixed_log_probs(lp, pg, on, valid, alpha=0.0)
    assert torch.equal(a0[:, :2], lp[:, :2])
    a1, _ = mixed_log_probs(lp, pg, on, valid, alpha=1.0)
    assert a1[0, :2].exp().tolist() == pytest.approx([0.7, 1e-5], rel=1e-6)


def test_mixed_logit_log_probs_hand_computed():
    # vocabulary of 4: tokens 1 and 3 are code tokens; candidates 3, 1 and a padding slot (token 0)
    logits = torch.tensor([[0.0, 1.0, 2.0, 0.5]])
    g_code = torch.tensor([[2.0, -1.0]])  # g of tokens 1 and 3
    ctok = torch.tensor([[3, 1, 0]])
    valid = torch.tensor([[True, True, False]])
    lhat, lpl = mixed_logit_log_probs(logits, ctok, g_code, torch.tensor([1, 3]), valid, alpha=0.25)
    # z' = (0, .75*1 + .25*2, 2, .75*.5 + .25*(-1)) = (0, 1.25, 2, .125); one softmax over all four tokens
    z = [0.0, 1.25, 2.0, 0.125]
    norm = sum(math.exp(v) for v in z)
    assert lhat[0, :2].exp().tolist() == pytest.approx([math.exp(0.125) / norm, math.exp(1.25) / norm], rel=1e-6)
    raw = sum(math.exp(v) for v in [0.0, 1.0, 2.0, 0.5])
    assert lpl[0, :2].exp().tolist() == pytest.approx([math.exp(0.5) / raw, math.exp(1.0) / raw], rel=1e-6)
    assert lhat[0, 2] == float("-inf") and lpl[0, 2] == float("-inf")
    # renormalised over the valid candidates: the two mixed probabilities sum to one
    r, _ = mixed_logit_log_probs(logits, ctok, g_code, torch.tensor([1, 3]), valid, alpha=0.25, renormalize=True)
    e = [math.exp(0.125), math.exp(1.25)]
    assert r[0, :2].exp().tolist() == pytest.approx([e[0] / sum(e), e[1] / sum(e)], rel=1e-6)
    # alpha = 0: the LM's own distribution, bit for bit
    a0, l0 = mixed_logit_log_probs(logits, ctok, g_code, torch.tensor([1, 3]), valid, alpha=0.0)
    assert torch.equal(a0, l0)


# -- alpha = 0 is Hugging Face's constrained beam search --------------------------------------------------------
@pytest.mark.parametrize("beams,sizes,kv", [(5, (8, 6, 6), "shared"), (5, (8, 6, 6), "expand"),
                                            (20, (24, 6, 6), "shared"), (20, (24, 6, 6), "expand")])
def test_alpha0_reproduces_hf_generate(beams, sizes, kv):
    # HF pads its beam with junk when fewer than `beams` valid continuations exist; the root has >= beams
    # children here, so every HF hypothesis is a real item and the comparison is exact (see agrec/decode/hf.py).
    tiny = make_tiny(seed=1, sizes=sizes, n_items=250, n_users=7, min_items=1, max_items=5)
    ours = generate_items(tiny.model, tiny.prompts, tiny.trie, cfg=DecodeConfig(alpha=0.0, beam_size=beams,
                                                                                 batch_size=3, kv=kv))
    hf = hf_generate_items(tiny.model, tiny.prompts, tiny.trie, num_beams=beams, eos_token_id=EOS, batch_size=4)
    assert (hf.items >= 0).all()
    assert torch.equal(ours.items, hf.items)
    torch.testing.assert_close(ours.scores, hf.scores, atol=2e-5, rtol=1e-5)


# -- alpha = 1 ranks the GNN's top-n first --------------------------------------------------------------------
@pytest.mark.parametrize("state", ["prefix", "last_token"])
def test_alpha1_sum_ranks_gnn_top_n_first_in_gnn_order(state):
    tiny = make_tiny(seed=2, n_users=5)
    items, scores = gnn_inputs(tiny, n=6, seed=2)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))     # the FSM needs no sorted input
    cfg = DecodeConfig(alpha=1.0, agg="sum", mix="prob", state=state, beam_size=10, top_n=6)
    res = generate_items(tiny.model, tiny.prompts, tiny.trie, fsm_inputs=(items[:, perm], scores[:, perm]),
                         cfg=cfg)
    if state == "prefix":
        assert torch.equal(res.items[:, :6], items)                           # GNN order, exactly
        torch.testing.assert_close(res.scores[:, :6], torch.log_softmax(scores, dim=1), atol=1e-5, rtol=1e-5)
        assert (res.scores[:, 6:] < math.log(1e-5) + 1e-6).all()              # the rest pay the floor
    else:
        # the released code's last-token state lets items that merely share a code with a top-n item ride on
        # its weight, so non-top items escape the floor: the guarantee is lost. Every beam's score is that of the
        # reference FSM (α = 1: p_G on the FSM, the floor for a token off its edges, p_LLM off the FSM).
        escaped = 0
        for u in range(len(tiny.prompts)):
            ref = ReferenceFSM(tiny.trie, items[u].tolist(), scores[u].tolist(), 1.0, "sum", "last_token", 1e-5)
            for j in range(10):
                toks = tiny.trie.item_tokens[int(res.items[u, j])].tolist()
                logits = lm_probs(tiny.model, tiny.prompts[u], toks)
                want = 0.0
                for d in range(len(toks)):
                    if ref.on(toks[:d]):
                        want += math.log(ref.p_g(toks[:d]).get(toks[d], 1e-5))
                    else:
                        children = tiny.trie.allowed_tokens(toks[:d])
                        want += math.log(float(torch.softmax(logits[d], -1)[toks[d]]))
                        assert toks[d] in children
                assert float(res.scores[u, j]) == pytest.approx(want, rel=1e-4, abs=1e-4)
                escaped += int(res.items[u, j]) not in items[u].tolist() and want > math.log(1e-5)
        assert escaped > 0


def test_fsm_keeps_the_top_n_best_scored_candidates(tiny):
    items, scores = gnn_inputs(tiny, n=9, seed=5)
    shuffled = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    cfg = DecodeConfig(alpha=0.6, beam_size=8, top_n=4)
    wide = generate_items(tiny.model, tiny.prompts, tiny.trie, fsm_inputs=(items[:, shuffled], scores[:, shuffled]),
                          cfg=cfg)
    best = generate_items(tiny.model, tiny.prompts, tiny.trie, fsm_inputs=(items[:, :4], scores[:, :4]), cfg=cfg)
    assert torch.equal(wide.items, best.items) and torch.equal(wide.scores, best.scores)


# -- every score is Eq. 4-5, recomputed independently ---------------------------------------------------------
class ReferenceFSM:
    """One user's FSM written from its definition (the design page's §4.5 and the released code's variants), in
    plain Python over item code lists, to check the vectorised :class:`RankableFSM` against.

    The items of a state are the top-n items whose path goes through it: those whose first ``d`` codes are the
    prefix (``state="prefix"``), or, as in the released code, those whose code at depth ``d - 1`` is the prefix's
    last token (``"last_token"``; every item at the root). ``p_G`` of a next token is the sum (or max) of the
    weights ``softmax(score / tau)`` of the state's items through it, normalised over the state's tokens; the
    graph logit (``mix="logit"``) is the sum (or max, at least ``floor``) of their ``score / tau``."""

    def __init__(self, trie, items, scores, tau, agg, state, floor):
        self.codes = [trie.item_tokens[i].tolist() for i in items]
        e = [math.exp(x / tau) for x in scores]
        self.w = [x / sum(e) for x in e]
        self.s = [x / tau for x in scores]
        self.agg, self.state, self.floor = agg, state, floor

    def members(self, prefix):
        d = len(prefix)
        if self.state == "prefix" or d == 0:
            return [k for k, c in enumerate(self.codes) if c[:d] == list(prefix)]
        return [k for k, c in enumerate(self.codes) if c[d - 1] == prefix[-1]]

    def on(self, prefix):
        return bool(self.members(prefix))

    def _edges(self, prefix, values):
        d, out = len(prefix), {}
        for k in self.members(prefix):
            t = self.codes[k][d]
            out[t] = values[k] if t not in out else (out[t] + values[k] if self.agg == "sum" else max(out[t], values[k]))
        return out

    def p_g(self, prefix):
        edges = self._edges(prefix, self.w)
        total = sum(edges.values())
        return {t: v / total for t, v in edges.items()}

    def graph_logits(self, prefix):
        edges = self._edges(prefix, self.s)
        return edges if self.agg == "sum" else {t: max(v, self.floor) for t, v in edges.items()}


def test_reference_fsm_by_hand():
    trie = types.SimpleNamespace(item_tokens=torch.tensor([[10, 20, 30], [10, 21, 31], [11, 20, 32]]))
    ref = ReferenceFSM(trie, [0, 1, 2], [math.log(2), 0.0, math.log(1)], 1.0, "sum", "prefix", 1e-5)
    # w = 2/4, 1/4, 1/4; at the root: token 10 carries items 0 and 1, token 11 item 2
    assert ref.p_g([]) == {10: 0.75, 11: 0.25}
    assert ref.p_g([10]) == {20: 2 / 3, 21: 1 / 3} and not ref.on([11, 21])
    last = ReferenceFSM(trie, [0, 1, 2], [math.log(2), 0.0, math.log(1)], 1.0, "sum", "last_token", 1e-5)
    # after token 20 at depth 1 the released code's state holds items 0 and 2 (both have 20 there), whatever the
    # first token was: the prefix 11, 20 is steered by item 0's next code too
    assert last.p_g([11, 20]) == {30: 2 / 3, 32: 1 / 3} and ref.p_g([11, 20]) == {32: 1.0}

@pytest.mark.parametrize("kw", [dict(mix="prob", state="prefix", agg="sum", alpha=0.5),
                                dict(mix="prob", state="prefix", agg="max", alpha=0.3),
                                dict(mix="prob", state="last_token", agg="sum", alpha=0.6),
                                dict(mix="prob", state="prefix", agg="sum", alpha=[0.0, 0.8, 0.2]),
                                dict(mix="prob", state="prefix", agg="sum", alpha=0.5, renormalize=True),
                                dict(mix="logit", state="last_token", agg="max", alpha=0.4),
                                dict(mix="logit", state="prefix", agg="sum", alpha=0.7, renormalize=True)])
def test_scores_and_trace_match_independent_recomputation(kw):
    tiny = make_tiny(seed=3, n_users=4)
    items, scores = gnn_inputs(tiny, n=5, seed=3)
    cfg = DecodeConfig(beam_size=8, batch_size=3, tau=0.7, **kw)
    res = generate_items(tiny.model, tiny.prompts, tiny.trie, fsm_inputs=(items, scores), cfg=cfg, trace=True)
    trie, L, tr = tiny.trie, tiny.trie.n_levels, res.trace
    seen_on = seen_off = 0
    for u in range(len(tiny.prompts)):
        for j in range(cfg.beam_size):
            item = int(res.items[u, j])
            assert item >= 0
            toks = trie.item_tokens[item].tolist()
            assert tr.tokens[u, j].tolist() == toks
            logits = lm_probs(tiny.model, tiny.prompts[u], toks)
            ref = ReferenceFSM(trie, items[u].tolist(), scores[u].tolist(), cfg.tau, cfg.agg, cfg.state, cfg.floor)
            total, was_off = 0.0, False
            for d in range(L):
                a = cfg.alpha_at(d)
                children = trie.allowed_tokens(toks[:d])
                on = ref.on(toks[:d])
                assert bool(tr.on[u, j, d]) == on
                if cfg.state == "prefix":
                    assert not (was_off and on)                               # off is absorbing
                was_off |= not on
                p_llm = torch.softmax(logits[d], -1)
                p = p_llm[children]
                if cfg.renormalize:
                    p = p / p.sum()
                pl = float(p[children.index(toks[d])])
                assert float(tr.p_llm[u, j, d]) == pytest.approx(pl, rel=1e-4)
                if cfg.mix == "prob":
                    pg = ref.p_g(toks[:d]).get(toks[d], cfg.floor)
                    p_hat = (1 - a) * pl + a * pg if on else pl
                else:
                    code = trie.code_tokens
                    g_of = ref.graph_logits(toks[:d])
                    g = torch.tensor([g_of.get(int(c), cfg.floor) for c in code])
                    z = logits[d].clone()
                    z[code] = (1 - a) * z[code] + a * g
                    q = torch.softmax(z, -1)
                    p_hat = float(q[toks[d]] / (q[children].sum() if cfg.renormalize else 1.0))
                    pg = float(g[code.tolist().index(toks[d])])
                seen_on += on
                seen_off += not on
                if on:
                    assert float(tr.p_g[u, j, d]) == pytest.approx(pg, rel=1e-4)
                else:
                    assert math.isnan(float(tr.p_g[u, j, d]))
                assert float(tr.p_hat[u, j, d]) == pytest.approx(p_hat, rel=1e-4)
                total += math.log(p_hat)
            assert float(res.scores[u, j]) == pytest.approx(total, rel=1e-4, abs=1e-4)
    assert seen_on and seen_off                                               # both branches were exercised
    assert (res.scores[:, :-1] >= res.scores[:, 1:]).all()


def test_off_fsm_is_the_lm_alone():
    """Off the FSM p̂ is p_LLM exactly: alpha changes nothing for items none of whose prefixes are top-n."""
    tiny = make_tiny(seed=4, n_users=3)
    trie = tiny.trie
    # every user's top-n = items whose first code is 3 (token 3 + N_SPECIAL); others leave the FSM at the root
    first = trie.item_tokens[:, 0]
    pool = torch.nonzero(first == int(first.min())).flatten()[:4]
    items = pool.expand(3, -1).clone()
    scores = torch.tensor([[3.0, 2.0, 1.0, 0.0]]).expand(3, -1).clone()
    plain = generate_items(tiny.model, tiny.prompts, trie, cfg=DecodeConfig(alpha=0.0, beam_size=6), trace=True)
    mixed = generate_items(tiny.model, tiny.prompts, trie, fsm_inputs=(items, scores),
                           cfg=DecodeConfig(alpha=0.5, beam_size=30, top_n=4), trace=True)
    checked = 0
    for u in range(3):
        for j in range(6):
            it = int(plain.items[u, j])
            if trie.item_tokens[it, 0] == first.min():
                continue
            checked += 1
            m = mixed.items[u].tolist().index(it)
            # root is on the FSM: p̂ = .5 p + .5 * 1e-5 for the first code, then p_LLM alone
            p0 = float(plain.trace.p_llm[u, j, 0])
            expect = math.log(0.5 * p0 + 0.5 * 1e-5) + float(plain.trace.p_llm[u, j, 1:].log().sum())
            assert float(mixed.scores[u, m]) == pytest.approx(expect, rel=1e-5)
            assert mixed.trace.on[u, m].tolist() == [True, False, False]
            assert torch.equal(mixed.trace.p_hat[u, m, 1:], mixed.trace.p_llm[u, m, 1:])
    assert checked >= 10


# -- exhaustive search = brute force; dead beams are dropped; K larger than what exists -----------------------
@pytest.mark.parametrize("renormalize", [False, True])
def test_exhaustive_beam_equals_brute_force_ranking(renormalize):
    tiny = make_tiny(seed=5, sizes=(2, 3, 2), n_items=9, n_users=3)
    res = generate_items(tiny.model, tiny.prompts, tiny.trie,
                         cfg=DecodeConfig(alpha=0.0, beam_size=12, renormalize=renormalize))
    for u, prompt in enumerate(tiny.prompts):
        brute = []
        for i in range(9):
            toks = tiny.trie.item_tokens[i].tolist()
            logits = lm_probs(tiny.model, prompt, toks)
            s = 0.0
            for d in range(3):
                p = torch.softmax(logits[d], -1)
                if renormalize:
                    p = p / p[tiny.trie.allowed_tokens(toks[:d])].sum()
                s += math.log(float(p[toks[d]]))
            brute.append((s, i))
        brute.sort(key=lambda x: -x[0])
        assert res.items[u, :9].tolist() == [i for _, i in brute]
        assert res.scores[u, :9].tolist() == pytest.approx([s for s, _ in brute], rel=1e-5)
        assert res.items[u, 9:].tolist() == [-1, -1, -1]                      # K > reachable items: padded
        assert res.scores[u, 9:].tolist() == [float("-inf")] * 3


def test_dead_beams_are_dropped_not_padded():
    # the root has 2 children and the beam is 16: HF would fill 14 slots with junk at the first step
    tiny = make_tiny(seed=6, sizes=(2, 2, 2), n_items=5, n_users=2)
    res = generate_items(tiny.model, tiny.prompts, tiny.trie, cfg=DecodeConfig(alpha=0.0, beam_size=16), k=16,
                         trace=True)
    for u in range(2):
        got = res.items[u][res.items[u] >= 0].tolist()
        assert sorted(got) == list(range(5)) and res.items[u, :5].tolist() == got
        assert (res.items[u, 5:] == -1).all() and torch.isinf(res.scores[u, 5:]).all()


# -- history exclusion ----------------------------------------------------------------------------------------
def test_exclusion_is_a_search_over_the_remaining_items():
    tiny = make_tiny(seed=7, n_users=4)
    rng = np.random.default_rng(0)
    exclude = [rng.choice(tiny.trie.n_items, size=40, replace=False) for _ in tiny.prompts]
    exclude[1] = np.array([], dtype=np.int64)
    cfg = DecodeConfig(alpha=0.0, beam_size=10)
    res = generate_items(tiny.model, tiny.prompts, tiny.trie, cfg=cfg, exclude=exclude)
    for u, prompt in enumerate(tiny.prompts):
        keep = np.setdiff1d(np.arange(tiny.trie.n_items), exclude[u])
        sub = ItemTrie.build(tiny.tokens[keep])
        ref = generate_items(tiny.model, [prompt], sub, cfg=cfg)
        assert res.items[u].tolist() == keep[ref.items[0].numpy()].tolist()
        torch.testing.assert_close(res.scores[u], ref.scores[0], atol=1e-5, rtol=1e-5)
        assert not set(res.items[u].tolist()) & set(exclude[u].tolist())


# -- property: only real items, whatever the model, table and settings ------------------------------------------
def test_outputs_are_always_real_distinct_items():
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        sizes = tuple(int(x) for x in rng.integers(2, 7, size=int(rng.integers(2, 5))))
        n_items = int(min(np.prod(sizes), rng.integers(5, 80)))
        tiny = make_tiny(seed=100 + seed, sizes=sizes, n_items=n_items, n_users=5, init=float(rng.choice([0.02, 1.0])))
        n = int(min(n_items, rng.integers(1, 8)))
        items, scores = gnn_inputs(tiny, n=n, seed=seed)
        beam = int(rng.integers(1, 25))
        exclude = [rng.choice(n_items, size=int(rng.integers(0, n_items)), replace=False) for _ in range(5)]
        cfg = DecodeConfig(alpha=float(rng.uniform()), beam_size=beam, agg=str(rng.choice(["sum", "max"])),
                           mix=str(rng.choice(["prob", "logit"])), state=str(rng.choice(["prefix", "last_token"])),
                           renormalize=bool(rng.integers(2)), kv=str(rng.choice(["shared", "expand"])), batch_size=2)
        res = generate_items(tiny.model, tiny.prompts, tiny.trie, fsm_inputs=(items, scores), cfg=cfg,
                             exclude=exclude, trace=True)
        for u in range(5):
            row = res.items[u].tolist()
            valid = [i for i in row if i >= 0]
            assert row == valid + [-1] * (beam - len(valid))                 # -1 only as tail padding
            assert len(set(valid)) == len(valid) and all(0 <= i < n_items for i in valid)
            assert not set(valid) & set(exclude[u].tolist())
            # no dead ends (exclusion prunes emptied prefixes), so the beam is as full as the items allow
            assert len(valid) == min(beam, n_items - len(exclude[u]))
            for j, i in enumerate(valid):                                    # the search spelled the item
                assert res.trace.tokens[u, j].tolist() == tiny.tokens[i].tolist()
            s = res.scores[u, :len(valid)]
            assert torch.isfinite(s).all() and (s[:-1] >= s[1:]).all()


# -- determinism, batching, errors ------------------------------------------------------------------------------
def test_deterministic_and_batch_invariant(tiny):
    items, scores = gnn_inputs(tiny)
    cfg = DecodeConfig(alpha=0.4, beam_size=8, top_n=5, batch_size=4)
    a = generate_items(tiny.model, tiny.prompts, tiny.trie, fsm_inputs=(items, scores), cfg=cfg)
    b = generate_items(tiny.model, tiny.prompts, tiny.trie, fsm_inputs=(items, scores), cfg=cfg)
    assert torch.equal(a.items, b.items) and torch.equal(a.scores, b.scores)
    one = generate_items(tiny.model, tiny.prompts, tiny.trie, fsm_inputs=(items, scores),
                         cfg=DecodeConfig(alpha=0.4, beam_size=8, top_n=5, batch_size=1, kv="expand"))
    assert torch.equal(a.items, one.items)
    torch.testing.assert_close(a.scores, one.scores, atol=1e-5, rtol=1e-5)


def test_bad_arguments_are_refused(tiny):
    m, p, t = tiny.model, tiny.prompts, tiny.trie
    with pytest.raises(AgrecError, match="k must be in 1..beam_size=4"):
        generate_items(m, p, t, cfg=DecodeConfig(alpha=0.0, beam_size=4), k=5)
    with pytest.raises(AgrecError, match="fsm_inputs"):
        generate_items(m, p, t, cfg=DecodeConfig(alpha=0.2))
    with pytest.raises(AgrecError, match=r"prompts\[1\] is empty"):
        generate_items(m, [p[0], []], t, cfg=DecodeConfig(alpha=0.0))
    with pytest.raises(AgrecError, match=r"prompts\[0\] holds token id 999"):
        generate_items(m, [[999]], t, cfg=DecodeConfig(alpha=0.0))
    with pytest.raises(AgrecError, match="exclude has 1 entries"):
        generate_items(m, p, t, cfg=DecodeConfig(alpha=0.0), exclude=[[1]])
    with pytest.raises(AgrecError, match="were the code tokens added"):
        generate_items(m, p, ItemTrie.build(np.array([[5, 500]])), cfg=DecodeConfig(alpha=0.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(tiny):
    items, scores = gnn_inputs(tiny)
    cfg = DecodeConfig(alpha=0.4, beam_size=8, top_n=5)
    cpu = generate_items(tiny.model, tiny.prompts, tiny.trie, fsm_inputs=(items, scores), cfg=cfg)
    model = tiny.model.to("cuda")
    try:
        gpu = generate_items(model, tiny.prompts, tiny.trie, fsm_inputs=(items, scores), cfg=cfg)
    finally:
        tiny.model.to("cpu")
    assert torch.equal(cpu.items, gpu.items)
    torch.testing.assert_close(cpu.scores, gpu.scores, atol=1e-4, rtol=1e-4)


# -- several runs sharing each batch's prompt encoding -----------------------------------------------------------
def test_multi_runs_equal_separate_decodes_bit_for_bit():
    # One prompt encoding per batch serves every run (the beam tokens of a run are cut off the cache before the
    # next): each result must be the single-run decode exactly, for every kind of setting a table varies, with
    # exclusions, traces, uneven prompt lengths (padding) and a last batch shorter than the others.
    tiny = make_tiny(seed=3, n_users=11)
    rng = np.random.default_rng(1)
    exclude = [rng.choice(tiny.trie.n_items, size=15, replace=False) for _ in tiny.prompts]
    items, scores = gnn_inputs(tiny, n=8, seed=2)
    base = DecodeConfig(alpha=0.0, beam_size=6, top_n=5, batch_size=4)
    settings = [dict(), dict(alpha=0.4), dict(alpha=[0.7, 0.0]), dict(alpha=0.3, top_n=8, tau=2.0),
                dict(alpha=0.5, mix="logit"), dict(alpha=0.5, state="last_token", agg="max"),
                dict(alpha=0.6, alpha_gate="entropy"), dict(alpha=0.2, renormalize=True), dict(alpha=1.0)]
    cfgs = [dataclasses.replace(base, **s) for s in settings]
    runs = [(c, (items, scores) if c.uses_graph else None) for c in cfgs]
    multi = generate_items_multi(tiny.model, tiny.prompts, tiny.trie, runs, exclude=exclude, k=5, trace=True)
    assert len(multi) == len(runs)
    for (cfg, fsm), got in zip(runs, multi):
        ref = generate_items(tiny.model, tiny.prompts, tiny.trie, fsm_inputs=fsm, cfg=cfg, exclude=exclude, k=5,
                             trace=True)
        assert torch.equal(got.items, ref.items), cfg
        assert torch.equal(got.scores, ref.scores), cfg
        for f in ("tokens", "p_llm", "p_hat", "on"):
            assert torch.equal(getattr(got.trace, f), getattr(ref.trace, f)), (cfg, f)
        assert torch.equal(got.trace.p_g.isnan(), ref.trace.p_g.isnan())
    # the runs differ (a test that shares state wrongly would make them all equal the first)
    assert not torch.equal(multi[0].items, multi[1].items)
    # kv="expand" runs encode the prompt themselves and agree too
    expand = [(dataclasses.replace(c, kv="expand"), f) for c, f in runs[:3]]
    for (cfg, fsm), got in zip(expand, generate_items_multi(tiny.model, tiny.prompts, tiny.trie, expand,
                                                             exclude=exclude)):
        ref = generate_items(tiny.model, tiny.prompts, tiny.trie, fsm_inputs=fsm, cfg=cfg, exclude=exclude)
        assert torch.equal(got.items, ref.items) and torch.equal(got.scores, ref.scores)


def test_shared_prefixes_give_the_separate_decodes_rankings_and_scores():
    # decode.share_prefixes: one LM pass per step over the distinct prefixes of all runs' beams. The same
    # settings as above; the logits of a prefix come from a differently shaped batch, so scores agree up to
    # float rounding (the tiny model's peaked distributions keep rankings far from ties).
    tiny = make_tiny(seed=3, n_users=11)
    rng = np.random.default_rng(1)
    exclude = [rng.choice(tiny.trie.n_items, size=15, replace=False) for _ in tiny.prompts]
    items, scores = gnn_inputs(tiny, n=8, seed=2)
    base = DecodeConfig(alpha=0.0, beam_size=6, top_n=5, batch_size=4)
    settings = [dict(), dict(alpha=0.4), dict(alpha=[0.7, 0.0]), dict(alpha=0.3, top_n=8, tau=2.0),
                dict(alpha=0.5, mix="logit"), dict(alpha=0.5, state="last_token", agg="max"),
                dict(alpha=0.6, alpha_gate="entropy"), dict(alpha=0.2, renormalize=True), dict(alpha=1.0)]
    runs = [(dataclasses.replace(base, **s), (items, scores)) for s in settings]
    shared = [(dataclasses.replace(c, share_prefixes=True), f) for c, f in runs]
    got = generate_items_multi(tiny.model, tiny.prompts, tiny.trie, shared, exclude=exclude, k=5, trace=True)
    ref = generate_items_multi(tiny.model, tiny.prompts, tiny.trie, runs, exclude=exclude, k=5, trace=True)
    for (cfg, _), a, b in zip(runs, got, ref, strict=True):
        assert torch.equal(a.items, b.items), cfg
        torch.testing.assert_close(a.scores, b.scores, rtol=1e-5, atol=1e-5)
        assert torch.equal(a.trace.tokens, b.trace.tokens) and torch.equal(a.trace.on, b.trace.on)
        torch.testing.assert_close(a.trace.p_llm, b.trace.p_llm, rtol=1e-5, atol=1e-6)
    # four levels (ancestors carried over two steps) and heavy exclusions (beams die, some users run dry)
    deep = make_tiny(seed=4, sizes=(5, 4, 3, 3), n_items=150, n_users=9)
    ex = [rng.choice(150, size=int(n), replace=False) for n in rng.integers(60, 149, size=9)]
    it, sc = gnn_inputs(deep, n=6, seed=3)
    grid = [(DecodeConfig(alpha=a, beam_size=8, top_n=6, batch_size=4), (it, sc)) for a in (0.0, 0.3, 0.7, 1.0)]
    deep_ref = generate_items_multi(deep.model, deep.prompts, deep.trie, grid, exclude=ex, trace=True)
    deep_got = generate_items_multi(deep.model, deep.prompts, deep.trie,
                               [(dataclasses.replace(c, share_prefixes=True), f) for c, f in grid], exclude=ex,
                               trace=True)
    assert deep.trie.n_levels == 4 and any((r.items < 0).any() for r in deep_ref)  # some users get < 8 items
    for a, b in zip(deep_got, deep_ref, strict=True):
        assert torch.equal(a.items, b.items) and torch.equal(a.trace.tokens, b.trace.tokens)
        torch.testing.assert_close(a.scores, b.scores, rtol=1e-5, atol=1e-5)
    # a single run is the same search too
    one = generate_items(tiny.model, tiny.prompts, tiny.trie, fsm_inputs=(items, scores), cfg=shared[1][0],
                         exclude=exclude, k=5)
    assert torch.equal(one.items, ref[1].items)


def count_queries(model):
    """A forward pre-hook counting the query positions of every LM call after the prompt's (calls with a 4-D
    tree mask)."""
    seen = []

    def hook(module, args, kwargs):
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() == 4:
            seen.append(int(kwargs["input_ids"].numel()))

    return seen, model.register_forward_pre_hook(hook, with_kwargs=True)


def test_shared_prefixes_run_each_distinct_prefix_through_the_lm_once():
    tiny = make_tiny(seed=5, n_users=4)
    cfg = DecodeConfig(alpha=0.0, beam_size=5, batch_size=4)
    # one run, per-run path: every step feeds U x beams queries (each user's 5 beams are 5 distinct prefixes)
    seen, h = count_queries(tiny.model)
    one = generate_items(tiny.model, tiny.prompts, tiny.trie, cfg=cfg)
    h.remove()
    U, L = len(tiny.prompts), tiny.trie.n_levels
    assert seen == [U * 5] * (L - 1)
    # three identical runs sharing prefixes: the LM sees exactly the one run's queries, and all three agree
    same = [(dataclasses.replace(cfg, share_prefixes=True), None)] * 3
    seen, h = count_queries(tiny.model)
    out = generate_items_multi(tiny.model, tiny.prompts, tiny.trie, same)
    h.remove()
    assert seen == [U * 5] * (L - 1)
    assert all(torch.equal(o.items, one.items) for o in out)
    # an alpha grid: fewer queries than runs x beams, at least the largest run's; every prefix at most once
    items, scores = gnn_inputs(tiny, n=5, seed=1)
    grid = [(DecodeConfig(alpha=a, beam_size=5, top_n=5, batch_size=4, share_prefixes=True), (items, scores))
            for a in (0.0, 0.2, 0.5, 1.0)]
    seen, h = count_queries(tiny.model)
    generate_items_multi(tiny.model, tiny.prompts, tiny.trie, grid)
    h.remove()
    assert all(U * 5 <= n < 4 * U * 5 for n in seen), seen


def test_flash_attention_falls_back_to_row_by_row_expanded_decoding_with_share_prefixes():
    from agrec.decode.beam import _prepare_run

    flash = types.SimpleNamespace(config=types.SimpleNamespace(_attn_implementation="flash_attention_2"))
    with pytest.warns(UserWarning, match="flash attention"):
        run = _prepare_run(flash, DecodeConfig(alpha=0.0, share_prefixes=True), None, 3, None)
    assert run.cfg.kv == "expand" and not run.cfg.share_prefixes


def test_share_prefixes_needs_the_shared_cache_and_one_setting_per_pass():
    with pytest.raises(ConfigError, match="share_prefixes .* needs decode.kv='shared'"):
        DecodeConfig(share_prefixes=True, kv="expand")
    tiny = make_tiny(seed=3, n_users=3)
    runs = [(DecodeConfig(alpha=0.0, beam_size=4, share_prefixes=True), None),
            (DecodeConfig(alpha=0.0, beam_size=4), None)]
    with pytest.raises(AgrecError, match="share_prefixes"):
        generate_items_multi(tiny.model, tiny.prompts, tiny.trie, runs)


def test_multi_runs_must_share_batch_size():
    tiny = make_tiny(seed=3, n_users=3)
    runs = [(DecodeConfig(alpha=0.0, beam_size=4, batch_size=2), None),
            (DecodeConfig(alpha=0.0, beam_size=4, batch_size=3), None)]
    with pytest.raises(AgrecError, match="batch_size"):
        generate_items_multi(tiny.model, tiny.prompts, tiny.trie, runs)
    assert generate_items_multi(tiny.model, tiny.prompts, tiny.trie, []) == []


# -- an item-level input embedding (lm.tiny.item_embedding) goes through the cached decode ---------------------
@pytest.mark.parametrize("kv", ["shared", "expand"])
def test_lm_with_item_embedding_scores_each_item_as_teacher_forcing_does(kv):
    from agrec.lm.item_embedding import add_item_embedding

    tiny = make_tiny(seed=3, n_users=4)
    plain = generate_items(tiny.model, tiny.prompts, tiny.trie, cfg=DecodeConfig(alpha=0.0, beam_size=6, kv=kv))
    weight = add_item_embedding(tiny.model, torch.as_tensor(tiny.tokens))
    with torch.no_grad():
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    res = generate_items(tiny.model, tiny.prompts, tiny.trie, cfg=DecodeConfig(alpha=0.0, beam_size=6, kv=kv))
    assert not torch.equal(res.scores, plain.scores)  # the history's item vectors change what the LM says
    # the prompt forward sees every history item's vector; the beam's own steps see none (their item is unknown):
    # each beam's score is the teacher-forced log-probability of its codes after the whole prompt
    for u, prompt in enumerate(tiny.prompts):
        for j in range(6):
            toks = tiny.trie.item_tokens[int(res.items[u, j])].tolist()
            logp = torch.log_softmax(lm_probs(tiny.model, prompt, toks), -1)
            want = sum(float(logp[d, toks[d]]) for d in range(len(toks)))
            assert float(res.scores[u, j]) == pytest.approx(want, rel=1e-4, abs=1e-4)
