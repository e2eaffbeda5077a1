"""A tiny synthetic LC-Rec dataset in the shape of the authors' public Amazon folders: ``X.inter.json`` +
``X.index.json`` and no item text (what WangXFng/AGRec ships for Instruments, Games and Beauty).

Structure the pipeline can learn from, at CI size: 4 item clusters of 12 items; each user walks forward
through one cluster (with a few detours), so both the next item (sequence) and the co-occurrence (graph)
carry signal. The codes have the authors' 4 levels: level a = cluster, b/c = position inside the cluster,
d = 0, and three pairs of items share their full code tuple (the de-duplication level must separate them).
Item ids are JSON integers in ``inter`` and strings in ``index``, as in the authors' files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

N_CLUSTERS, CLUSTER_SIZE = 4, 12
N_ITEMS = N_CLUSTERS * CLUSTER_SIZE
COLLIDING = {13: 12, 25: 24, 37: 36}   # item -> the item whose codes it copies


def item_codes(item: int) -> list[str]:
    """The four code tokens of ``item`` (before the copies of :data:`COLLIDING`)."""
    cluster, pos = divmod(item, CLUSTER_SIZE)
    return [f"<a_{cluster}>", f"<b_{pos // 4}>", f"<c_{pos % 4}>", "<d_0>"]


def index_only_data(n_users: int = 120, seed: int = 0) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """``(inter, index)``: ``{user: [item, ...]}`` with 5..10 items per user, ``{item: [4 tokens]}``."""
    rng = np.random.default_rng(seed)
    inter: dict[str, list[int]] = {}
    for u in range(n_users):
        cluster = u % N_CLUSTERS
        length = int(rng.integers(5, 11))
        start = int(rng.integers(0, CLUSTER_SIZE))
        seq: list[int] = []
        pos = start
        while len(seq) < length:
            item = cluster * CLUSTER_SIZE + pos % CLUSTER_SIZE
            if rng.random() < 0.15:                      # a detour into another cluster
                item = int(rng.integers(0, N_ITEMS))
            if item not in seq:
                seq.append(item)
            pos += 1
        inter[str(u)] = seq
    index = {str(i): item_codes(COLLIDING.get(i, i)) for i in range(N_ITEMS)}
    return inter, index


def write_index_only(folder: Path, name: str = "Synth", n_users: int = 120, seed: int = 0) -> Path:
    """Write ``<name>.inter.json`` and ``<name>.index.json`` into ``folder`` (created); returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    inter, index = index_only_data(n_users, seed)
    (folder / f"{name}.inter.json").write_text(json.dumps(inter), encoding="utf-8")
    (folder / f"{name}.index.json").write_text(json.dumps(index), encoding="utf-8")
    return folder
