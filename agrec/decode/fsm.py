"""The rankable FSM (paper §4.2, docs/design.md §3): the GNN's top-n items of each user as a token-level automaton.

Plain data in the style of outlines' guides: tensors for a batch of ``U`` users plus the methods
``initial_state / next_state / allowed / weights / is_final``; the beam search is a thin adapter over them.

States are code prefixes of the user's top-n items. A state is stored as an integer ``depth * n + r`` where
``r`` is the first top-n item (in the given order) whose prefix is that state, so states of a user are a fixed,
small range ``[0, (L + 1) * n)`` and the root is ``0``. ``-1`` means "off the FSM".

In a state the available tokens are the next codes of the items under it. With item weights
``w = softmax(top_scores / tau)`` a token's weight is the sum (``agg="sum"``, default) or the max (``agg="max"``,
the authors' released code) of the ``w`` of the items through it, normalised over the state's tokens to give
``p_G``; every other token gets ``floor`` (1e-5 in the paper). With ``"sum"`` the product of ``p_G`` along an
item's path is its ``w``: the FSM factorises the GNN's top-n distribution exactly.

``state="last_token"`` reproduces the released code (WangXFng/AGRec ``LightGCN_embeddings.py`` keys the
per-user table by the previous token only, ``model/modeling_trie.py`` looks it up with the last input id): the
state at depth ``t`` is "all top-n items whose code at level ``t-1`` is the last token", whatever came before,
so prefixes that share a token are mixed up, and a beam that left the FSM can re-enter it.

For ``mix="logit"`` (released code) each edge also carries ``g``: the aggregate of the raw top-n scores
(``/ tau``) of the items through it; with ``agg="max"`` it is ``max(floor, max score)`` as the released code
initialises its table to 1e-5 and keeps the maximum.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import torch

from agrec.decode.trie import ItemTrie
from agrec.errors import AgrecError

OFF = -1


@dataclass
class RankableFSM:
    """Per-user FSMs for a batch of ``U`` users, each from ``n`` top items over ``L`` code levels.

    Attributes:
        item_tokens: ``[U, n, L]`` token ids of the top-n items' codes (-1 for padding items).
        valid: ``[U, n]`` bool, False for padding items (a user with fewer than n candidates).
        weight: ``[U, n]`` item weights ``w = softmax(score / tau)`` (0 for padding).
        state_of: ``[U, L + 1, n]`` the state of item ``i``'s prefix of length ``t`` (-2 for padding items).
        edge_p: ``[U, L, n]`` ``p_G`` of item ``i``'s next token in its depth-``t`` state.
        edge_g: ``[U, L, n]`` the graph logit ``g`` of that edge (``mix="logit"``).
        edge_rep: ``[U, L, n]`` True for the first item of each (state, token) edge.
        floor: probability of a token that is not an edge of the state.
        state_mode: ``"prefix"`` or ``"last_token"``.
    """

    item_tokens: torch.Tensor
    valid: torch.Tensor
    weight: torch.Tensor
    state_of: torch.Tensor
    edge_p: torch.Tensor
    edge_g: torch.Tensor
    edge_rep: torch.Tensor
    floor: float = 1e-5
    state_mode: Literal["prefix", "last_token"] = "prefix"

    # -- construction ------------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        trie: ItemTrie,
        top_items: torch.Tensor,
        top_scores: torch.Tensor,
        *,
        tau: float = 1.0,
        agg: Literal["sum", "max"] = "sum",
        state: Literal["prefix", "last_token"] = "prefix",
        floor: float = 1e-5,
    ) -> "RankableFSM":
        """Build the FSMs of ``U`` users from their GNN top-n items.

        Args:
            trie: the item trie (gives the items' code tokens and prefix ids).
            top_items: ``[U, n]`` item ids, best first is customary but not required; -1 pads a short list.
            top_scores: ``[U, n]`` the GNN scores ``R(u, v)`` of those items (ignored where items are -1).
        """
        if agg not in ("sum", "max"):
            raise AgrecError(f"agg must be 'sum' or 'max', got {agg!r}")
        if state not in ("prefix", "last_token"):
            raise AgrecError(f"state must be 'prefix' or 'last_token', got {state!r}")
        if not tau > 0:
            raise AgrecError(f"tau must be > 0, got {tau}")
        dev = trie.device
        items = torch.as_tensor(top_items, device=dev).long()
        scores = torch.as_tensor(top_scores, device=dev).float()
        if items.ndim != 2 or scores.shape != items.shape:
            raise AgrecError(
                f"top_items and top_scores must both be [n_users, n]; got {tuple(items.shape)} "
                f"and {tuple(scores.shape)}"
            )
        U, n = items.shape
        L = trie.n_levels
        valid = items >= 0
        if (items >= trie.n_items).any():
            u, i = (items >= trie.n_items).nonzero()[0].tolist()
            raise AgrecError(f"top_items[{u}, {i}] = {int(items[u, i])} is not an item id (0..{trie.n_items - 1})")
        if (items < -1).any():
            u, i = (items < -1).nonzero()[0].tolist()
            raise AgrecError(f"top_items[{u}, {i}] = {int(items[u, i])}: use -1 to pad, item ids are >= 0")
        same = (items.unsqueeze(2) == items.unsqueeze(1)) & valid.unsqueeze(2)
        dup = same.sum(-1) > 1
        if dup.any():
            u, i = dup.nonzero()[0].tolist()
            raise AgrecError(f"top_items[{u}] lists item {int(items[u, i])} twice")
        if (~torch.isfinite(scores) & valid).any():
            u, i = (~torch.isfinite(scores) & valid).nonzero()[0].tolist()
            raise AgrecError(f"top_scores[{u}, {i}] is not finite ({float(scores[u, i])})")

        safe = items.clamp(min=0)
        tokens = torch.where(valid.unsqueeze(-1), trie.item_tokens[safe], -1)  # [U, n, L]
        idx = torch.arange(n, device=dev)
        # State keys per depth: the trie node of the prefix (prefix mode) or the last token (last_token mode).
        if state == "prefix":
            keys = trie.path_nodes[safe]  # [U, n, L+1]
        else:
            keys = torch.cat([torch.zeros_like(tokens[..., :1]), tokens], dim=-1)  # [U, n, L+1]
        keys = torch.where(valid.unsqueeze(-1), keys, -2 - idx.view(1, n, 1))  # padding never shares a key
        keys = keys.transpose(1, 2)  # [U, L+1, n]
        same_state = keys.unsqueeze(-1) == keys.unsqueeze(-2)  # [U, L+1, n, n]
        first = same_state.int().argmax(-1)  # first j, same state
        depth = torch.arange(L + 1, device=dev).view(1, L + 1, 1)
        state_of = torch.where(valid.unsqueeze(1), depth * n + first, -2)

        w = torch.softmax(torch.where(valid, scores / tau, float("-inf")), dim=-1)
        w = torch.where(valid, w, 0.0)
        w = torch.nan_to_num(w, nan=0.0)  # a user with no valid item

        tok_t = tokens.transpose(1, 2)  # [U, L, n]
        st = state_of[:, :L]  # [U, L, n]
        in_same_state = (st.unsqueeze(-1) == st.unsqueeze(-2)) & valid.view(U, 1, 1, n)  # [U, L, n, n]
        same_edge = in_same_state & (tok_t.unsqueeze(-1) == tok_t.unsqueeze(-2))  # [U, L, n, n]
        edge_rep = (same_edge.int().argmax(-1) == idx) & valid.unsqueeze(1)  # [U, L, n]
        w_j = w.view(U, 1, 1, n)
        if agg == "sum":
            edge_w = (same_edge * w_j).sum(-1)
        else:
            edge_w = torch.where(same_edge, w_j, 0.0).amax(-1)
        total = (in_same_state & edge_rep.unsqueeze(2)).float() @ edge_w.unsqueeze(-1)  # [U, L, n, 1]
        edge_p = torch.where(valid.unsqueeze(1), edge_w / total.squeeze(-1).clamp_min(1e-30), 0.0)

        s_j = torch.where(valid, scores / tau, 0.0).view(U, 1, 1, n)
        if agg == "sum":
            edge_g = (same_edge * s_j).sum(-1)
        else:
            edge_g = torch.where(same_edge, s_j, float("-inf")).amax(-1).clamp_min(floor)
        edge_g = torch.where(valid.unsqueeze(1), edge_g, 0.0)
        return cls(
            item_tokens=tokens,
            valid=valid,
            weight=w,
            state_of=state_of,
            edge_p=edge_p,
            edge_g=edge_g,
            edge_rep=edge_rep,
            floor=float(floor),
            state_mode=state,
        )

    # -- properties ----------------------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return int(self.item_tokens.shape[0])

    @property
    def top_n(self) -> int:
        return int(self.item_tokens.shape[1])

    @property
    def n_levels(self) -> int:
        return int(self.item_tokens.shape[2])

    def to(self, device: torch.device | str) -> "RankableFSM":
        return RankableFSM(
            **{  # type: ignore[arg-type]  # each field keeps its own type; the dict's value type is their union
                f.name: (v.to(device) if isinstance(v := getattr(self, f.name), torch.Tensor) else v)
                for f in fields(self)
            }
        )

    def select(self, users: torch.Tensor | list[int]) -> "RankableFSM":
        """The FSMs of a subset of users (rows of this batch)."""
        idx = torch.as_tensor(users, device=self.item_tokens.device).long()
        return RankableFSM(
            **{f.name: (v[idx] if isinstance(v := getattr(self, f.name), torch.Tensor) else v) for f in fields(self)}  # type: ignore[arg-type]
        )

    # -- the guide interface (all batched: leading dimension = the FSM's users) ------------------------------
    def initial_state(self, n_beams: int = 1) -> torch.Tensor:
        """``[U, n_beams]`` the root state 0 (the empty prefix is a prefix of every top-n item)."""
        return torch.zeros(self.n_users, n_beams, dtype=torch.int64, device=self.item_tokens.device)

    def is_final(self, state: torch.Tensor) -> torch.Tensor:
        """True for states that are a complete item (depth ``L``)."""
        return (state >= 0) & (state // self.top_n == self.n_levels)

    def _in_state(self, state: torch.Tensor, depth: int) -> torch.Tensor:
        """``[U, M, n]``: item ``i`` passes through the beam's state ``[U, M]`` at ``depth``."""
        return self.state_of[:, depth].unsqueeze(1) == state.unsqueeze(-1)

    def allowed(self, state: torch.Tensor, depth: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The edges out of each state ``[U, M]`` at ``depth``.

        Returns ``(tokens, p_G, g)``, each ``[U, M, n]``: one slot per top-n item, holding its next token where
        the item is the first of its edge in that state, and -1 / 0 elsewhere (an off state has no edges).
        """
        _check_depth(depth, self.n_levels)
        ok = self._in_state(state, depth) & self.edge_rep[:, depth].unsqueeze(1)
        tokens = torch.where(ok, self.item_tokens[:, :, depth].unsqueeze(1), -1)
        return (
            tokens,
            torch.where(ok, self.edge_p[:, depth].unsqueeze(1), 0.0),
            torch.where(ok, self.edge_g[:, depth].unsqueeze(1), 0.0),
        )

    def _lookup(self, state: torch.Tensor, depth: int, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For candidate ``tokens [U, M, C]`` of beams in ``state [U, M]``: (is an edge ``[U, M, C]``, the
        index of an item on that edge ``[U, M, C]``)."""
        _check_depth(depth, self.n_levels)
        in_state = self._in_state(state, depth)  # [U, M, n]
        tok = self.item_tokens[:, :, depth]  # [U, n]
        hit = (tokens.unsqueeze(-1) == tok.view(tok.shape[0], 1, 1, -1)) & in_state.unsqueeze(2)
        return hit.any(-1), hit.int().argmax(-1)

    def weights(self, state: torch.Tensor, depth: int, tokens: torch.Tensor) -> torch.Tensor:
        """``p_G [U, M, C]`` of candidate ``tokens [U, M, C]`` for beams in ``state [U, M]`` at ``depth``: the
        normalised edge weight for the state's tokens, ``floor`` for every other token and for off states."""
        hit, item = self._lookup(state, depth, tokens)
        p = self.edge_p[:, depth].gather(1, item.flatten(1)).view_as(item)
        return torch.where(hit, p, self.floor)

    def graph_logits(self, state: torch.Tensor, depth: int, tokens: torch.Tensor) -> torch.Tensor:
        """``g [U, M, C]`` for ``mix="logit"``: the edge's aggregated score, ``floor`` elsewhere (released code)."""
        hit, item = self._lookup(state, depth, tokens)
        g = self.edge_g[:, depth].gather(1, item.flatten(1)).view_as(item)
        return torch.where(hit, g, self.floor)

    def next_state(self, state: torch.Tensor, depth: int, token: torch.Tensor) -> torch.Tensor:
        """The state ``[U, M]`` after emitting ``token [U, M]`` from ``state [U, M]`` at ``depth`` (prefix length
        before the token); ``OFF`` (-1) when the new prefix is no top-n item's prefix. Off is absorbing in prefix
        mode; in last_token mode the state depends on the token alone, as in the released code."""
        _check_depth(depth, self.n_levels)
        tok = self.item_tokens[:, :, depth].unsqueeze(1)  # [U, 1, n]
        hit = tok == token.unsqueeze(-1)  # [U, M, n]
        if self.state_mode == "prefix":
            hit = hit & self._in_state(state, depth)
        hit = hit & self.valid.unsqueeze(1)
        nxt = self.state_of[:, depth + 1].gather(1, hit.int().argmax(-1))
        return torch.where(hit.any(-1), nxt, OFF)

    # -- inspection ----------------------------------------------------------------------------------------
    def distribution(self, user: int, prefix: list[int]) -> dict[int, float] | None:
        """``{token: p_G}`` of the state reached by ``prefix`` (token ids) for one user, or None when the prefix
        is off the FSM: a slow helper for tests, notebooks and case studies."""
        s = torch.zeros(1, 1, dtype=torch.int64, device=self.item_tokens.device)
        fsm = self.select([user])
        for depth, tok in enumerate(prefix):
            s = fsm.next_state(s, depth, torch.tensor([[int(tok)]], device=s.device))
        if int(s) == OFF:
            return None
        tokens, p, _ = fsm.allowed(s, len(prefix))
        keep = tokens[0, 0] >= 0
        return {int(t): float(v) for t, v in zip(tokens[0, 0][keep], p[0, 0][keep], strict=True)}


def _check_depth(depth: int, n_levels: int) -> None:
    if not 0 <= depth < n_levels:
        raise AgrecError(f"depth must be in 0..{n_levels - 1} (a prefix shorter than an item), got {depth}")
