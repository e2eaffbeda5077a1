"""Decode stage at Amazon scale: peak memory of the stage's own bookkeeping, and decode users/s.

Issue 12 item 4 ("Evaluation that scales"). Instruments' real sequences (``data/Instruments``: 24,772 users,
9,922 items, the authors' 4-level semantic IDs from ``Instruments.index.json`` plus a de-duplication level as the trie), a tiny random
Llama over those code tokens, and four GNN-like scorers (random 64-d user/item embeddings, scores =
⟨u, v⟩ computed per user batch like ``full_sort_predict``):

- ``--mode memory``: the whole decode stage (:func:`agrec.decode.stage.evaluate_decoding`, the profile's α
  grid, 4 scorers, the released-code variants) over **all** users, with the beam search replaced by a stub
  that returns ``[U, 20]`` rankings at once (the LM is not what this measures: the scorers' top-k lists,
  every row's rankings and metrics are). Prints the peak RSS (``ru_maxrss``) before and after the stage.
  Runs against whichever ``agrec`` is first on ``PYTHONPATH`` (the code before / after the change).
- ``--mode speed``: the real :func:`agrec.decode.generate_items` of the tiny LM at beam 20 (α = 0.4 with
  the scorer's top-10 FSM, and α = 0) on ``--users`` validation prompts; prints users/s.
- ``--mode shared``: the decode stage's validation pass (the LM alone, then α = .1, .2, .4, .7, 1 for each
  scorer) decoded three ways, side by side in one run on the same ``--users`` validation users (drawn like
  ``evaluation.select_users``): one row at a time (:func:`generate_items` per row), in one pass sharing each
  batch's prompt encoding (:func:`generate_items_multi`), and in one pass that also runs each distinct beam
  prefix through the LM once for all rows (``decode.share_prefixes``). Prints the three rates, whether the
  first two are identical, and how far the third is from them (rows whose top 10 differ, the largest score
  difference). With ``--config`` the profile's trained LM and scorers (``--scorers``, default its main one) are
  used from ``--run-dir`` (their stages run first where they have not: a fresh run directory trains them), else
  the random tiny LM and scorer above.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/decode_scale.py --mode memory
    PYTHONPATH=$PWD .venv/bin/python benchmarks/decode_scale.py --mode speed --users 64
    PYTHONPATH=$PWD .venv/bin/python benchmarks/decode_scale.py --mode shared --users 2000 --threads 2 \
        --batch-size 64 --config configs/instruments-cpu.yaml --scorers lightgcn sasrec
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
BOS = 2


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def load_instruments(data: Path, max_history: int = 20):
    from agrec.data.split import LeaveOneOutSplit
    from agrec.decode import ItemTrie

    seqs = json.loads((data / "Instruments.inter.json").read_text())
    seqs = [np.asarray(seqs[k], dtype=np.int64) for k in sorted(seqs, key=int)]
    index = json.loads((data / "Instruments.index.json").read_text())
    n_items = len(index)
    codes, seen = [], {}
    for i in range(n_items):  # a few items share a code sequence: a de-duplication level, as our RQ-VAE does
        c = tuple(index[str(i)])
        seen[c] = seen.get(c, -1) + 1
        codes.append([*c, f"<e_{seen[c]}>"])
    vocab = {tok: 3 + j for j, tok in enumerate(sorted({t for c in codes for t in c}))}
    tokens = np.asarray([[vocab[t] for t in c] for c in codes], dtype=np.int64)
    split = LeaveOneOutSplit(train=[s[:-2] for s in seqs], valid=np.array([s[-2] for s in seqs]),
                             test=np.array([s[-1] for s in seqs]))

    def prompt(h):
        return [BOS] + tokens[np.asarray(h[-max_history:], dtype=np.int64)].reshape(-1).tolist()

    return split, n_items, tokens, ItemTrie.build(tokens), prompt, 3 + len(vocab)


class EmbeddingScorer:
    """⟨u, v⟩ with fixed random embeddings; ``[len(users), n_items]`` per call, like a GNN's full_sort_predict."""

    def __init__(self, n_users: int, n_items: int, seed: int, dim: int = 64):
        g = torch.Generator().manual_seed(seed)
        self.users, self.items = torch.randn(n_users, dim, generator=g), torch.randn(n_items, dim, generator=g)

    def score_users(self, users, target):
        shift = 0.0 if target == "valid" else 0.01
        return self.users[torch.as_tensor(np.asarray(users, dtype=np.int64))] @ self.items.T + shift


