"""The trie of all item code sequences, as tensors.

Built once per dataset from the vocabulary ids of every item's codes. A node is a code prefix; node ids are
assigned breadth-first and, within a depth, in lexicographic order of the prefixes, so **the children of a
node are a contiguous run of node ids sorted by token id** (CSR layout: ``first_child`` + ``n_children``).
That keeps the structure O(n_nodes) whatever the vocabulary size, and lets the decoder turn "the beam at node
v" into its candidate continuations with one gather, with no Python callback per token.

Only real items have a leaf, so a search that only follows trie edges can never produce a non-existent item.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from agrec.errors import AgrecError


@dataclass
class ItemTrie:
    """Trie of the item code sequences (all items have the same number of levels).

    Attributes (``N`` = number of nodes, ``n_items``, ``n_levels`` = ``L``):
        item_tokens: ``[n_items, L]`` int64, vocabulary id of each item's code at each level.
        path_nodes: ``[n_items, L + 1]`` int64, node id of each item's prefix of length 0..L (column 0 = root 0).
        node_depth: ``[N]`` int64, prefix length of each node (root 0, leaves L).
        node_token: ``[N]`` int64, the token on the edge into the node (-1 for the root).
        node_parent: ``[N]`` int64, parent node (-1 for the root).
        first_child: ``[N]`` int64, node id of the first child (children are contiguous, sorted by token).
        n_children: ``[N]`` int64, number of children (0 for leaves).
        leaf_item: ``[N]`` int64, the item of a leaf, -1 for inner nodes.
        leaf_count: ``[N]`` int64, number of items under each node.
        max_children: ``[L]`` int64, the largest number of children of a node at each depth 0..L-1.
        code_tokens: ``[n_code_tokens]`` int64, sorted distinct token ids used by any item (the "new tokens").
    """

    item_tokens: torch.Tensor
    path_nodes: torch.Tensor
    node_depth: torch.Tensor
    node_token: torch.Tensor
    node_parent: torch.Tensor
    first_child: torch.Tensor
    n_children: torch.Tensor
    leaf_item: torch.Tensor
    leaf_count: torch.Tensor
    max_children: torch.Tensor
    code_tokens: torch.Tensor

    # -- construction ------------------------------------------------------------------------------------
    @classmethod
    def build(cls, item_token_ids: torch.Tensor | np.ndarray) -> "ItemTrie":
        """Build the trie from ``item_token_ids: [n_items, n_levels]`` (vocabulary ids of each item's codes).

        Raises :class:`AgrecError` for an empty table, a negative id, or two items with the same code sequence
        (the decoder could not tell them apart; the semantic-ID stage guarantees a collision-free table).
        """
        tok = np.asarray(
            torch.as_tensor(item_token_ids).cpu().numpy()
            if isinstance(item_token_ids, torch.Tensor)
            else item_token_ids
        )
        if tok.ndim != 2 or tok.shape[0] == 0 or tok.shape[1] == 0:
            raise AgrecError(f"item_token_ids must be a non-empty [n_items, n_levels] table, got shape {tok.shape}")
        if not np.issubdtype(tok.dtype, np.integer):
            raise AgrecError(f"item_token_ids must hold integer token ids, got dtype {tok.dtype}")
        tok = tok.astype(np.int64)
        if (tok < 0).any():
            i, lvl = map(int, np.argwhere(tok < 0)[0])
            raise AgrecError(f"item_token_ids: item {i} has a negative token id at level {lvl}")
        n_items, L = tok.shape

        # Sort items lexicographically (np.lexsort sorts by the last key first).
        order = np.lexsort(tok[:, ::-1].T)
        srt = tok[order]
        same_as_prev = np.ones((n_items, L + 1), dtype=bool)  # prefix of length t equal to the previous row's
        if n_items > 1:
            eq = srt[1:] == srt[:-1]  # [n_items-1, L]
            same_as_prev[1:, 1:] = np.cumprod(eq, axis=1).astype(bool)
        same_as_prev[0, 1:] = False
        if n_items > 1 and same_as_prev[1:, L].any():
            r = int(np.argmax(same_as_prev[1:, L])) + 1
            a, b = sorted((int(order[r - 1]), int(order[r])))
            raise AgrecError(
                f"item_token_ids: items {a} and {b} have the same code sequence {tok[a].tolist()}; "
                "the trie needs a collision-free code table"
            )

        # Node ids: root 0, then each depth's distinct prefixes in lexicographic order.
        path_sorted = np.zeros((n_items, L + 1), dtype=np.int64)
        offset = 1
        depth_start = [0]
        for t in range(1, L + 1):
            local = np.cumsum(~same_as_prev[:, t]) - 1  # 0-based rank of the prefix among depth-t prefixes
            path_sorted[:, t] = offset + local
            depth_start.append(offset)
            offset += int(local[-1]) + 1
        n_nodes = offset
        path_nodes = np.empty_like(path_sorted)
        path_nodes[order] = path_sorted

        node_depth = np.zeros(n_nodes, dtype=np.int64)
        node_token = np.full(n_nodes, -1, dtype=np.int64)
        node_parent = np.full(n_nodes, -1, dtype=np.int64)
        leaf_item = np.full(n_nodes, -1, dtype=np.int64)
        leaf_count = np.zeros(n_nodes, dtype=np.int64)
        for t in range(1, L + 1):
            nodes = path_nodes[:, t]
            node_depth[nodes] = t
            node_token[nodes] = tok[:, t - 1]
            node_parent[nodes] = path_nodes[:, t - 1]
        for t in range(L + 1):
            np.add.at(leaf_count, path_nodes[:, t], 1)
        leaf_item[path_nodes[:, L]] = np.arange(n_items)

        n_children = np.bincount(node_parent[1:], minlength=n_nodes).astype(np.int64)
        first_child = np.full(n_nodes, n_nodes, dtype=np.int64)  # n_nodes = "no child" sentinel
        np.minimum.at(first_child, node_parent[1:], np.arange(1, n_nodes))
        first_child[n_children == 0] = 0
        max_children = np.array([int(n_children[node_depth == t].max()) for t in range(L)], dtype=np.int64)

        as_t = torch.from_numpy
        return cls(
            item_tokens=as_t(tok),
            path_nodes=as_t(path_nodes),
            node_depth=as_t(node_depth),
            node_token=as_t(node_token),
            node_parent=as_t(node_parent),
            first_child=as_t(first_child),
            n_children=as_t(n_children),
            leaf_item=as_t(leaf_item),
            leaf_count=as_t(leaf_count),
            max_children=as_t(max_children),
            code_tokens=torch.unique(as_t(tok)),
        )

    @classmethod
    def from_code_table(cls, table, tokenizer) -> "ItemTrie":
        """Build the trie of a :class:`~agrec.semantic_ids.codes.CodeTable` whose code tokens (``<a_35>`` …) are
        in ``tokenizer``'s vocabulary (anything with ``convert_tokens_to_ids``, or a ``{token: id}`` mapping)."""
        tokens = [table.item_tokens(i) for i in range(table.n_items)]
        flat = [t for row in tokens for t in row]
        if hasattr(tokenizer, "convert_tokens_to_ids"):
            ids = tokenizer.convert_tokens_to_ids(flat)
            unk = getattr(tokenizer, "unk_token_id", None)
        else:
            ids, unk = [tokenizer.get(t) for t in flat], None
        missing = [t for t, i in zip(flat, ids, strict=True) if i is None or (unk is not None and i == unk)]
        if missing:
            raise AgrecError(
                f"code token {missing[0]!r} is not in the tokenizer's vocabulary "
                f"({len(set(missing))} code tokens missing): add the code tokens first"
            )
        return cls.build(np.asarray(ids, dtype=np.int64).reshape(table.n_items, table.n_levels))

    # -- properties ----------------------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return int(self.item_tokens.shape[0])

    @property
    def n_levels(self) -> int:
        return int(self.item_tokens.shape[1])

    @property
    def n_nodes(self) -> int:
        return int(self.node_depth.shape[0])

    @property
    def device(self) -> torch.device:
        return self.item_tokens.device

    def to(self, device: torch.device | str) -> "ItemTrie":
        """A copy with every tensor on ``device`` (self if already there)."""
        device = torch.device(device)
        if self.device == device:
            return self
        return ItemTrie(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    # -- queries -------------------------------------------------------------------------------------------
    def children(self, nodes: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Candidate continuations of the prefixes ``nodes`` (any shape ``S``).

        Returns ``(child_nodes, child_tokens, valid)``, each ``[*S, width]``: the first ``width`` children of
        each node in token order (``width`` >= the node's number of children, e.g. ``max_children[depth]``);
        ``valid`` is False for the padding slots, where node and token are 0 and must be ignored.
        """
        k = torch.arange(width, device=nodes.device)
        valid = k < self.n_children[nodes].unsqueeze(-1)
        child = torch.where(valid, self.first_child[nodes].unsqueeze(-1) + k, 0)
        return child, torch.where(valid, self.node_token[child], 0), valid

    def node_of(self, prefix: list[int] | tuple[int, ...]) -> int:
        """The node id of a token prefix, or -1 if no item starts with it (a slow, per-prefix helper for tests,
        notebooks and Hugging Face's ``prefix_allowed_tokens_fn``)."""
        node = 0
        for tok in prefix:
            lo, n = int(self.first_child[node]), int(self.n_children[node])
            toks = self.node_token[lo : lo + n].tolist()
            if int(tok) not in toks:
                return -1
            node = lo + toks.index(int(tok))
        return node

    def allowed_tokens(self, prefix: list[int] | tuple[int, ...]) -> list[int]:
        """Token ids that extend ``prefix`` towards a real item ([] when ``prefix`` is complete or not in the trie)."""
        node = self.node_of(prefix)
        if node < 0:
            return []
        lo, n = int(self.first_child[node]), int(self.n_children[node])
        return self.node_token[lo : lo + n].tolist()

    def remaining_counts(self, exclude: list[torch.Tensor | np.ndarray | list[int] | None]) -> torch.Tensor:
        """Items still reachable under each node once each user's ``exclude`` items are removed.

        Args:
            exclude: one array of item ids per user (None or empty: nothing excluded).
        Returns:
            ``[n_users, N]`` int64 on the trie's device; a node with count 0 is a dead end for that user.
        """
        n_users = len(exclude)
        counts = self.leaf_count.unsqueeze(0).repeat(n_users, 1)
        rows, items = [], []
        for u, ex in enumerate(exclude):
            if ex is None or len(ex) == 0:
                continue
            ex_t = torch.unique(torch.as_tensor(np.asarray(ex), dtype=torch.int64))
            if ex_t.min() < 0 or ex_t.max() >= self.n_items:
                bad = int(ex_t[(ex_t < 0) | (ex_t >= self.n_items)][0])
                raise AgrecError(f"exclude[{u}]: item {bad} is not an item id (0..{self.n_items - 1})")
            rows.append(torch.full_like(ex_t, u))
            items.append(ex_t)
        if rows:
            r = torch.cat(rows).to(self.device)
            nodes = self.path_nodes[torch.cat(items).to(self.device)]  # [n_ex, L+1]
            counts.index_put_(
                (r.unsqueeze(1).expand_as(nodes).reshape(-1), nodes.reshape(-1)),
                torch.full((nodes.numel(),), -1, dtype=torch.int64, device=self.device),
                accumulate=True,
            )
        return counts
