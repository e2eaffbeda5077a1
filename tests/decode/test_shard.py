"""Sharded decoding (agrec.decode.shard): shards are whole batches of the single-process decode, and the
decode stage's work on 2 gloo processes writes byte for byte the files of 1 process."""

import json
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from agrec.data.split import LeaveOneOutSplit
from agrec.decode.beam import DecodeResult
from agrec.decode.config import DecodeConfig, EvalConfig
from agrec.decode.evaluate import EvalInputs, scorer_rankings, subset
from agrec.decode.shard import SINGLE, gather_rows, length_order, shard_blocks, shard_positions
from agrec.decode.stage import decode_table, slug
from agrec.lm.distributed import DistEnv
from tests.decode.tiny_lm import BOS, make_tiny

N_USERS, N_ITEMS = 22, 120


def test_shards_are_contiguous_ranges_of_the_single_process_batches():
    prompts = [[1] * n for n in (3, 5, 5, 2, 7, 3, 5)]
    assert length_order(prompts) == [4, 1, 2, 6, 0, 5, 3]          # longest first, ties by position
    # 4 batches of 2: [4, 1] [2, 6] [0, 5] [3] -> rank 0 the first two, rank 1 the last two
    assert shard_positions(prompts, 2, 0, 2).tolist() == [4, 1, 2, 6]
    assert shard_positions(prompts, 2, 1, 2).tolist() == [0, 5, 3]
    assert shard_positions(prompts, 2, 0, 1).tolist() == [4, 1, 2, 6, 0, 5, 3]
    # 3 processes over 4 batches: 1 + 1 + 2 batches; a process without a batch gets nothing
    assert [shard_positions(prompts, 2, r, 3).tolist() for r in range(3)] == [[4, 1], [2, 6], [0, 5, 3]]
    assert shard_positions(prompts, 8, 0, 2).tolist() == [] and len(shard_positions(prompts, 8, 1, 2)) == 7
    assert list(shard_blocks(10, 3, 0, 2)) == [0, 3] and list(shard_blocks(10, 3, 1, 2)) == [6, 9]
    assert list(shard_blocks(10, 3, 0, 1)) == [0, 3, 6, 9]


def test_gather_rows_puts_rows_back_in_position_order():
    items, scores = torch.tensor([[5, 6], [7, -1]]), torch.tensor([[-1.0, -2.0], [-0.5, float("-inf")]])
    out_items, out_scores = gather_rows(SINGLE, np.array([2, 0]), items, scores, 3)
    assert out_items.tolist() == [[7, -1], [-1, -1], [5, 6]]
    assert out_scores.tolist() == [[-0.5, float("-inf")], [float("-inf"), float("-inf")], [-1.0, -2.0]]
    same = gather_rows(SINGLE, np.arange(2), items, scores, 2)
    assert same[0] is items and same[1] is scores


class TableScorer:
    """Seeded random scores per target (a stand-in for a GNN / SASRec)."""

    def __init__(self, seed):
        g = torch.Generator().manual_seed(seed)
        self.tables = {t: torch.randn(N_USERS, N_ITEMS, generator=g) for t in ("valid", "test")}

    def score_users(self, users, target):
        return self.tables[target][torch.as_tensor(np.asarray(users, dtype=np.int64))]


def _setup():
    torch.set_num_threads(1)
    tiny = make_tiny(seed=3, n_items=N_ITEMS, n_users=1)
    rng = np.random.default_rng(5)
    seqs = [rng.choice(N_ITEMS, size=int(rng.integers(3, 9)), replace=False) for _ in range(N_USERS)]
    split = LeaveOneOutSplit(train=[s[:-2] for s in seqs], valid=np.array([s[-2] for s in seqs]),
                             test=np.array([s[-1] for s in seqs]))
    prompt = lambda h: [BOS] + tiny.tokens[np.asarray(h, dtype=np.int64)].reshape(-1).tolist()  # noqa: E731
    scorers = {"lightgcn": TableScorer(1), "sgl": TableScorer(2)}
    return tiny, split, prompt, scorers


def _decode(folder: Path, env: DistEnv, **ev_kw):
    tiny, split, prompt, scorers = _setup()
    ev = EvalConfig(alpha_grid=[0.0, 0.5, 1.0], scorer="lightgcn", scorers=["lightgcn", "sgl"], **ev_kw)
    dec = DecodeConfig(beam_size=6, top_n=4, batch_size=4)
    return decode_table(tiny.model, tiny.trie, 0, split, prompt, scorers, dec, ev, folder, seed=11, env=env,
                        log=lambda m: None)