def tiny_llama(vocab: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0,
                      bos_token_id=BOS, eos_token_id=1, attn_implementation="sdpa")
    return LlamaForCausalLM(cfg).eval()


def memory(args) -> dict:
    import agrec.data.stage as data_stage
    import agrec.decode.evaluate as evaluate
    import agrec.decode.stage as decode_stage
    import agrec.run.rundir as rundir
    from agrec.decode.beam import DecodeResult
    from agrec.run.session import open_session

    split, n_items, tokens, trie, prompt, vocab = load_instruments(Path(args.data))
    names = ["lightgcn", "sgl", "xsimgcl", "sasrec"]
    scorers = {n: EmbeddingScorer(split.n_users, n_items, i) for i, n in enumerate(names)}
    bundle = types.SimpleNamespace(model=tiny_llama(vocab), item_token_ids=torch.as_tensor(tokens), pad_token_id=0,
                                   prompt_ids=prompt)
    calls = [0]

    def stub_generate(model, prompts, trie, fsm_inputs=None, cfg=None, exclude=None, k=None, **kw):
        # a deterministic function of (call, prompt): the same rankings whatever the user order or batching
        calls[0] += 1
        key = torch.tensor([sum(p) * 7919 + len(p) for p in prompts], dtype=torch.int64)
        items = (key[:, None] + calls[0] * 104729 + torch.arange(k) * 31337) % n_items
        return DecodeResult(items=items, scores=-torch.arange(k, dtype=torch.float32).expand(len(prompts), k).clone())

    evaluate.generate_items = stub_generate
    decode_stage.train_lm = lambda session: bundle  # the names decode.stage imported
    decode_stage.run_gnn_stage = lambda data: None
    data_stage.prepare_data = lambda session: (types.SimpleNamespace(n_items=n_items), split)
    decode_stage.load_scorer = lambda data, name, lm=None: scorers[name]
    rundir.RunDir.mark_done = lambda self, *a, **k: None
    run_dir = Path(tempfile.mkdtemp(prefix="decode_scale_"))
    overrides = {"evaluation.alpha_grid": [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0], "evaluation.scorers": names,
                 "evaluation.max_users": args.users}
    s = open_session(ROOT / "configs" / "ml100k-ci.yaml", run_dir=run_dir, report_dir=run_dir / "rep",
                     overrides=overrides)
    before = peak_rss_mb()
    t0 = time.perf_counter()
    trace = []

    def log(msg: str) -> None:  # --trace: current and peak RSS at every line the stage logs
        if args.trace:
            trace.append(f"{current_rss_mb():7.1f} {peak_rss_mb():7.1f} {time.perf_counter() - t0:6.1f}s {msg[:60]}")

    rep = decode_stage.evaluate_decoding(s, force=True, log=log)
    print("\n".join(trace), file=sys.stderr)
    return {"users": rep.n_users, "items": n_items, "rows": len(rep.rows), "curve_points": len(rep.curve),
            "peak_rss_before_stage_mb": round(before, 1), "peak_rss_after_stage_mb": round(peak_rss_mb(), 1),
            "stage_s": round(time.perf_counter() - t0, 1), "run_dir": str(run_dir)}


def speed(args) -> dict:
    from agrec.decode import DecodeConfig, generate_items
    from agrec.decode.evaluate import build_inputs, scorer_rankings

    torch.set_num_threads(args.threads)
    split, n_items, tokens, trie, prompt, vocab = load_instruments(Path(args.data))
    model = tiny_llama(vocab)
    users = np.arange(args.users)
    inp = build_inputs(split, prompt, "valid", users)
    fsm = scorer_rankings(EmbeddingScorer(split.n_users, n_items, 0), {"valid": inp}, 10)["valid"]
    out = {"users": args.users, "threads": args.threads, "beam": 20, "batch_size": args.batch_size,
           "prompt_tokens_mean": float(np.mean([len(p) for p in inp.prompts]))}
    for alpha in (0.0, 0.4):
        cfg = DecodeConfig(alpha=alpha, beam_size=20, top_n=10, batch_size=args.batch_size)
        t0 = time.perf_counter()
        generate_items(model, inp.prompts, trie, fsm_inputs=(fsm.items, fsm.scores), cfg=cfg, exclude=inp.exclude)
        dt = time.perf_counter() - t0
        out[f"users_per_s_alpha_{alpha:g}"] = round(args.users / dt, 1)
    return out


