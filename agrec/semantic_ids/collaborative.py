"""Collaborative item embeddings: items described by who consumes them, for codes quantised from behaviour.

The paper's semantic IDs come from item text, so one code prefix holds items with similar descriptions, whether
or not the same users take them. A generative recommender must then spell out, token by token, a next item whose
first token says little about what the history predicts. Quantising an embedding of the interactions instead
puts items that share users under one prefix: the idea of collaborative indexing (Hua et al. 2023, "How to Index
Item IDs for Recommendation Foundation Models") and of LETTER's collaborative regulariser (Wang et al. 2024).
It is also the only route to learned codes for a dataset with neither item text nor given codes.

The embedding is a rank-``dim`` truncated SVD of LightGCN's normalised interaction matrix
``R̃ = D_u^{-1/2} R D_i^{-1/2}`` (:meth:`agrec.gnn.graph.InteractionGraph.normalized_edges`), built from the
training prefixes of the leave-one-out split only: no validation or test item is ever an interaction, so codes
built from it leak nothing the models could not see. An item's vector is its row of ``V Σ``: inner products of
these vectors approximate ``R̃ᵀ R̃``, the degree-normalised co-occurrence of items. Items with no training
interaction get the zero vector.
"""

from __future__ import annotations

import numpy as np

from agrec.data.split import LeaveOneOutSplit
from agrec.errors import ConfigError, DataError
from agrec.gnn.graph import InteractionGraph


def collaborative_embeddings(
    split: LeaveOneOutSplit, n_items: int, dim: int, seed: int, normalize: bool = True
) -> np.ndarray:
    """Item vectors from the training interactions, shape ``[n_items, dim]`` (float32).

    Args:
        split: the leave-one-out split; only ``split.train`` is read (repeated interactions count once).
        n_items: catalogue size (items that never occur in training get zero rows).
        dim: rank of the truncated SVD; must be below ``min(n_users, n_items)``.
        seed: the randomised SVD's seed (the same seed gives the same vectors on the same machine).
        normalize: L2-normalise each non-zero row (the quantiser then works in cosine geometry).
    """
    import scipy.sparse as sp
    from sklearn.utils.extmath import randomized_svd

    if dim < 1:
        raise ConfigError(f"semantic_ids.collaborative_dim must be >= 1, got {dim}")
    n_users = split.n_users
    if dim >= min(n_users, n_items):
        raise DataError(
            f"semantic_ids.collaborative_dim = {dim} needs more than {dim} users and items "
            f"(the training interactions have {n_users} users and {n_items} items)"
        )
    graph = InteractionGraph.from_split(split, n_items, "valid")  # the training prefixes, repeats merged
    if graph.n_edges == 0:
        raise DataError("no training interactions: a collaborative embedding needs some")
    users, items, w = graph.normalized_edges()
    r = sp.csr_matrix((w, (users, items)), shape=(n_users, n_items))
    # n_iter 7: sklearn's own choice for a rank this small relative to the matrix; the power iterations make
    # the leading singular vectors accurate, and the seed fixes the random start.
    _, s, vt = randomized_svd(r, n_components=dim, n_iter=7, random_state=seed)
    emb = vt.T * s  # [n_items, dim]
    if normalize:
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)
    return emb.astype(np.float32)
