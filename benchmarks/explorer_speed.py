"""Explorer response time: how long one interaction with the beam explorer / FSM viewer takes (a new α or user).

The quick profile's LM is a 4-layer x 128 Llama (vocabulary: specials + the 3 x 32 RQ-VAE codes + the de-dup
level) over MovieLens-100k's 1,682 items, prompts of 20 history items x 4 codes, beam 20, top_n 10. The trained
model may not exist on this machine, so the benchmark builds a model *of that size with random weights* (decode
cost depends on the shapes, not on the weights; a peaked init keeps the beams apart as a trained model does) and
a random code table of the quick profile's shape. It times what a widget callback does end to end: the decode
with ``trace=True`` and the tables (``BeamExplorer.update``, the default "beams" tab shown), the FSM viewer's
``update`` (its default "nodes" tab), and the beam explorer again with its PNG tab shown (the matplotlib figure
drawn on every interaction), for 20 interactions each (alternately a new α and a new user); medians.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/explorer_speed.py        # about 1 min on 2 busy cores

With ``--config configs/ml100k-quick.yaml`` it times the *trained* model of that profile's finished run instead
(its decode stage must be current; nothing is recomputed: the run's stages are reused as the notebook does),
and writes ``benchmarks/results/explorer_speed_<profile>.json``.

Writes ``benchmarks/results/explorer_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agrec.analysis.explorer import BeamExplorer, ExplorerData, FSMViewer  # noqa: E402
from agrec.decode import DecodeConfig  # noqa: E402
from tests.decode.tiny_lm import N_SPECIAL, make_tiny  # noqa: E402

SIZES = (32, 32, 32, 8)       # 3 RQ-VAE levels of 32 codes + the de-duplication level
N_ITEMS, HISTORY, N_USERS = 1682, 20, 50


def build(seed: int = 0) -> ExplorerData:
    t = make_tiny(seed=seed, sizes=SIZES, n_items=N_ITEMS, n_users=N_USERS, min_items=HISTORY, max_items=HISTORY,
                  layers=4, hidden=128, init=0.1)
    # make_tiny's Llama has 4 heads / 2 KV heads and an MLP of 2 x hidden; the quick profile's has 4 / 4 and 512.
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=N_SPECIAL + sum(SIZES), hidden_size=128, intermediate_size=512,
                      num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=512, pad_token_id=0, bos_token_id=2, eos_token_id=1,
                      initializer_range=0.1, attn_implementation="sdpa")
    model = LlamaForCausalLM(cfg).eval()
    rng = np.random.default_rng(seed)
    item_of = {tuple(row): i for i, row in enumerate(t.tokens.tolist())}
    history = [np.array([item_of[tuple(p[1 + 4 * j:5 + 4 * j])] for j in range(HISTORY)]) for p in t.prompts]
    scores = torch.as_tensor(rng.normal(size=(N_USERS, N_ITEMS)), dtype=torch.float32)
    return ExplorerData(model=model, trie=t.trie, pad_token_id=0, users=np.arange(N_USERS), prompts=t.prompts,
                        exclude=history, gnn_scores=scores,
                        targets=rng.integers(0, N_ITEMS, N_USERS), titles=[f"item {i}" for i in range(N_ITEMS)],
                        labels=None, decode=DecodeConfig(alpha=0.3, top_n=10, beam_size=20, tau=1.0))


def from_run(config: Path) -> ExplorerData:
    """The explorers' data of a finished run (the analysis notebook's inputs, the stages reused)."""
    from agrec.analysis.stage import explorer_data, gather_inputs
    from agrec.run.session import open_session

    session = open_session(config)
    inp = gather_inputs(session, log=lambda s: None)
    return explorer_data(inp)


def interactions(n: int, seed: int = 1, n_users: int = N_USERS) -> list[tuple[str, object]]:
    """Alternately a new α and a new user (never the current value, so each one recomputes)."""
    rng = np.random.default_rng(seed)
    out, alpha, user = [], 0.3, 0
    for i in range(n):
        if i % 2 == 0:
            alpha = float(rng.choice([a for a in np.round(np.arange(0, 1.0001, 0.05), 2) if a != alpha]))
            out.append(("alpha", alpha))
        else:
            user = int(rng.choice([u for u in range(n_users) if u != user]))
            out.append(("user", user))
    return out


def time_widget(widget_owner, steps: list[tuple[str, object]]) -> list[float]:
    times = []
    for name, value in steps:
        t0 = time.perf_counter()
        widget_owner.controls[name].value = value      # the observe callback runs synchronously
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interactions", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", type=Path, help="time the trained model of this profile's finished run")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = from_run(args.config) if args.config else build()
    n_users = len(data.users)
    out = args.out or ROOT / "benchmarks" / "results" / (
        f"explorer_speed_{args.config.stem}.json" if args.config else "explorer_speed.json")
    explorer = BeamExplorer(data, n_show=10)
    explorer.widget(user=0)
    viewer = FSMViewer(data, explorer)
    viewer.widget(user=0)
    steps = interactions(args.interactions, n_users=n_users)
    time_widget(explorer, steps[:2])                     # warm-up (first-call allocations, matplotlib fonts)
    beam = time_widget(explorer, steps)
    fsm = time_widget(viewer, steps)
    explorer.tabs.selected_index = 1                    # the per-step probability PNG tab shown
    beam_png = time_widget(explorer, interactions(args.interactions, seed=2, n_users=n_users))
    # The parts of one beam-explorer interaction: the decode alone (what caching cannot remove).
    dec = []
    for i, (_, v) in enumerate(steps):
        t0 = time.perf_counter()
        explorer.decode(int(i % n_users), 0.3 if i % 2 else 0.5, 10, "prob", 20)
        dec.append(time.perf_counter() - t0)
    res = {
        "what": "one explorer interaction (new alpha or user) end to end: the widget callback with the default tab "
                "shown (tables; PNGs are drawn only when their tab is shown), and with the PNG tab shown",
        "model": (f"the trained LM of {args.config} (its run's stages reused), {n_users} explorer users"
                  if args.config else
                  "random-weight Llama of the quick profile's size: 4 layers x 128, 4 heads, MLP 512, "
                  f"vocab {N_SPECIAL + sum(SIZES)}; {N_ITEMS} items x 4 code levels {SIZES}; prompts of "
                  f"{HISTORY} items; beam 20, top_n 10"),
        "interactions": args.interactions, "threads": args.threads,
        "beam_explorer_median_s": round(statistics.median(beam), 4),
        "beam_explorer_max_s": round(max(beam), 4),
        "beam_explorer_png_tab_median_s": round(statistics.median(beam_png), 4),
        "fsm_viewer_median_s": round(statistics.median(fsm), 4),
        "fsm_viewer_max_s": round(max(fsm), 4),
        "decode_only_median_s": round(statistics.median(dec), 4),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