def shared(args) -> dict:
    from agrec.decode import DecodeConfig, generate_items, generate_items_multi
    from agrec.decode.evaluate import build_inputs, scorer_rankings
    from agrec.decode.stage import validation_users

    if args.config:
        from agrec.data.stage import prepare_data
        from agrec.decode import ItemTrie
        from agrec.lm.stage import train_lm
        from agrec.data.stage import load_run_data
        from agrec.scorers import load_scorer
        from agrec.run.session import open_session

        session = open_session(args.config, run_dir=args.run_dir)
        torch.set_num_threads(args.threads)
        _, split = prepare_data(session)
        bundle = train_lm(session)  # the run's LM: reused when current, trained here otherwise
        model, trie, prompt = bundle.model, ItemTrie.build(bundle.item_token_ids), bundle.prompt_ids
        data = load_run_data(session)
        names = args.scorers or [session.profile.evaluation.scorer]
        scorers = {name: load_scorer(data, name, lm=bundle) for name in names}
        seed = session.profile.seed
    else:
        torch.set_num_threads(args.threads)
        split, n_items, tokens, trie, prompt, vocab = load_instruments(Path(args.data))
        model, seed = tiny_llama(vocab), 2024
        scorers = {"random": EmbeddingScorer(split.n_users, n_items, 0)}
    users = validation_users(split.n_users, args.users, seed)
    inp = build_inputs(split, prompt, "valid", users)
    tops = {name: scorer_rankings(s, {"valid": inp}, 10)["valid"] for name, s in scorers.items()}
    # the decode stage's validation pass: the LM alone once, then each scorer's alpha grid
    grid = (0.1, 0.2, 0.4, 0.7, 1.0)
    runs = [(DecodeConfig(alpha=0.0, beam_size=20, top_n=10, batch_size=args.batch_size), None)]
    runs += [(DecodeConfig(alpha=a, beam_size=20, top_n=10, batch_size=args.batch_size), (t.items, t.scores))
             for t in tops.values() for a in grid]
    t0 = time.perf_counter()
    one = [generate_items(model, inp.prompts, trie, fsm_inputs=f, cfg=c, exclude=inp.exclude) for c, f in runs]
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    multi = generate_items_multi(model, inp.prompts, trie, runs, exclude=inp.exclude)
    t_multi = time.perf_counter() - t0
    share = [(dataclasses.replace(c, share_prefixes=True), f) for c, f in runs]
    t0 = time.perf_counter()
    prefixes = generate_items_multi(model, inp.prompts, trie, share, exclude=inp.exclude)
    t_prefixes = time.perf_counter() - t0
    same = all(torch.equal(a.items, b.items) and torch.equal(a.scores, b.scores) for a, b in zip(one, multi))
    # decode.share_prefixes: the same rankings up to float rounding; how many users' top-10 differ at all
    differ = sum(int((a.items[:, :10] != b.items[:, :10]).any(1).sum()) for a, b in zip(multi, prefixes))
    max_diff = max(float((a.scores - b.scores).abs().nan_to_num(0.0).max()) for a, b in zip(multi, prefixes))
    n = len(users) * len(runs)
    return {"model": args.config or "random tiny", "scorers": list(scorers), "users": len(users), "rows": len(runs),
            "threads": args.threads, "batch_size": args.batch_size,
            "prompt_tokens_mean": float(np.mean([len(p) for p in inp.prompts])),
            "user_decodes_per_s_one_row_at_a_time": round(n / t_one, 1),
            "user_decodes_per_s_shared_prompt": round(n / t_multi, 1), "ratio": round(t_one / t_multi, 3),
            "identical": same,
            "user_decodes_per_s_share_prefixes": round(n / t_prefixes, 1),
            "ratio_share_prefixes_vs_shared_prompt": round(t_multi / t_prefixes, 3),
            "share_prefixes_user_rows_whose_top10_differ": differ,
            "share_prefixes_max_abs_score_difference": max_diff}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=["memory", "speed", "shared"], required=True)
    p.add_argument("--config", default=None, help="shared: a profile whose trained LM and main scorer are used (trained first where missing)")
    p.add_argument("--run-dir", default=None, help="shared: the run directory of --config (default: the profile's)")
    p.add_argument("--scorers", nargs="*", default=None,
                   help="shared: the scorers whose alpha grids are decoded (default: the profile's main scorer)")
    p.add_argument("--data", default=str(ROOT / "data" / "Instruments"))
    p.add_argument("--users", type=int, default=None, help="memory: evaluated users (default all); speed: 64")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--trace", action="store_true", help="memory: RSS at every log line of the stage (stderr)")
    args = p.parse_args()
    if args.mode in ("speed", "shared") and args.users is None:
        args.users = 64
    run = {"memory": memory, "speed": speed, "shared": shared}[args.mode]
    print(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