def _worker(rank: int, world: int, folder: str, init: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        _decode(Path(folder), DistEnv(rank=rank, world=world))
    finally:
        dist.destroy_process_group()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.npz"))}


def _results(folder: Path) -> dict:
    d = json.loads((folder / "results.json").read_text())
    d.pop("seconds")
    return d


def test_two_processes_write_byte_identical_rankings_and_results(tmp_path):
    one = tmp_path / "one"
    _decode(one, SINGLE)
    two = tmp_path / "two"
    mp.spawn(_worker, args=(2, str(two), str(tmp_path / "init")), nprocs=2, join=True)
    files = _files(one)
    both = ["w_o_graph", "0_5_1", "1_1", "1_lightgcn", "agrec_lightgcn", "agrec_sgl", "agrec_selected",
            "gnn_only_lightgcn", "gnn_only_sgl", "released_code_mix_logit", "released_code_state_last_token",
            "released_code_logit_last_token_max",
            "agrec_sgl_1_1"]   # sgl's curve: its chosen point (α = 1 on this data) is decoded on test too
    want = {f"rankings/{r}__{t}.npz" for r in both for t in ("valid", "test")} | {"rankings/agrec_sgl_0_5_1__valid.npz"}
    assert set(files) == want
    assert json.loads((one / "results.json").read_text())["scorer_curves"]["sgl"][2]["alpha"] == 1.0
    assert _files(two) == files
    assert _results(two) == _results(one)


def test_scorer_rankings_on_a_shard_are_the_single_process_ones():
    _, split, prompt, scorers = _setup()
    users = np.arange(N_USERS)
    inputs = {"valid": EvalInputs(users=users, prompts=[[1]] * N_USERS, exclude=None, targets=split.valid)}
    full = scorer_rankings(scorers["sgl"], inputs, 5, batch_size=4)["valid"]
    pos = np.array([7, 3, 20])
    part = subset(inputs["valid"], pos)
    assert part.users.tolist() == [7, 3, 20] and part.targets.tolist() == split.valid[pos].tolist()
    assert torch.equal(full.items[pos], torch.topk(scorers["sgl"].tables["valid"][pos], 5).indices)
    assert isinstance(full, DecodeResult)


def test_validation_subsample_and_test_only_where_the_table_needs_it(tmp_path):
    full = _decode(tmp_path / "full", SINGLE)
    part = _decode(tmp_path / "part", SINGLE, select_users=9, test_curve=False)
    assert part.n_valid_users == 9 and full.n_valid_users is None
    valid = np.load(tmp_path / "part" / "rankings" / "w_o_graph__valid.npz")
    assert valid["users"].tolist() == sorted(np.random.default_rng(11).choice(N_USERS, 9, replace=False).tolist())
    chosen = (part.chosen["alpha"], part.chosen["tau"])
    # test metrics at α = 0 (w/o Graph), the chosen α and α = 1 only, unless the main row is the selected one,
    # whose whole grid is decoded on test for its selection regret; the rest of the curve is validation-only
    regret_curve = part.selected["source"] == "AGRec (lightgcn)"
    for p in part.curve:
        assert (p["test"] is not None) == (regret_curve or (p["alpha"], p["tau"]) in {(0.0, 1.0), chosen, (1.0, 1.0)})
    # the table's test column does not depend on either option
    assert [r["metrics"]["test"] for r in part.rows] == [r["metrics"]["test"] for r in full.rows]
    frame = part.curve_frame()
    assert set(frame[frame["target"] == "test"]["alpha"]) == ({0.0, 0.5, 1.0} if regret_curve else {0.0, chosen[0], 1.0})
    saved = {p.name for p in (tmp_path / "part" / "rankings").iterdir()}
    assert {"0_5_1__valid.npz", "agrec_lightgcn__test.npz", "1_lightgcn__test.npz"} <= saved
    if chosen[0] != 0.5 and not regret_curve:
        assert "0_5_1__test.npz" not in saved
    # the sgl row's grid: validation only, but for its chosen point (and all of it when sgl's row is selected)
    sgl_test = {n for n in saved if n.startswith("agrec_sgl_") and n.endswith("__test.npz")} - {"agrec_sgl__test.npz"}
    sgl = next(r for r in part.rows if r["name"] == "AGRec (sgl)")["settings"]["alpha"]
    if part.selected["source"] != "AGRec (sgl)":
        assert sgl_test == ({f"{slug(f'AGRec (sgl) α={sgl:g} τ=1')}__test.npz"} if sgl > 0 else set())
